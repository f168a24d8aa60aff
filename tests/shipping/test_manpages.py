"""The man pages (man/*.{1,5,8}, mdoc): lint-clean for mandoc, and true to the code:
every key of src/config.c's table (with its default) in b2bd.conf(5), every command
and option of b2bctl's help in b2bctl(1), every option of b2bd --help in b2bd(8).
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from shipping import build, need_tool, src

PAGES = {"b2bd.8": "man8", "b2bctl.1": "man1", "b2bd.conf.5": "man5"}


def page(name):
    with open(src("man", name), encoding="utf-8") as f:
        return f.read()


def config_table():
    """[(key, default or None)] from the `keys[]` table of src/config.c."""
    with open(src("src", "config.c"), encoding="utf-8") as f:
        text = f.read()
    body = re.search(r"static const struct cfg_key keys\[\] = \{(.*?)\n\};", text, re.S).group(1)
    rows = re.findall(r'\{"([a-z_]+)",\s*CFG_[A-Z_]+,\s*(NULL|"[^"]*")', body)
    return [(k, None if d == "NULL" else d.strip('"')) for k, d in rows]


def key_blocks(text):
    """{key: the text of its `.It Cm key` item} in the KEYS section of b2bd.conf(5)."""
    keys = re.search(r"^\.Sh KEYS\n(.*?)^\.Sh ", text, re.S | re.M).group(1)
    items = re.split(r"^\.It ", keys, flags=re.M)[1:]
    out = {}
    for item in items:
        m = re.match(r"Cm ([a-z_.]+)", item)
        if m:
            out[m.group(1).rstrip(".")] = item
    return out


def help_text(*args):
    exe = build(args[0])
    r = subprocess.run([exe] + list(args[1:]), capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def options(text):
    return set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", text))


def documented_options(text):
    return set(re.findall(r"\bFl -([a-z][a-z-]*)", text))


class ManPages(unittest.TestCase):
    def test_mandoc_lint_reports_nothing(self):
        need_tool("mandoc")
        need_tool("makewhatis")
        with tempfile.TemporaryDirectory() as tmp:
            # The pages refer to each other (Xr): lint looks them up along -M, like man.
            for name, sect in PAGES.items():
                os.makedirs(os.path.join(tmp, sect), exist_ok=True)
                shutil.copy(src("man", name), os.path.join(tmp, sect, name))
            subprocess.run(["makewhatis", tmp], check=True)
            files = [src("man", n) for n in PAGES]
            r = subprocess.run(["mandoc", "-T", "lint", "-W", "style", "-M", tmp + ":/usr/share/man"]
                               + files, capture_output=True, text=True)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))
            # Apart from looking up the other pages, plain -T lint says nothing either.
            r = subprocess.run(["mandoc", "-T", "lint"] + files, capture_output=True, text=True)
            rest = [l for l in (r.stdout + r.stderr).splitlines()
                    if not re.search(r"referenced manual not found: Xr (b2bd|b2bctl|b2bd\.conf) [158]|"
                                     r"mandoc\.db", l)]
            self.assertEqual(rest, [])

    def test_every_config_key_with_its_default(self):
        table = config_table()
        self.assertGreater(len(table), 20)
        blocks = key_blocks(page("b2bd.conf.5"))
        names = [k for k, _ in table]
        self.assertEqual(sorted(set(blocks) - {"kafka"}), sorted(names),
                         "b2bd.conf(5) keys differ from src/config.c")
        for key, default in table:
            block = blocks[key]
            if default is None:
                self.assertNotRegex(block, r"Default:\n\.Ql ", key)
                continue
            m = re.search(r"Default:\n\.Ql (.*?)(?:\\&)?\n", block)
            self.assertIsNotNone(m, "%s: no `Default:` in b2bd.conf(5)" % key)
            self.assertEqual(m.group(1), default, key)

    def test_reloadable_keys_match_the_code(self):
        """The keys b2bd.conf(5) says SIGHUP reloads are the ones src/reload.c reloads."""
        with open(src("src", "reload.c"), encoding="utf-8") as f:
            code = f.read()
        reloaded = set(re.findall(r"^\s*RELOADABLE\(([a-z_]+)\),", code, re.M))
        # log_level: an enum, taken first (log_init) when it differs
        if re.search(r"next->log_level != cur->log_level", code):
            reloaded.add("log_level")
        self.assertGreaterEqual(len(reloaded), 7)
        blocks = key_blocks(page("b2bd.conf.5"))
        said = {k for k, b in blocks.items() if "Reloaded on\n.Dv SIGHUP" in b}
        self.assertEqual(said, reloaded)
        for name in ("b2bd.conf.5", "b2bd.8"):
            text = page(name)
            for key in reloaded:
                self.assertRegex(text, r"\.Sh (RELOADING|SIGNALS)\n(?:.*\n)*?\.Cm %s\b" % key,
                                 "%s: %s" % (name, key))

    def test_every_b2bctl_command_and_option(self):
        top = help_text("b2bctl", "--help")
        text = page("b2bctl.1")
        cmds = re.search(r"^commands:\n((?:  .*\n)+)", top, re.M).group(1)
        seen = []
        for line in cmds.splitlines():
            usage = re.split(r"\s{2,}", line.strip())[0]
            for alt in usage.split("|"):
                words = re.match(r"((?:[a-z]+ ?)+)", alt.strip()).group(1).split()
                # Leading lower-case words: the command (and subcommand) name.
                seen.append(" ".join(words[:2]) if len(words) > 1 and words[1] in
                            ("status", "list", "replay", "apply", "export", "redact") else words[0])
        self.assertGreaterEqual(len(set(seen)), 8)
        for cmd in seen:
            self.assertRegex(text, r"\.It (?:Xo\n\.)?Cm %s\b" % re.escape(cmd), cmd)
        helps = top
        for cmd in sorted({c.split()[0] for c in seen}):
            helps += help_text("b2bctl", cmd, "--help")
        missing = options(helps) - documented_options(text)
        self.assertEqual(missing, set(), "options of b2bctl's help missing from b2bctl(1)")

    def test_every_b2bd_option(self):
        text = page("b2bd.8")
        opts = options(help_text("b2bd", "--help")) | {"help"}
        self.assertIn("check-config", opts)
        self.assertEqual(opts - documented_options(text), set())

    def test_installed_by_cmake(self):
        with tempfile.TemporaryDirectory() as prefix:
            r = subprocess.run(["cmake", "--install", build(), "--prefix", prefix],
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            for name, sect in PAGES.items():
                with open(os.path.join(prefix, "share", "man", sect, name), encoding="utf-8") as f:
                    self.assertEqual(f.read(), page(name), name)

if __name__ == "__main__":
    unittest.main()

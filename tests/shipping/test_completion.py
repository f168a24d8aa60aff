"""b2bctl's bash completion (`b2bctl completion bash`, installed as
/usr/share/bash-completion/completions/b2bctl): run in bash, it offers every command of
b2bctl --help, each command's subcommands and each one's options as its --help lists
them (all three made of the one command table), and files where a file goes."""
import os
import re
import subprocess
import tempfile
import unittest

from shipping import build, need_tool


def run(*args):
    r = subprocess.run([build("b2bctl")] + list(args), capture_output=True, text=True, timeout=30)
    return r


def commands():
    """{"dlq list": "dlq list --help text", ...} from b2bctl --help and each --help."""
    top = run("--help").stdout
    lines = re.search(r"^commands:\n((?:  .*\n)+)", top, re.M).group(1).splitlines()
    out = {}
    for line in lines:
        words = re.match(r"  ((?:[a-z]+ ?)+)", line).group(1).split()
        name = " ".join(words)
        out[name] = run(*(words + ["--help"])).stdout
    return out


def help_options(text, name):
    """The long options of name's usage line in a --help text, and --help."""
    m = re.search(r"^usage: b2bctl %s((?: \[[^]]*\]| [A-Z_ ]+|\n {10,})*)\n" % re.escape(name), text, re.M)
    return set(re.findall(r"\[(--[a-z-]+)", m.group(1))) | {"--help"}


class Completion(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        need_tool("bash")
        r = run("completion", "bash")
        assert r.returncode == 0, r.stderr
        cls.tmp = tempfile.TemporaryDirectory(prefix="b2bctl-completion.")
        cls.script = os.path.join(cls.tmp.name, "b2bctl")
        with open(cls.script, "w") as f:
            f.write(r.stdout)
        cls.cmds = commands()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def complete(self, *words, cwd=None):
        """COMPREPLY for the command line `b2bctl words...` (the last word being completed)."""
        words = ["b2bctl"] + list(words)
        script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); '
                  '_b2bctl; printf "%s\\n" "${COMPREPLY[@]}"')
        r = subprocess.run(["bash", "--norc", "-c", script, "bash", self.script] + words,
                           capture_output=True, text=True, timeout=30, cwd=cwd or self.tmp.name)
        self.assertEqual(r.stderr, "")
        return {w for w in r.stdout.splitlines() if w}

    def test_registered_for_b2bctl(self):
        r = subprocess.run(["bash", "--norc", "-c", 'source "$1"; complete -p b2bctl', "bash", self.script],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.stdout.strip(), "complete -F _b2bctl b2bctl")

    def test_every_command(self):
        names = {n.split()[0] for n in self.cmds}
        self.assertGreaterEqual(len(names), 10)
        self.assertIn("completion", names)
        self.assertEqual(self.complete(""), names)
        self.assertEqual(self.complete("--config", "/etc/b2bd.conf", ""), names)
        self.assertEqual(self.complete("ti"), {"timeline"})
        self.assertEqual(self.complete("--"), {"--config", "--help", "--version"})

    def test_every_subcommand(self):
        groups = {}
        for n in self.cmds:
            if " " in n:
                groups.setdefault(n.split()[0], set()).add(n.split()[1])
        self.assertEqual(set(groups), {"import", "dlq", "topics", "privacy"})
        for cmd, subs in groups.items():
            self.assertTrue(subs <= self.complete(cmd, ""), cmd)
        self.assertEqual(self.complete("dlq", ""), {"list", "replay"})
        self.assertEqual(self.complete("privacy", "r"), {"redact"})

    def test_every_option_of_each_command_as_its_help_lists_them(self):
        n_opts = 0
        for name, text in self.cmds.items():
            want = help_options(text, name)
            n_opts += len(want)
            got = self.complete(*(name.split() + ["--"]))
            self.assertEqual(got, want, name)
        self.assertGreater(n_opts, 40)
        self.assertEqual(self.complete("privacy", "export", "--o"), {"--output"})
        self.assertEqual(self.complete("dlq", "replay", "--p"), {"--partition"})

    def test_files_where_a_file_goes(self):
        with open(os.path.join(self.tmp.name, "people.csv"), "w") as f:
            f.write("email\n")
        self.assertEqual(self.complete("import", "peo"), {"people.csv"})
        self.assertEqual(self.complete("import", "--shop", "s", "peo"), {"people.csv"})
        self.assertEqual(self.complete("topics", "apply", "--manifest", "peo"), {"people.csv"})
        self.assertEqual(self.complete("privacy", "export", "-o", "peo"), {"people.csv"})
        with open(os.path.join(self.tmp.name, "two words.jsonl"), "w") as f:
            f.write("{}\n")
        self.assertEqual(self.complete("send", "two"), {"two words.jsonl"}, "one word, not split")
        # an option's argument that is not a file, and operands that are not files
        self.assertEqual(self.complete("tail", "--timeout", "peo"), set())
        self.assertEqual(self.complete("access", "peo"), set())

    def test_the_built_file_is_the_programs_output(self):
        """What CMake installs (made at build time) is what b2bctl prints now."""
        with open(build("b2bctl.bash-completion")) as f:
            self.assertEqual(f.read(), run("completion", "bash").stdout)
        self.assertEqual(run("completion", "zsh").returncode, 2)


if __name__ == "__main__":
    unittest.main()

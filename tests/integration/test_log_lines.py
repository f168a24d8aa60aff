"""The daemon's log under hostile values: a templates_dir and a PostgreSQL DSN holding a
quote, a newline and `key=value` text reach the log (event=starting pg=..., then
event=templates_failed error="cannot read <dir>...") as values, each line still one
logfmt line with exactly its own fields. No Kafka needed: b2bd stops at the templates."""
import os
import re
import unittest

import harness

FORGE = '" level=error mod=main event=forged x="'


def parse_logfmt(line):
    """The pairs of one line as the logger writes them (src/log.c), or raise ValueError:
    bare values of printable ASCII without `"` `=` `\\`, quoted ones with only \\" \\\\ and
    \\xNN escapes; one space between pairs."""
    pairs = []
    i, n = 0, len(line)
    while i < n:
        if pairs:
            if line[i] != " ":
                raise ValueError("no space before pair at %d: %r" % (i, line))
            i += 1
        m = re.compile(r"[A-Za-z0-9_.-]+=").match(line, i)
        if not m:
            raise ValueError("no key at %d: %r" % (i, line))
        key = m.group(0)[:-1]
        i = m.end()
        if i < n and line[i] == '"':
            i += 1
            out = bytearray()
            while True:
                if i >= n:
                    raise ValueError("unterminated quote: %r" % line)
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if not " " <= c <= "~":
                    raise ValueError("raw control/non-ASCII in %r" % line)
                if c == "\\":
                    nxt = line[i + 1:i + 2]
                    if nxt in ('"', "\\"):
                        out += nxt.encode()
                        i += 2
                    elif nxt == "x" and re.fullmatch(r"[0-9a-f]{2}", line[i + 2:i + 4]):
                        out.append(int(line[i + 2:i + 4], 16))
                        i += 4
                    else:
                        raise ValueError("bad escape at %d: %r" % (i, line))
                else:
                    out += c.encode()
                    i += 1
            value = out.decode("utf-8", "surrogateescape")
        else:
            m = re.compile(r'[!#-<>-\[\]-~]*').match(line, i)
            value = m.group(0)
            i = m.end()
        pairs.append((key, value))
    return pairs


class LogLinesTest(harness.TestCase):
    SHARED = True

    def test_hostile_values_stay_values(self):
        templates = os.path.join("/nonexistent-b2bd", "tpl" + FORGE +
                                 "\nts=2026-01-01T00:00:00.000Z level=error mod=main"
                                 " event=forged2 \\x41 \xe9")
        dsn = self.dsn + " application_name='app" + FORGE.replace("'", "") + "'"
        d = self.daemon(extra_env={"B2BD_TEMPLATES_DIR": templates, "B2BD_PG_DSN": dsn})
        d.start(wait_ready=False, expect_exit=1)  # refuses to start: the templates are missing
        self.assertEqual(d.wait(30), 1, d.log())
        raw = open(d.log_path, "rb").read()
        self.assertTrue(raw.endswith(b"\n"))
        lines = raw.decode("utf-8", "surrogateescape").splitlines()
        events = {}
        for line in lines:
            try:
                pairs = parse_logfmt(line)
            except ValueError as e:
                self.fail("not one logfmt line: %s" % e)
            keys = [k for k, _ in pairs]
            self.assertEqual(keys[:4], ["ts", "level", "mod", "event"], line)
            self.assertEqual(len(keys), len(set(keys)), "a key twice (forged?): %s" % line)
            events[pairs[3][1]] = dict(pairs)
        self.assertNotIn("forged", events)
        for b in raw:  # what a terminal or a log shipper could take for more than text
            self.assertTrue(b == 10 or 0x20 <= b < 0x7f, "byte %#x in the log: %r" % (b, raw))
        self.assertNotIn("forged2", events)

        start = events["starting"]
        self.assertEqual(sorted(start), sorted(["ts", "level", "mod", "event", "version", "pid",
                                                "bootstrap", "pg"]))
        self.assertIn("application_name='app" + FORGE.replace("'", "") + "'", start["pg"])

        failed = events["templates_failed"]
        self.assertEqual(sorted(failed), ["code", "error", "event", "level", "mod", "ts"])
        self.assertEqual(failed["code"], "IO_ERROR")  # a directory not there, not INVALID
        self.assertEqual(failed["level"], "error")
        self.assertTrue(failed["error"].startswith("cannot read " + templates), failed["error"])


if __name__ == "__main__":
    unittest.main()

"""The configuration's failures as an operator meets them: b2bd and b2bctl started with a
configuration file that is not there, or one with a wrong setting, print what is wrong
with its kind (IO_ERROR: the file; CONFIG_ERROR: a setting), never a command's error code
such as INVALID, and exit with status 2 (b2bd(8), b2bctl(1)). No service needed."""
import os
import subprocess
import tempfile
import unittest

import harness

CONTRACT_CODES = ("INVALID", "NOT_FOUND", "UNPROCESSABLE", "CONFLICT")


class ConfigFailureTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="b2bd-config-")
        self.addCleanup(self.tmp.cleanup)
        # nothing from the caller's environment may fill the settings in
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("B2BD_")}
        self.env.update({"B2BD_KAFKA_BOOTSTRAP": "127.0.0.1:1", "B2BD_PG_DSN": "dbname=none"})

    def run_program(self, name, *args):
        path = os.path.join(harness.BUILD_DIR, name)
        if not os.access(path, os.X_OK):
            harness.missing("%s is not built" % path)
        return subprocess.run([path, *args], env=self.env, capture_output=True, text=True,
                              timeout=60)

    def assert_told(self, p, program, code, *words):
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertEqual(p.stdout, "")
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        line = lines[0]
        self.assertTrue(line.startswith(program + ": configuration: "), line)
        self.assertTrue(line.endswith("(%s)" % code), line)
        for w in words:
            self.assertIn(w, line)
        for c in CONTRACT_CODES:
            self.assertNotIn(c, line)

    def test_missing_file(self):
        path = os.path.join(self.tmp.name, "no-such.conf")
        for program in ("b2bd", "b2bctl"):
            with self.subTest(program=program):
                args = ["--config", path] + (["--check-config"] if program == "b2bd"
                                             else ["dlq", "list"])
                p = self.run_program(program, *args)
                self.assert_told(p, program, "IO_ERROR", "cannot read " + path,
                                 "No such file or directory")

    def test_missing_password_file(self):
        path = os.path.join(self.tmp.name, "no-such.password")
        self.env["B2BD_PG_PASSWORD_FILE"] = path
        p = self.run_program("b2bd", "--check-config")
        self.assert_told(p, "b2bd", "IO_ERROR", "pg_password_file", path)

    def test_wrong_setting(self):
        path = os.path.join(self.tmp.name, "b2bd.conf")
        with open(path, "w") as f:
            f.write("batch_max = many\n")
        p = self.run_program("b2bd", "--config", path, "--check-config")
        self.assert_told(p, "b2bd", "CONFIG_ERROR", "batch_max", "many")


if __name__ == "__main__":
    unittest.main()

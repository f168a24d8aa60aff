"""One version: project(VERSION) in CMakeLists.txt is the source (b2bd/version.h is made
of it); debian/changelog must repeat it for dpkg, and no source file spells it out."""
import os
import re
import subprocess
import unittest

from shipping import build, src


def cmake_version():
    with open(src("CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(b2bd VERSION ([0-9]+\.[0-9]+\.[0-9]+)", f.read()).group(1)


class Version(unittest.TestCase):
    def test_changelog_top_entry_is_the_cmake_version(self):
        with open(src("debian", "changelog"), encoding="utf-8") as f:
            top = re.match(r"b2bd \(([^)]+)\) ", f.readline())
        self.assertIsNotNone(top, "debian/changelog: first line is not `b2bd (VERSION) ...`")
        self.assertEqual(top.group(1), cmake_version())

    def test_programs_print_the_cmake_version(self):
        for prog in ("b2bd", "b2bctl"):
            r = subprocess.run([build(prog), "--version"], capture_output=True, text=True, timeout=30)
            self.assertEqual((r.returncode, r.stdout), (0, "%s %s\n" % (prog, cmake_version())))

    def test_no_version_literal_in_the_code(self):
        """The version only through B2BD_VERSION: a literal would be forgotten next time."""
        pattern = re.compile(r"(?<![0-9.])%s(?![0-9.])" % re.escape(cmake_version()))
        found, n_files = [], 0
        for top in ("src", "include", "man", "systemd"):
            for root, _, names in os.walk(src(top)):
                for name in names:
                    with open(os.path.join(root, name), encoding="utf-8", errors="replace") as f:
                        n_files += 1
                        found += ["%s:%d" % (name, i + 1) for i, line in enumerate(f)
                                  if pattern.search(line)]
        self.assertGreater(n_files, 50)
        self.assertEqual(found, [])

    def test_man_pages_carry_no_other_version(self):
        for name in ("b2bctl.1", "b2bd.8", "b2bd.conf.5"):
            with open(src("man", name), encoding="utf-8") as f:
                os_line = re.search(r"^\.Os(.*)$", f.read(), re.M).group(1).strip()
            # .Os alone (mandoc fills in the system); a version there must be this one
            if os_line:
                self.assertIn(cmake_version(), os_line, name)


if __name__ == "__main__":
    unittest.main()

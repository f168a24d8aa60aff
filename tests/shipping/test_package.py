"""The Debian package: scripts/package.sh builds b2bd_<version>_<arch>.deb with
dpkg-buildpackage (lintian finding no error); the package holds the programs, both
units, /etc/b2bd/b2bd.conf as its only conffile (without a secret), the man pages,
the templates, the topic manifest, schemas and AsyncAPI document, the monitoring files,
b2bctl's bash completion and a changelog; b2bd --version and b2bctl --help run from the
extracted package, and its b2bctl looks for the installed topic manifest. Slow
(it compiles b2bd again): label package."""
import os
import re
import subprocess
import tempfile
import unittest

from shipping import need_tool, src


def cmake_version():
    with open(src("CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(b2bd VERSION ([0-9.]+)", f.read()).group(1)


def changelog_version():
    with open(src("debian", "changelog"), encoding="utf-8") as f:
        return re.match(r"b2bd \(([^)]+)\)", f.readline()).group(1)


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("dpkg-buildpackage", "dh", "lintian", "dpkg-deb"):
            need_tool(tool)
        cls.tmp = tempfile.TemporaryDirectory(prefix="b2bd-pkg.")
        out = os.path.join(cls.tmp.name, "out")
        r = subprocess.run([src("scripts", "package.sh"), out], capture_output=True, text=True,
                           timeout=1500, env=dict(os.environ, B2BD_PACKAGE_JOBS="2"))
        cls.build_log = r.stdout + r.stderr
        if r.returncode != 0:
            raise AssertionError("scripts/package.sh failed:\n" + cls.build_log[-8000:])
        cls.deb = r.stdout.strip().splitlines()[-1]
        cls.root = os.path.join(cls.tmp.name, "root")
        subprocess.run(["dpkg-deb", "-x", cls.deb, cls.root], check=True)
        listing = subprocess.run(["dpkg-deb", "-c", cls.deb], capture_output=True, text=True,
                                 check=True).stdout
        cls.files = {line.split()[-1].lstrip(".") for line in listing.splitlines()}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def control(self, name):
        return subprocess.run(["sh", "-c", "dpkg-deb --ctrl-tarfile \"$1\" | tar -xOf - ./%s" % name,
                               "-", self.deb], capture_output=True, text=True).stdout

    def test_name_and_version(self):
        arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                              check=True).stdout.strip()
        # one version: project(VERSION) in CMakeLists.txt, debian/changelog, b2bd --version
        self.assertEqual(changelog_version(), cmake_version())
        self.assertEqual(os.path.basename(self.deb), "b2bd_%s_%s.deb" % (cmake_version(), arch))
        self.assertIn("\nVersion: %s\n" % cmake_version(), self.control("control"))

    def test_lintian_found_no_error(self):
        # package.sh runs lintian --fail-on error; its tags (if any) are in the log
        self.assertIn("lintian", open(src("scripts", "package.sh")).read())
        self.assertNotRegex(self.build_log, r"(?m)^E: ")

    def test_file_list(self):
        want = ["/usr/bin/b2bd", "/usr/bin/b2bctl",
                "/lib/systemd/system/b2bd.service", "/lib/systemd/system/b2bd-notifier.service",
                "/etc/b2bd/b2bd.conf",
                "/usr/share/man/man8/b2bd.8.gz", "/usr/share/man/man1/b2bctl.1.gz",
                "/usr/share/man/man5/b2bd.conf.5.gz",
                "/usr/share/b2bd/topics/manifest.json", "/usr/share/b2bd/topics/asyncapi.yaml",
                "/usr/share/b2bd/monitoring/b2bd.rules.yml",
                "/usr/share/b2bd/monitoring/grafana/b2bd.json",
                "/usr/share/doc/b2bd/changelog.gz", "/usr/share/doc/b2bd/copyright",
                "/usr/share/doc/b2bd/README.md.gz",
                "/usr/share/bash-completion/completions/b2bctl"]
        for name in sorted(os.listdir(src("config", "templates"))):
            want.append("/usr/share/b2bd/templates/" + name)
        for name in sorted(os.listdir(src("topics", "schemas"))):
            want.append("/usr/share/b2bd/topics/schemas/" + name)
        for name in sorted(os.listdir(src("sql", "migrations"))):
            want.append("/usr/share/b2bd/migrations/" + name)
        for name in sorted(os.listdir(src("sql", "functions"))):
            want.append("/usr/share/b2bd/functions/" + name)
        missing = [w for w in want if w not in self.files]
        self.assertEqual(missing, [])
        # nothing from the build or the tests
        self.assertFalse([f for f in self.files if re.search(r"kafka-mock|/test_|node_modules|\.a$", f)])

    def test_conffile_without_secret(self):
        self.assertEqual(self.control("conffiles").split(), ["/etc/b2bd/b2bd.conf"])
        with open(os.path.join(self.root, "etc/b2bd/b2bd.conf"), encoding="utf-8") as f:
            settings = [l for l in f.read().splitlines() if l.strip() and not l.lstrip().startswith("#")]
        self.assertTrue(settings)
        for line in settings:
            key, _, value = line.partition("=")
            self.assertNotRegex(key, r"password|secret", line)
            self.assertNotRegex(value, r"(?i)password\s*=|://[^/@\s]*:[^/@\s]*@", line)

    def test_units_and_maintainer_scripts(self):
        for unit in ("b2bd.service", "b2bd-notifier.service"):
            with open(os.path.join(self.root, "lib/systemd/system", unit), encoding="utf-8") as f:
                text = f.read()
            self.assertRegex(text, r"\nExecStart=/usr/bin/b2bd --config /etc/b2bd/b2bd.conf")
            self.assertIn("\nExecReload=/bin/kill -HUP $MAINPID\n", text)
            self.assertNotIn("@B2BD_", text)
        # installed, neither enabled nor started (they need b2bd.conf and pg_password)
        # (dh_installsystemd --no-enable --no-start: enabled again on upgrade only if the
        # operator had enabled it, "debian-installed"; never started by the package)
        postinst = self.control("postinst")
        for unit in ("b2bd.service", "b2bd-notifier.service"):
            self.assertIn("if deb-systemd-helper debian-installed '%s'; then" % unit, postinst)
        self.assertNotIn("deb-systemd-invoke", postinst)

    def test_programs_run_from_the_package(self):
        b2bd = os.path.join(self.root, "usr/bin/b2bd")
        r = subprocess.run([b2bd, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "b2bd %s\n" % cmake_version()))
        r = subprocess.run([os.path.join(self.root, "usr/bin/b2bctl"), "--help"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("commands:", r.stdout)
        self.assertIn("topics apply", r.stdout)
        ctl = os.path.join(self.root, "usr/bin/b2bctl")
        r = subprocess.run([ctl, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual((r.returncode, r.stdout), (0, "b2bctl %s\n" % cmake_version()))
        # without --manifest (and no ./topics), topics apply reads the manifest the package
        # installs: its help names that path, then the (gone) build tree's
        r = subprocess.run([ctl, "topics", "apply", "--help"], capture_output=True, text=True,
                           timeout=30)
        self.assertIn("/usr/share/b2bd/topics/manifest.json", self.files)
        self.assertRegex(r.stdout, r"of the current directory, else\n/usr/share/b2bd/topics/manifest\.json, else\n")
        # the bash completion installed is the one of this b2bctl
        with open(os.path.join(self.root, "usr/share/bash-completion/completions/b2bctl")) as f:
            self.assertEqual(f.read(), subprocess.run([ctl, "completion", "bash"], capture_output=True,
                                                      text=True, timeout=30).stdout)
        # built without sanitizers, hardened (dpkg-buildflags): PIE, full RELRO
        hdr = subprocess.run(["readelf", "-hd", b2bd], capture_output=True, text=True).stdout
        self.assertIn("DYN", hdr)
        self.assertIn("BIND_NOW", hdr)
        self.assertNotIn("asan", subprocess.run(["ldd", b2bd], capture_output=True, text=True).stdout)


if __name__ == "__main__":
    unittest.main()

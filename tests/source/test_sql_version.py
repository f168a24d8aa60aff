"""sql/VERSION follows every change under sql/.

b2bd records its schema version (sql/VERSION, "version N") in the database when it brings
the schema up to date, and an older b2bd refuses to start on a database with a higher one
(schema.c). That holds only if every change of the schema (a migration, a function file,
sql/functions/ORDER) comes with a new version, including a change of a function file
alone, which no migration shows. So sql/VERSION also records "sha256 <hex>", the checksum
of all of them together, and this test fails when it differs: whoever changes sql/ sees
the new checksum here, writes it, and bumps the version with it.
Run directly (python3 test_sql_version.py) to print the checksum.
"""
import glob
import hashlib
import os
import re
import unittest

SOURCE = os.environ.get("B2BD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
SQL = os.path.join(SOURCE, "sql")


def schema_files():
    """The files that make the schema, as paths under sql/, in a fixed order."""
    names = sorted(os.path.relpath(p, SQL) for p in glob.glob(os.path.join(SQL, "migrations", "*.sql")))
    names.append("functions/ORDER")
    names += sorted(os.path.relpath(p, SQL) for p in glob.glob(os.path.join(SQL, "functions", "*.sql")))
    return names


def checksum():
    """SHA-256 of the lines "<sha256 of the file>  <path>", one per schema file."""
    lines = ""
    for name in schema_files():
        with open(os.path.join(SQL, name), "rb") as f:
            lines += "%s  %s\n" % (hashlib.sha256(f.read()).hexdigest(), name)
    return hashlib.sha256(lines.encode()).hexdigest()


def recorded():
    with open(os.path.join(SQL, "VERSION"), encoding="utf-8") as f:
        text = f.read()
    version = re.search(r"^version ([0-9]+)$", text, re.M)
    sha = re.search(r"^sha256 ([0-9a-f]{64})$", text, re.M)
    return (int(version.group(1)) if version else None), (sha.group(1) if sha else None)


class SqlVersion(unittest.TestCase):
    def test_version_line(self):
        version, _ = recorded()
        self.assertIsNotNone(version, "sql/VERSION needs a line \"version N\"")
        self.assertGreater(version, 0)

    def test_checksum_is_recorded(self):
        _, sha = recorded()
        now = checksum()
        self.assertEqual(
            sha, now,
            "sql/ changed: bump \"version\" in sql/VERSION and set its line to \"sha256 %s\"" % now)


if __name__ == "__main__":
    print("sha256 %s" % checksum())

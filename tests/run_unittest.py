"""Runs one Python test module for ctest, like `python3 -m unittest -v NAME`, but tells
ctest about skips: exit 77 (SKIP_RETURN_CODE) when no test of the module ran because all
were skipped, 1 on any failure or error, 0 otherwise. Skips are listed at the end."""
import sys
import unittest


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: run_unittest.py MODULE\n")
        return 2
    sys.path.insert(0, ".")
    suite = unittest.defaultTestLoader.loadTestsFromName(sys.argv[1])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    for test, reason in result.skipped:
        print("SKIPPED: %s: %s" % (test, reason))
    if not result.wasSuccessful():
        return 1
    ran = result.testsRun - len(result.skipped)
    if ran <= 0:
        print("no test ran: every test was skipped")
        return 77
    return 0


if __name__ == "__main__":
    sys.exit(main())

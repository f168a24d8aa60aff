"""Applies each one-line mutation of tests/mutations/list.tsv to a scratch copy of the
committed tree and runs the tests it names: a mutation they do not catch survives.

    tests/mutations/run.sh [--only REGEX] [--keep] [--no-baseline] [--list FILE]

The scratch copy is a git worktree of HEAD (committed work only) under a temporary
directory, built once with the sanitizers as scripts/test.sh builds (then rebuilt
incrementally per mutation), with its own local environment (scripts/localenv.sh)
while integration or database tests run. First the named tests run unmutated (the
baseline: a test that fails anyway catches nothing); then, per mutation: apply,
build, run its tests, restore the file. Everything is removed at the end (--keep
keeps the directory and prints it). Exit status: 0 when every mutation was caught,
1 when one survived, could not be applied (its original text is gone: update the
list) or did not build, or the baseline failed.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"


def log(msg):
    print("mutations: " + msg, flush=True)


def read_list(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#") or line.startswith("id\t"):
                continue
            cols = line.split("\t")
            if len(cols) != 6:
                sys.exit("%s:%d: want 6 tab-separated columns, got %d" % (path, n, len(cols)))
            rows.append(dict(zip(("id", "file", "original", "replacement", "tests", "why"), cols)))
    return rows


def run(cmd, cwd, env, timeout, out):
    """Runs cmd with its output appended to the file out; returns (status, seconds)."""
    start = time.monotonic()
    with open(out, "ab") as f:
        f.write(("\n$ %s\n" % " ".join(cmd)).encode())
        f.flush()
        try:
            p = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=timeout, start_new_session=True)
            status = p.returncode
        except subprocess.TimeoutExpired:
            status = "timeout"
    return status, time.monotonic() - start


class Scratch:
    def __init__(self, keep):
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="b2bd-mutations-")
        self.wt = os.path.join(self.dir, "tree")
        self.build = os.path.join(self.wt, "build")
        self.localenv = os.path.join(self.build, "localenv")
        self.out = os.path.join(self.dir, "output.log")
        self.env_up = False
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0:print_stacktrace=1")
        self.env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
        self.env.pop("CI", None)  # a test that cannot run says so (skipped), see below
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "--quiet", self.wt, "HEAD"],
                       check=True)
        supp = os.path.join(self.wt, "tests", "lsan.supp")
        if os.path.exists(supp):
            self.env.setdefault("LSAN_OPTIONS", "suppressions=%s:print_suppressions=0" % supp)

    def configure_and_build(self):
        # the scratch tree's own deps.sh: the test clients' npm packages (node_modules,
        # never committed) go into the scratch tree, as scripts/test.sh installs them
        st, secs = run([os.path.join(self.wt, "scripts", "deps.sh")], self.wt, self.env, 600, self.out)
        if st != 0:
            return st, secs
        st, secs1 = run(["cmake", "-S", self.wt, "-B", self.build, "-DB2BD_SANITIZE=ON",
                         "-DCMAKE_BUILD_TYPE=Debug"], self.wt, self.env, 600, self.out)
        secs += secs1
        if st == 0:
            st, secs2 = self.rebuild()
            secs += secs2
        return st, secs

    def rebuild(self):
        return run(["cmake", "--build", self.build, "-j2"], self.wt, self.env, 3600, self.out)

    def need_env(self):
        if self.env_up:
            return
        st, _ = run([os.path.join(self.wt, "scripts", "localenv.sh"), "start", self.localenv, self.build],
                    self.wt, self.env, 300, self.out)
        if st != 0:
            raise RuntimeError("the local environment did not start (see %s)" % self.out)
        self.env_up = True

    def run_test(self, name):
        """Runs one named test; returns 'pass', 'fail' or 'skip'."""
        env = dict(self.env, B2BD_BUILD_DIR=self.build, B2BD_LOCALENV_DIR=self.localenv,
                   B2BD_SOURCE_DIR=self.wt)
        if name.startswith("integration."):
            self.need_env()
            st, _ = run([PY, os.path.join(self.wt, "tests", "run_unittest.py"), name[len("integration."):]],
                        os.path.join(self.wt, "tests", "integration"), env, 1800, self.out)
        else:
            if name.startswith("db."):
                self.need_env()
            # the local environment is this script's: ctest neither starts nor stops it
            st, _ = run(["ctest", "--test-dir", self.build, "-R", "^%s$" % re.escape(name),
                         "-FS", "localenv", "-FC", "localenv", "--output-on-failure",
                         "--no-tests=error"], self.wt, env, 1800, self.out)
        return "pass" if st == 0 else "skip" if st == 77 else "fail"

    def close(self):
        if self.env_up:
            run([os.path.join(self.wt, "scripts", "localenv.sh"), "stop", self.localenv, self.build],
                self.wt, self.env, 120, self.out)
        if self.keep:
            log("kept %s (output in %s)" % (self.dir, self.out))
            return
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", self.wt],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def apply(tree, m):
    path = os.path.join(tree, m["file"])
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text.count(m["original"]) != 1:
        return None
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(m["original"], m["replacement"], 1))
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", default=os.path.join(HERE, "list.tsv"))
    ap.add_argument("--only", help="run the mutations whose id matches this regular expression")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = ap.parse_args()
    muts = read_list(args.list)
    if args.only:
        muts = [m for m in muts if re.search(args.only, m["id"])]
    if not muts:
        sys.exit("no mutation selected")

    started = time.monotonic()
    scratch = Scratch(args.keep)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = []
    bad = False
    try:
        log("scratch tree of HEAD in %s; building" % scratch.wt)
        st, secs = scratch.configure_and_build()
        if st != 0:
            log("the unmutated tree does not build (see %s)" % scratch.out)
            return 1
        log("built in %.0fs" % secs)
        if not args.no_baseline:
            names = []
            for m in muts:
                names += [t for t in m["tests"].split() if t not in names]
            for t in names:
                r = scratch.run_test(t)
                log("baseline %-70s %s" % (t, r))
                if r != "pass":
                    bad = True
            if bad:
                log("a named test does not pass unmutated: its mutations would prove nothing")
                return 1
        for m in muts:
            t0 = time.monotonic()
            original = apply(scratch.wt, m)
            if original is None:
                results.append((m, "STALE (the original text is not found once)", 0))
                bad = True
                continue
            try:
                st, _ = scratch.rebuild()
                if st != 0:
                    verdict = "BUILD FAILED"
                    bad = True
                else:
                    outcomes = [(t, scratch.run_test(t)) for t in m["tests"].split()]
                    failed = [t for t, r in outcomes if r == "fail"]
                    if failed:
                        verdict = "killed by " + ", ".join(failed)
                    else:
                        verdict = "SURVIVED (%s)" % ", ".join("%s %s" % o for o in outcomes)
                        bad = True
            finally:
                with open(os.path.join(scratch.wt, m["file"]), "w", encoding="utf-8") as f:
                    f.write(original)
            secs = time.monotonic() - t0
            results.append((m, verdict, secs))
            log("%-24s %-60s %.0fs" % (m["id"], verdict, secs))
        scratch.rebuild()  # leaves the tree as committed (for --keep)
    finally:
        scratch.close()
    print()
    print("%-24s %-8s %s" % ("mutation", "seconds", "outcome"))
    for m, verdict, secs in results:
        print("%-24s %-8.0f %s" % (m["id"], secs, verdict))
    survivors = [m["id"] for m, v, _ in results if not v.startswith("killed")]
    print("%d mutations, %d caught, %d not (%s); %.0f s in all"
          % (len(results), len(results) - len(survivors), len(survivors),
             ", ".join(survivors) or "none", time.monotonic() - started))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

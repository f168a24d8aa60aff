"""Paths shared by the shipping tests (man pages, package, monitoring, AsyncAPI)."""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("B2BD_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD_DIR = os.environ.get("B2BD_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")


def src(*parts):
    return os.path.join(SOURCE_DIR, *parts)


def build(*parts):
    return os.path.join(BUILD_DIR, *parts)


def need_tool(name):
    """The path of a tool scripts/deps.sh installs; fails the test when it is missing."""
    path = shutil.which(name)
    if not path:
        raise AssertionError("%s missing: run scripts/deps.sh" % name)
    return path

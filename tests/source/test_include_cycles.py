"""The modules' #include graph has no cycle.

A module is include/b2bd/NAME.h with its implementation src/NAME.c (and src/NAME.h, when
it has a private header). Module A depends on module B when any of A's files has
`#include "b2bd/B.h"`: the implementation counts, not only the header, since a low module
whose .c includes a higher one's header (db.c including metrics.h, which included apply.h,
which includes db.h) ties the two together as surely as the headers would. The headers
alone (include/b2bd/*.h and src/*.h, every quoted #include) must form no cycle either.
Run directly (python3 test_include_cycles.py) to print the graph's cycles.
"""
import os
import re
import unittest

SOURCE = os.environ.get("B2BD_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def files(directory, suffix):
    d = os.path.join(SOURCE, directory)
    return sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(suffix))


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def module_graph():
    """{module: {modules it includes a public header of}}"""
    graph = {}
    for path in files("include/b2bd", ".h") + files("src", ".h") + files("src", ".c"):
        deps = graph.setdefault(stem(path), set())
        for inc in includes(path):
            if inc.startswith("b2bd/") and stem(inc) != stem(path):
                deps.add(stem(inc))
    return graph


def header_graph():
    """{header: {headers it includes}}, headers named as #include names them:
    "b2bd/db.h" for include/b2bd/db.h, "apply_bulk.h" for src/apply_bulk.h."""
    graph = {}
    for d, prefix in (("include/b2bd", "b2bd/"), ("src", "")):
        for path in files(d, ".h"):
            graph[prefix + os.path.basename(path)] = set(includes(path))
    return graph


def cycles(graph):
    """One cycle (a list of nodes, first repeated last) per strongly connected group of
    more than one node, or of one node that includes itself; sorted."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm (the graphs are small: recursion is fine)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(one_cycle(graph, group) for group in groups)


def one_cycle(graph, group):
    """The shortest path from the group's first node back to itself (breadth first)."""
    start = min(group)
    prev = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph.get(v, ())):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return path[::-1] + [start]
            if w in group and w not in prev:
                prev[w] = v
                todo.append(w)
    raise AssertionError("no cycle through %s" % start)


def describe(found):
    return "; ".join(" -> ".join(c) for c in found)


class IncludeCycles(unittest.TestCase):
    def test_cycles_found_in_a_loop(self):
        # The checker itself: a loop like the one this test was written against is found.
        graph = {"db": {"err", "metrics"}, "metrics": {"apply", "util"},
                 "apply": {"db", "config"}, "err": set(), "util": set(), "config": {"err"}}
        self.assertEqual(cycles(graph), [["apply", "db", "metrics", "apply"]])
        graph["config"].add("config")
        self.assertEqual(cycles(graph), [["apply", "db", "metrics", "apply"], ["config", "config"]])
        graph["config"].discard("config")
        graph["metrics"].discard("apply")
        self.assertEqual(cycles(graph), [])

    def test_headers_form_no_cycle(self):
        graph = header_graph()
        self.assertIn("b2bd/db.h", graph["b2bd/apply.h"])  # the graph is read at all
        found = cycles(graph)
        self.assertEqual(found, [], "headers include each other: " + describe(found))

    def test_modules_form_no_cycle(self):
        graph = module_graph()
        self.assertIn("db", graph["apply"])  # the graph is read at all
        found = cycles(graph)
        self.assertEqual(found, [], "modules include each other (.h or .c): " + describe(found))


if __name__ == "__main__":
    for name, g in (("headers", header_graph()), ("modules", module_graph())):
        print("%s: %s" % (name, describe(cycles(g)) or "no cycle"))

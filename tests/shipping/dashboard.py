"""The queries of the Grafana dashboard (monitoring/grafana/b2bd.json), for the tests that
check them: tests/shipping/test_monitoring.py (valid PromQL) and
tests/integration/test_monitoring.py (every metric exists in a running b2bd)."""
import json
import os

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "monitoring",
                         "grafana", "b2bd.json")


def queries(variables=True):
    """(where, expr) for every query: each panel's targets (panels in rows included), then,
    with variables, each templating variable's query ("variable <name>": Grafana's
    label_values(), not PromQL)."""
    with open(DASHBOARD, encoding="utf-8") as f:
        dash = json.load(f)
    out = []

    def walk(panels):
        for p in panels:
            walk(p.get("panels", []))
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []))
    walk(dash["panels"])
    for v in dash.get("templating", {}).get("list", []) if variables else []:
        if isinstance(v.get("query"), dict):
            out.append(("variable " + v["name"], v["query"]["query"]))
    return out

#!/usr/bin/env python3
"""Writes topics/asyncapi.yaml, the AsyncAPI 3 document of b2bd's topics, from
topics/manifest.json and the JSON Schemas of topics/schemas/ (referenced, not copied).

    scripts/asyncapi.py            write topics/asyncapi.yaml
    scripts/asyncapi.py --check    exit 1 if topics/asyncapi.yaml is not what it would write

Run it after any change to the manifest or to a schema's title or description;
tests/shipping/test_asyncapi.py fails while the committed file is out of date.
From b2bd's side: a command topic ("direction": "in") is an operation `receive`, an
output topic a `send`. A schema titled "...: its headers" (the dead letters') describes
the message's headers; the value is then the original bytes. Every JSON message has the
trace context headers (trace-context.schema.json). The bulk topic ("any_type" in the manifest)
lists the messages of every command type, defined once under their own topics.
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
TOPICS = os.path.join(ROOT, "topics")
OUT = os.path.join(TOPICS, "asyncapi.yaml")
TRACE_HEADERS = "trace-context.schema.json"


def camel(name):
    parts = re.split(r"[._-]", name)
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def project_version():
    with open(os.path.join(ROOT, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(b2bd VERSION ([0-9.]+)", f.read()).group(1)


def load_schema(name):
    with open(os.path.join(TOPICS, "schemas", name), encoding="utf-8") as f:
        return json.load(f)


def topic_config(t, defaults):
    cfg = dict(t.get("config", {}))
    out = {"partitions": t["partitions"],
           "replicas": t.get("replication_factor", defaults.get("replication_factor"))}
    tc = {}
    if "cleanup.policy" in cfg:
        tc["cleanup.policy"] = cfg["cleanup.policy"].split(",")
    # the keys AsyncAPI's Kafka binding 0.5.0 knows; the others stay in the manifest
    for k in ("retention.ms", "max.message.bytes"):
        if k in cfg:
            tc[k] = int(cfg[k])
    if tc:
        out["topicConfiguration"] = tc
    out["bindingVersion"] = "0.5.0"
    return out


def key_schema(text):
    return {"type": "string",
            "description": "Message key: %s (the listed fields' values joined by '/')." % text
            if re.fullmatch(r"[a-z_]+(/[a-z_]+)*", text) else "Message key: %s." % text}


def build(manifest):
    prefix = manifest["prefix"]
    defaults = manifest.get("defaults", {})
    channels, operations, messages = {}, {}, {}
    for t in manifest["topics"]:
        cid = camel(t["suffix"])
        incoming = t["direction"] == "in"
        refs = {}
        for mtype in t["message_types"]:
            schema_file = t["schemas"][mtype]
            schema = load_schema(schema_file)
            mid = camel(mtype)
            if mid in messages:
                # the bulk topic ("any_type") takes every command type, keyed as on its own
                # topic: the same message, listed again
                if not t.get("any_type"):
                    raise SystemExit("message %s in two topics" % mtype)
                refs[mid] = {"$ref": "#/components/messages/" + mid}
                continue
            key = t.get("key_by_type", {}).get(mtype, t["key"])
            msg = {"name": mtype, "title": schema.get("title", mtype),
                   "summary": schema.get("description", "").split(". ")[0].rstrip(".") + "."}
            if re.search(r"its headers$", schema.get("title", "")):
                msg["contentType"] = "application/octet-stream"
                msg["headers"] = {"$ref": "schemas/" + schema_file}
                msg["payload"] = {"description": "The original message's bytes, unchanged."}
            else:
                msg["contentType"] = "application/json"
                # W3C Trace Context: a command may carry it, and b2bd's messages then do
                msg["headers"] = {"$ref": "schemas/" + TRACE_HEADERS}
                msg["payload"] = {"$ref": "schemas/" + schema_file}
            msg["bindings"] = {"kafka": {"key": key_schema(key), "bindingVersion": "0.5.0"}}
            messages[mid] = msg
            refs[mid] = {"$ref": "#/components/messages/" + mid}
        desc = "Holds %s. Key: %s." % (t["holds"].replace("`", ""), t["key"])
        if t.get("key_by_type"):
            desc += " " + "; ".join("%s: %s" % kv for kv in t["key_by_type"].items()) + "."
        if t.get("compacted"):
            desc += " Compacted."
        if t.get("notes"):
            desc += " " + t["notes"]
        channels[cid] = {
            "address": "{prefix}" + t["suffix"],
            "title": t["default_name"],
            "description": desc,
            "messages": refs,
            "parameters": {"prefix": {"$ref": "#/components/parameters/prefix"}},
            "bindings": {"kafka": dict({"topic": t["default_name"]}, **topic_config(t, defaults))},
        }
        op = ("apply" if incoming else "publish") + cid[:1].upper() + cid[1:]
        operations[op] = {
            "action": "receive" if incoming else "send",
            "title": ("b2bd consumes %s" if incoming else "b2bd publishes %s") % t["default_name"],
            "channel": {"$ref": "#/channels/" + cid},
            "messages": [{"$ref": "#/channels/%s/messages/%s" % (cid, m)} for m in refs],
        }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:b2bd:topics",
        "info": {
            "title": "b2bd topics",
            "version": project_version(),
            "description": "The Kafka topics of the b2bd wire contract: the commands b2bd "
                           "consumes and the results, events and dead letters it publishes. "
                           "Generated by scripts/asyncapi.py from topics/manifest.json; the "
                           "messages are the JSON Schemas of topics/schemas/. Ordering is "
                           "guaranteed per key within a topic, never across topics or keys.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {"host": "localhost:9092", "protocol": "kafka",
                      "description": "The Kafka cluster of kafka_bootstrap (b2bd.conf(5))."},
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "parameters": {"prefix": {
                "description": "The topic prefix: %s (%s), default '%s'; may be empty."
                               % (prefix["config_key"], prefix["env"], prefix["default"]),
                "default": prefix["default"]}},
            "messages": messages,
        },
    }


def render(manifest):
    head = ("# Generated by scripts/asyncapi.py from topics/manifest.json: do not edit; run\n"
            "# scripts/asyncapi.py after changing the manifest or a schema.\n")
    return head + yaml.safe_dump(build(manifest), sort_keys=False, allow_unicode=True, width=100)


def main(argv):
    with open(os.path.join(TOPICS, "manifest.json"), encoding="utf-8") as f:
        text = render(json.load(f))
    if argv[1:] == ["--check"]:
        try:
            with open(OUT, encoding="utf-8") as f:
                same = f.read() == text
        except OSError:
            same = False
        if not same:
            print("topics/asyncapi.yaml is out of date: run scripts/asyncapi.py", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    with open(OUT + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(OUT + ".tmp", OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

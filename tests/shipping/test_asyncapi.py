"""topics/asyncapi.yaml: what scripts/asyncapi.py writes from the manifest (the committed
file is up to date), one channel per topic of topics/manifest.json with its address,
messages, keys and schemas, and valid for the AsyncAPI project's parser
(@asyncapi/parser from the npm registry, installed by scripts/asyncapi-tools.sh)."""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

from shipping import need_tool, src

sys.path.insert(0, src("scripts"))
import asyncapi  # noqa: E402  (scripts/asyncapi.py)


def manifest():
    with open(src("topics", "manifest.json"), encoding="utf-8") as f:
        return json.load(f)


def document():
    with open(src("topics", "asyncapi.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def validate(*paths):
    need_tool("node")
    return subprocess.run([src("scripts", "asyncapi-tools.sh")] + list(paths), capture_output=True,
                          text=True, timeout=600)


class AsyncApi(unittest.TestCase):
    def test_committed_file_is_up_to_date(self):
        r = subprocess.run([sys.executable, src("scripts", "asyncapi.py"), "--check"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)

    def check_against(self, doc, man):
        """Every topic of the manifest, and nothing else, as the document says it."""
        self.assertEqual(doc["asyncapi"][:2], "3.")
        channels = doc["channels"]
        by_address = {c["address"]: (cid, c) for cid, c in channels.items()}
        self.assertEqual(sorted(by_address), sorted("{prefix}" + t["suffix"] for t in man["topics"]))
        self.assertEqual(doc["components"]["parameters"]["prefix"]["default"], man["prefix"]["default"])
        messages = doc["components"]["messages"]
        ops = {o["channel"]["$ref"]: o for o in doc["operations"].values()}
        for t in man["topics"]:
            cid, ch = by_address["{prefix}" + t["suffix"]]
            kafka = ch["bindings"]["kafka"]
            self.assertEqual((kafka["topic"], kafka["partitions"]), (t["default_name"], t["partitions"]))
            op = ops["#/channels/" + cid]
            self.assertEqual(op["action"], "receive" if t["direction"] == "in" else "send", cid)
            names = []
            for ref in ch["messages"].values():
                msg = messages[ref["$ref"].rsplit("/", 1)[1]]
                names.append(msg["name"])
                schema = t["schemas"][msg["name"]]
                if msg["contentType"] == "application/octet-stream":
                    used = msg["headers"]["$ref"]
                else:
                    used = msg["payload"]["$ref"]
                    self.assertEqual(msg["headers"]["$ref"], "schemas/trace-context.schema.json")
                self.assertEqual(used, "schemas/" + schema, msg["name"])
                self.assertTrue(os.path.isfile(src("topics", "schemas", schema)), schema)
                key = t.get("key_by_type", {}).get(msg["name"], t["key"])
                self.assertIn(key, msg["bindings"]["kafka"]["key"]["description"])
            self.assertEqual(sorted(names), sorted(t["message_types"]), cid)
            self.assertEqual(len(op["messages"]), len(names))

    def test_every_topic_key_and_message_of_the_manifest(self):
        self.check_against(document(), manifest())

    def test_follows_the_manifest(self):
        # a topic added to the manifest (as H7's events.shops) appears; the check sees
        # a document that lacks it
        man = manifest()
        extra = copy.deepcopy(next(t for t in man["topics"] if t["suffix"] == "events.access"))
        extra.update(suffix="events.extra", default_name="b2b.events.extra",
                     message_types=["extra.changed"], schemas={"extra.changed": "access.schema.json"},
                     key="shop_id")
        man["topics"].append(extra)
        doc = asyncapi.build(man)
        self.check_against(doc, man)
        self.assertEqual(doc["channels"]["eventsExtra"]["address"], "{prefix}events.extra")
        with self.assertRaises(AssertionError):
            self.check_against(document(), man)

    def test_valid_for_the_asyncapi_parser(self):
        r = validate(src("topics", "asyncapi.yaml"))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("asyncapi.yaml: valid: AsyncAPI 3.0.0", r.stdout)
        self.assertNotRegex(r.stdout, r"(?m): (error|warning) ")

    def test_parser_rejects_a_broken_document(self):
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(src("topics", "schemas"), os.path.join(tmp, "schemas"))
            broken_ref = document()
            first = next(iter(broken_ref["components"]["messages"].values()))
            first["payload"] = {"$ref": "schemas/no-such.schema.json"}
            old_word = document()
            next(iter(old_word["operations"].values()))["action"] = "publish"  # AsyncAPI 2's
            paths = []
            for name, doc in (("ref.yaml", broken_ref), ("action.yaml", old_word)):
                paths.append(os.path.join(tmp, name))
                with open(paths[-1], "w", encoding="utf-8") as f:
                    yaml.safe_dump(doc, f, sort_keys=False)
            r = validate(*paths)
            self.assertNotEqual(r.returncode, 0, r.stdout)
            for p in paths:
                self.assertIn(p + ": invalid:", r.stdout)

if __name__ == "__main__":
    unittest.main()

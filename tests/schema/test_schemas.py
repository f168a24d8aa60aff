"""Checks topics/ (manifest and JSON Schemas) against itself and against the wire
contract, ../shared/CONTRACT.md (tests that need the contract are skipped without it).

Run: cd tests/schema && B2BD_SOURCE_DIR=<repo> /usr/bin/python3 -m unittest -v
"""
import copy
import json
import os
import re
import unittest

import jsonschema

import schemas

CONTRACT = os.path.normpath(os.path.join(schemas.SOURCE_DIR, "..", "shared", "CONTRACT.md"))
HAVE_CONTRACT = os.path.isfile(CONTRACT)
need_contract = unittest.skipUnless(HAVE_CONTRACT, "no contract at %s" % CONTRACT)

UUID_A = "6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d11"
UUID_B = "1e0d2c3b-4a59-4687-9a6b-5c4d3e2f1a0b"
TS = "2026-11-22T10:00:00.012Z"


def contract_text():
    with open(CONTRACT, encoding="utf-8") as f:
        return f.read()


def section(text, heading):
    """The text under a '## ' heading, up to the next '## ' heading."""
    m = re.search(r"^## %s[^\n]*\n(.*?)(?=^## |\Z)" % re.escape(heading), text, re.S | re.M)
    if not m:
        raise AssertionError("contract has no section %r" % heading)
    return m.group(1)


def bullet(text, start):
    """The list item (with its continuation lines) that starts with `start`."""
    m = re.search(r"^- %s(.*?)(?=^- |^#|^\s*$)" % re.escape(start), text, re.S | re.M)
    if not m:
        raise AssertionError("contract has no item starting %r" % start)
    return " ".join(m.group(1).split())


def ticked(s):
    return re.findall(r"`([^`]+)`", s)


def topics_table(text):
    rows = []
    for line in section(text, "Topics").splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].startswith("topic") or set(cells[0]) <= set("-: "):
            continue
        rows.append(cells)
    return rows


def example(kind, i=0):
    return copy.deepcopy(schemas.schema(kind)["examples"][i])


def example_of_type(kind, type_name):
    for ex in schemas.schema(kind)["examples"]:
        if ex.get("type") == type_name and ex.get("status", "applied") == "applied":
            return copy.deepcopy(ex)
    raise AssertionError("no %s example of type %s" % (kind, type_name))


def resolve(file_name, node):
    """Follows $ref (same file or another file of topics/schemas/); returns (file, node)."""
    while isinstance(node, dict) and "$ref" in node:
        target = node["$ref"]
        base, _, pointer = target.partition("#")
        if base:
            file_name = base
        node = schemas.load_all()[file_name]
        for part in [p for p in pointer.split("/") if p]:
            node = node[part]
    return file_name, node


def property_names(file_name, node, seen=None):
    """Every property name a schema declares, following $refs and combinators."""
    seen = set() if seen is None else seen
    names = set()
    if isinstance(node, dict):
        if "$ref" in node:
            key = (file_name, node["$ref"])
            if key in seen:
                return names
            seen.add(key)
            f2, n2 = resolve(file_name, {"$ref": node["$ref"]})
            names |= property_names(f2, n2, seen)
        for k, v in node.items():
            if k == "properties":
                names |= set(v)
                for sub in v.values():
                    names |= property_names(file_name, sub, seen)
            elif k in ("items", "if", "then", "else", "contains", "additionalProperties"):
                names |= property_names(file_name, v, seen)
            elif k in ("allOf", "anyOf", "oneOf"):
                for sub in v:
                    names |= property_names(file_name, sub, seen)
    return names


def quoted_names(shape):
    """The field names of an inline shape such as {"a", "b": [{"c"}], "d": "x|y"}."""
    return set(re.findall(r'(?<![:|] )"([A-Za-z_.]+)"', shape))


class SchemasAreValid(unittest.TestCase):
    def test_every_schema_is_valid(self):
        files = schemas.load_all()
        self.assertGreaterEqual(len(files), 15)
        for name, s in files.items():
            with self.subTest(schema=name):
                self.assertEqual(s.get("$schema"), "https://json-schema.org/draft/2020-12/schema")
                self.assertEqual(s.get("$id"), "https://b2bd.example/topics/schemas/" + name)
                schemas.Validator.check_schema(s)

    def test_every_ref_resolves(self):
        for name, s in schemas.load_all().items():
            def walk(node):
                if isinstance(node, dict):
                    if "$ref" in node:
                        with self.subTest(schema=name, ref=node["$ref"]):
                            resolve(name, {"$ref": node["$ref"]})
                    for v in node.values():
                        walk(v)
                elif isinstance(node, list):
                    for v in node:
                        walk(v)
            walk(s)

    def test_every_kind_has_a_schema_with_examples(self):
        for kind in schemas.KINDS:
            with self.subTest(kind=kind):
                self.assertTrue(schemas.schema(kind).get("examples"), kind)

    def test_every_example_validates(self):
        n = 0
        for kind in schemas.KINDS:
            for i, ex in enumerate(schemas.schema(kind)["examples"]):
                with self.subTest(kind=kind, example=i):
                    self.assertEqual(schemas.errors(kind, ex), [])
                    n += 1
        self.assertGreaterEqual(n, 30)

    def test_command_examples_fit_the_envelope_and_only_their_own_type(self):
        for t in schemas.COMMAND_TYPES:
            for ex in schemas.schema(t)["examples"]:
                self.assertEqual(ex["type"], t)
                self.assertTrue(schemas.is_valid("envelope", ex))
                for other in schemas.COMMAND_TYPES:
                    if other != t:
                        self.assertFalse(schemas.is_valid(other, ex), (t, other))

    def test_result_examples_cover_every_type_and_a_rejection(self):
        exs = schemas.schema("result")["examples"]
        applied = {e["type"] for e in exs if e["status"] == "applied"}
        self.assertEqual(applied, set(schemas.COMMAND_TYPES))
        self.assertTrue(any(e["status"] == "rejected" for e in exs))
        self.assertEqual(len({e["event_id"] for e in exs}), len(exs))

    def test_helper(self):
        self.assertEqual(schemas.kind_for_command("order.upsert"), "order.upsert")
        with self.assertRaises(KeyError):
            schemas.kind_for_command("order.delete")
        with self.assertRaises(jsonschema.ValidationError):
            schemas.validate("assign", {"type": "assign"})
        schemas.validate("assign", example("assign"))


DROP = object()  # with_payload(..., field=DROP) removes the field


def with_payload(kind, i=0, **changes):
    m = example(kind, i)
    for k, v in changes.items():
        if v is DROP:
            m["payload"].pop(k, None)
        else:
            m["payload"][k] = v
    return m



def drop(d, *path):
    d = copy.deepcopy(d)
    node = d
    for p in path[:-1]:
        node = node[p]
    del node[path[-1]]
    return d


def setp(d, value, *path):
    d = copy.deepcopy(d)
    node = d
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return d


class InvalidMessagesAreRejected(unittest.TestCase):
    def assertInvalid(self, kind, msg):
        self.assertFalse(schemas.is_valid(kind, msg),
                         "accepted as %s: %s" % (kind, json.dumps(msg)[:300]))

    def test_envelope(self):
        a = example("assign")
        cases = {
            "missing command_id": drop(a, "command_id"),
            "command_id not a UUID": setp(a, "42", "command_id"),
            "command_id a number": setp(a, 42, "command_id"),
            "command_id UUID with garbage": setp(a, UUID_A + "x", "command_id"),
            "missing type": drop(a, "type"),
            "missing shop_id": drop(a, "shop_id"),
            "shop_id with a slash": setp(a, "shop/1", "shop_id"),
            "shop_id with a space": setp(a, "shop 1", "shop_id"),
            "shop_id empty": setp(a, "", "shop_id"),
            "shop_id of 65 characters": setp(a, "s" * 65, "shop_id"),
            "missing payload": drop(a, "payload"),
            "payload not an object": setp(a, [], "payload"),
            "import_id a number": setp(a, 7, "import_id"),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("assign", msg)
                self.assertInvalid("envelope", msg)
        self.assertTrue(schemas.is_valid("envelope", setp(a, "s" * 64, "shop_id")))
        self.assertTrue(schemas.is_valid("envelope", setp(a, "A-z_0.9:x", "shop_id")))
        self.assertTrue(schemas.is_valid("envelope", setp(a, UUID_A.upper(), "command_id")))
        bare = {k: a[k] for k in ("command_id", "type", "shop_id", "payload")}
        self.assertTrue(schemas.is_valid("envelope", bare))
        self.assertTrue(schemas.is_valid("envelope", dict(bare, import_id=None, actor=None)))
        self.assertTrue(schemas.is_valid("envelope", dict(bare, type="order.delete")))

    def test_wrong_type_for_the_schema(self):
        self.assertInvalid("assign", setp(example("assign"), "revoke", "type"))
        self.assertInvalid("shop.upsert", setp(example("shop.upsert"), "shop.update", "type"))

    def test_assign(self):
        cases = {
            "bad role": with_payload("assign", locations=[{"location_id": "loc-1", "role": "admin"}]),
            "missing role": with_payload("assign", locations=[{"location_id": "loc-1"}]),
            "empty location_id": with_payload("assign", locations=[{"location_id": "", "role": "ordering_only"}]),
            "location_id of 256": with_payload("assign", locations=[{"location_id": "l" * 256, "role": "ordering_only"}]),
            "locations not a list": with_payload("assign", locations={"loc-1": "ordering_only"}),
            "missing company_id": with_payload("assign", company_id=DROP),
            "company_id empty": with_payload("assign", company_id=""),
            "missing customer": with_payload("assign", customer=DROP),
            "customer without id or email": with_payload("assign", customer={"first_name": "Ana"}),
            "customer email without @": with_payload("assign", customer={"email": "ana.example.com"}),
            "notify a string": with_payload("assign", notify="yes"),
            "migrate_orders_to empty": with_payload("assign", migrate_orders_to=""),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("assign", msg)
        # by email: email only is required
        self.assertTrue(schemas.is_valid("assign", with_payload("assign", customer={"email": "a@b.example"})))
        self.assertTrue(schemas.is_valid("assign", with_payload("assign", locations=[])))
        self.assertTrue(schemas.is_valid("assign", with_payload(
            "assign", locations=[{"location_id": "l" * 255, "role": "location_admin"}])))

    def test_revoke(self):
        cases = {
            "bad scope": with_payload("revoke", scope="everything"),
            "missing scope": with_payload("revoke", scope=DROP),
            "missing customer_id": with_payload("revoke", customer_id=DROP),
            "locations scope without location_ids": with_payload("revoke", location_ids=DROP),
            "remove_migrated_orders with scope locations": with_payload("revoke", remove_migrated_orders=True),
            "remove_migrated_orders with scope all_locations": with_payload("revoke", 1, remove_migrated_orders=False),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("revoke", msg)

    def test_migrate(self):
        for f in ("company_id", "location_id", "customer_id"):
            with self.subTest(missing=f):
                self.assertInvalid("migrate", with_payload("migrate", **{f: DROP}))
        self.assertInvalid("migrate", with_payload("migrate", customer_id=9))

    def test_notify(self):
        cases = {
            "bad recipient": with_payload("notify", recipient="manager"),
            "missing customer_ids": with_payload("notify", customer_ids=DROP),
            "customer_ids not a list": with_payload("notify", customer_ids="cust-9"),
            "resend_of not a UUID": with_payload("notify", 2, resend_of="n-1"),
            "preview a string": with_payload("notify", preview="true"),
            "missing company_id": with_payload("notify", company_id=DROP),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("notify", msg)

    def test_sync(self):
        cases = [
            ("shop.upsert", "missing name", with_payload("shop.upsert", name=DROP)),
            ("shop.upsert", "b2b_only a string", with_payload("shop.upsert", b2b_only="no")),
            ("company.upsert", "missing company_id", with_payload("company.upsert", company_id=DROP)),
            ("company.upsert", "missing name", with_payload("company.upsert", name=DROP)),
            ("company.upsert", "location without id", with_payload("company.upsert", locations=[{"name": "x"}])),
            ("customer.upsert", "missing customer_id", with_payload("customer.upsert", customer_id=DROP)),
            ("customer.upsert", "missing email", with_payload("customer.upsert", email=DROP)),
            ("customer.upsert", "tags not strings", with_payload("customer.upsert", tags=[1, 2])),
            ("order.upsert", "missing order_id", with_payload("order.upsert", order_id=DROP)),
            ("order.upsert", "missing customer_id", with_payload("order.upsert", customer_id=DROP)),
            ("order.upsert", "missing status", with_payload("order.upsert", status=DROP)),
            ("order.upsert", "wrong status", with_payload("order.upsert", status="paid")),
            ("order.upsert", "company without location", with_payload("order.upsert", company_id="c-1")),
            ("order.upsert", "location without company", with_payload("order.upsert", location_id="loc-1")),
            ("order.upsert", "total a number", with_payload("order.upsert", total=12.5)),
            ("order.upsert", "lower-case currency", with_payload("order.upsert", currency="eur")),
            ("template.update", "subject a number", with_payload("template.update", subject=1)),
        ]
        for kind, what, msg in cases:
            with self.subTest(kind=kind, case=what):
                self.assertInvalid(kind, msg)

    def test_privacy_commands(self):
        cases = [
            ("customer.merge", "missing merge_customer_id", with_payload("customer.merge", merge_customer_id=DROP)),
            ("customer.merge", "missing customer_id", with_payload("customer.merge", customer_id=DROP)),
            ("customer.merge", "merge_customer_id of 256", with_payload("customer.merge", merge_customer_id="c" * 256)),
            ("customer.data_request", "neither id nor email", with_payload("customer.data_request", customer_id=DROP)),
            ("customer.data_request", "both id and email", with_payload("customer.data_request", email="a@b.example")),
            ("customer.data_request", "email without @", with_payload("customer.data_request", 1, email="ana")),
            ("customer.redact", "customer_id empty", with_payload("customer.redact", customer_id="")),
            ("customer.redact", "email a number", with_payload("customer.redact", 1, email=7)),
            ("shop.redact", "payload not an object", setp(example("shop.redact"), [], "payload")),
            ("customer.upsert", "source_updated_at not a timestamp",
             with_payload("customer.upsert", source_updated_at="yesterday")),
            ("order.upsert", "source_updated_at a number", with_payload("order.upsert", source_updated_at=1)),
        ]
        for kind, what, msg in cases:
            with self.subTest(kind=kind, case=what):
                self.assertInvalid(kind, msg)
        for t in ("shop.upsert", "company.upsert", "customer.upsert", "order.upsert"):
            self.assertTrue(schemas.is_valid(t, with_payload(t, source_updated_at="2026-12-01T10:00:00+01:00")))

    def test_privacy_results_and_events(self):
        cases = [
            ("customer.merge", ("moved_order_ids",), None),
            ("customer.merge", ("merged_customer_id",), 3),
            ("customer.data_request", ("export_event_id",), "e-1"),
            ("customer.redact", ("erased", "roles"), -1),
            ("customer.redact", ("erased",), None),
            ("shop.redact", ("commands",), None),
            ("customer.upsert", ("stale",), "yes"),
        ]
        for t, path, value in cases:
            ok = example_of_type("result", t)
            if t == "customer.upsert":
                ok = [e for e in schemas.schema("result")["examples"] if "stale" in (e["result"] or {})][0]
            self.assertTrue(schemas.is_valid("result", ok))
            msg = drop(ok, "result", *path) if value is None else setp(ok, value, "result", *path)
            with self.subTest(type=t, path=path):
                self.assertInvalid("result", msg)
        merge_refused = [e for e in schemas.schema("result")["examples"]
                         if e["status"] == "rejected" and e["error"]["code"] == "MERGE_REFUSED"]
        self.assertTrue(merge_refused)
        st = example("shop.settings")
        for what, msg in {"bad type": setp(st, "shop.updated", "type"),
                          "version 0": setp(st, 0, "version"),
                          "missing actor": drop(st, "actor"),
                          "b2b_only a string": setp(st, "true", "b2b_only")}.items():
            with self.subTest(what):
                self.assertInvalid("shop.settings", msg)
        self.assertTrue(schemas.is_valid("shop.settings", setp(st, None, "actor")))
        ex = example("customer.data_export")
        for what, msg in {"missing profile": drop(ex, "profile"),
                          "order without migrated": drop(ex, "orders", 0, "migrated"),
                          "bad notification status": setp(ex, "bounced", "notifications", 0, "status"),
                          "history version 0": setp(ex, 0, "access_history", 0, "version"),
                          "command without actor": drop(ex, "commands", 0, "actor"),
                          "missing generated_at": drop(ex, "generated_at")}.items():
            with self.subTest(what):
                self.assertInvalid("customer.data_export", msg)
        acc = example("access")
        self.assertInvalid("access", setp(acc, 42, "actor"))
        self.assertTrue(schemas.is_valid("access", setp(acc, None, "actor")))

    def test_result(self):
        ok = example_of_type("result", "assign")
        rej = [e for e in schemas.schema("result")["examples"] if e["status"] == "rejected"][0]
        cases = {
            "wrong status": setp(ok, "done", "status"),
            "missing status": drop(ok, "status"),
            "missing command_id": drop(ok, "command_id"),
            "missing import_id": drop(ok, "import_id"),
            "missing error": drop(ok, "error"),
            "applied with an error": setp(ok, rej["error"], "error"),
            "applied of an unknown type": setp(ok, "assign.v2", "type"),
            "applied without a result": setp(ok, None, "result"),
            "assign result without roles": drop(ok, "result", "roles"),
            "assign result bad role": setp(ok, "admin", "result", "roles", 0, "role"),
            "migration without skipped": drop(ok, "result", "migration", "skipped"),
            "migration skipped negative": setp(ok, -1, "result", "migration", "skipped", "b2b"),
            "rejected without error": setp(rej, None, "error"),
            "rejected with an unknown code": setp(rej, "NOPE", "error", "code"),
            "rejected error without message": drop(rej, "error", "message"),
            "processed_at not a timestamp": setp(ok, "yesterday", "processed_at"),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("result", msg)
        # rejections echo what was sent, even an unknown type and a bad shop_id
        self.assertTrue(schemas.is_valid("result", setp(setp(rej, "foo", "type"), "a b", "shop_id")))
        self.assertTrue(schemas.is_valid("result", setp(setp(rej, None, "type"), None, "shop_id")))
        # result objects are open: an implementation may add fields
        self.assertTrue(schemas.is_valid("result", setp(ok, {"orders": 2}, "result", "x_extension")))
        # but the orders.migrated record has its shape (issue: revoke and migrate)
        self.assertFalse(schemas.is_valid("result", setp(ok, {"orders": 2}, "result", "orders.migrated")))
        self.assertTrue(schemas.is_valid("result", setp(ok, {"customer_id": "c", "company_id": "c-1",
                                                            "location_id": "l", "order_ids": ["o-1"]},
                                                       "result", "orders.migrated")))
        self.assertTrue(schemas.is_valid("result", setp(ok, None, "result", "migration")))

    def test_result_shapes_per_type(self):
        cases = [
            ("revoke", ("contact_removed",), "no"),
            ("revoke", ("not_held",), None),
            ("migrate", ("customer_id",), None),
            ("migrate", ("skipped", "deleted"), "0"),
            ("notify", ("skipped", 0, "reason"), "GONE"),
            ("notify", ("queued", 0, "notification_id"), "n-1"),
            ("shop.upsert", ("shop_id",), "bad shop"),
            ("company.upsert", ("locations_added",), "loc-1"),
            ("customer.upsert", ("created",), "yes"),
            ("order.upsert", ("order_id",), ""),
            ("template.update", ("template_version",), 0),
        ]
        for t, path, value in cases:
            ok = example_of_type("result", t)
            self.assertTrue(schemas.is_valid("result", ok))
            msg = drop(ok, "result", *path) if value is None else setp(ok, value, "result", *path)
            with self.subTest(type=t, path=path):
                self.assertInvalid("result", msg)
        previews = [e for e in schemas.schema("result")["examples"]
                    if e["type"] == "notify" and "previews" in (e["result"] or {})][0]
        self.assertInvalid("result", drop(previews, "result", "previews", 0, "html"))
        self.assertInvalid("result", setp(previews, {}, "result"))

    def test_access(self):
        ok = example("access")
        cases = {
            "bad experience": setp(ok, "b2c", "experience"),
            "bad access": setp(ok, "full", "companies", 0, "access"),
            "bad role": setp(ok, "owner", "companies", 0, "locations", 0, "role"),
            "version 0": setp(ok, 0, "version"),
            "version a string": setp(ok, "7", "version"),
            "missing caused_by": drop(ok, "caused_by"),
            "caused_by not a UUID": setp(ok, "<command_id>", "caused_by"),
            "b2b without any role": setp(ok, [], "companies"),
            "d2c with a role": setp(ok, "d2c", "experience"),
            "no_access with locations": setp(ok, "no_access", "companies", 0, "access"),
            "access locations without any": setp(ok, [], "companies", 0, "locations"),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("access", msg)

    def test_notification(self):
        sent, failed = example("notification", 0), example("notification", 1)
        cases = {
            "bad status": setp(sent, "queued", "status"),
            "bad type": setp(sent, "notification.queued", "type"),
            "type does not match status": setp(sent, "notification.failed", "type"),
            "sent with an error": setp(sent, "boom", "error"),
            "failed without an error": setp(failed, None, "error"),
            "attempts 0": setp(sent, 0, "attempts"),
            "missing type": drop(sent, "type"),
            "missing notification_id": drop(sent, "notification_id"),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("notification", msg)

    def test_dead_letter(self):
        ok = example("dead-letter")
        cases = {
            "unknown code": setp(ok, "INVALID", "error.code"),
            "missing source.offset": drop(ok, "source.offset"),
            "partition not a number": setp(ok, "four", "source.partition"),
            "offset negative": setp(ok, "-1", "source.offset"),
        }
        for what, msg in cases.items():
            with self.subTest(what):
                self.assertInvalid("dead-letter", msg)


class Manifest(unittest.TestCase):
    def setUp(self):
        self.m = schemas.load_manifest()

    def test_shape(self):
        self.assertEqual(self.m["prefix"]["default"], "b2b.")
        self.assertEqual(self.m["prefix"]["env"], "B2BD_TOPIC_PREFIX")
        suffixes = [t["suffix"] for t in self.m["topics"]]
        self.assertEqual(len(suffixes), len(set(suffixes)))
        for t in self.m["topics"]:
            with self.subTest(topic=t["suffix"]):
                self.assertEqual(t["default_name"], self.m["prefix"]["default"] + t["suffix"])
                self.assertIn(t["direction"], ("in", "out"))
                self.assertEqual(t["replication_factor"], 3)
                self.assertIsInstance(t["partitions"], int)
                self.assertGreater(t["partitions"], 0)
                self.assertEqual(set(t["schemas"]), set(t["message_types"]))
                for f in t["schemas"].values():
                    self.assertIn(f, schemas.load_all())
                for k, v in t["config"].items():
                    self.assertIsInstance(v, str, k)
                cp = t["config"]["cleanup.policy"]
                self.assertEqual(cp == "compact", t["compacted"])
                if cp == "delete":
                    self.assertRegex(t["config"]["retention.ms"], r"^[0-9]+$")

    def test_retention_and_compaction(self):
        by = {t["suffix"]: t for t in self.m["topics"]}
        day = 86400000
        self.assertEqual(by["events.access"]["config"]["cleanup.policy"], "compact")
        self.assertEqual(int(by["results"]["config"]["retention.ms"]), 7 * day)
        self.assertEqual(int(by["dlq"]["config"]["retention.ms"]), 30 * day)
        self.assertEqual(int(by["events.notifications"]["config"]["retention.ms"]), 30 * day)
        for t in self.m["topics"]:
            if t["direction"] == "in":
                self.assertEqual(int(t["config"]["retention.ms"]), 7 * day)
                # the dead-letter topic takes any command-topic message, headers added
                self.assertGreater(int(by["dlq"]["config"]["max.message.bytes"]),
                                   int(t["config"]["max.message.bytes"]))
                # commands over max_message_bytes (default 1 MiB) must reach the daemon
                self.assertGreater(int(t["config"]["max.message.bytes"]), 1048576)

    def test_command_types_and_topics(self):
        seen = {}
        for t in self.m["topics"]:
            if t["direction"] == "in" and not t.get("any_type"):
                for ty in t["message_types"]:
                    seen[ty] = t["suffix"]
        self.assertEqual(seen, schemas.TOPIC_OF_TYPE)

    def test_the_bulk_topic_takes_every_type_keyed_as_on_its_own_topic(self):
        by = {t["suffix"]: t for t in self.m["topics"]}
        bulk = by[schemas.BULK_TOPIC]
        self.assertTrue(bulk["any_type"])
        self.assertEqual([t["suffix"] for t in self.m["topics"] if t.get("any_type")],
                         [schemas.BULK_TOPIC])
        self.assertEqual(sorted(bulk["message_types"]), sorted(schemas.COMMAND_TYPES))
        for ty in schemas.COMMAND_TYPES:
            own = by[schemas.TOPIC_OF_TYPE[ty]]
            with self.subTest(type=ty):
                self.assertEqual(bulk["schemas"][ty], own["schemas"][ty])
                self.assertEqual(bulk["key_by_type"][ty], own.get("key_by_type", {}).get(ty, own["key"]))
        # a command topic in every other respect
        self.assertEqual(bulk["config"], by["commands.sync"]["config"])

    @need_contract
    def test_topics_equal_the_contracts_table(self):
        rows = topics_table(contract_text())
        self.assertEqual(len(rows), 12)
        by = {t["default_name"]: t for t in self.m["topics"]}
        names = [ticked(r[0])[0] for r in rows]
        self.assertEqual(sorted(names), sorted(by))
        implicit = {"results": ["result"], "events.access": ["access"], "dlq": ["dead-letter"],
                    # "any command type"
                    "commands.bulk": list(schemas.COMMAND_TYPES)}
        for (topic, direction, key, holds), name in zip(rows, names):
            t = by[name]
            with self.subTest(topic=name):
                parts = [p.strip() for p in direction.split(",")]
                self.assertEqual(t["direction"], parts[0])
                self.assertEqual(t["compacted"], "compacted" in parts[1:])
                self.assertEqual(t["key"], key.replace("`", ""))
                self.assertEqual(t["holds"], holds)
                # the messages a topic holds, not the commands its text mentions
                # ("a tombstone after `shop.redact`")
                types = [ty for ty in ticked(holds)
                         if t["direction"] == "in" or ty not in schemas.COMMAND_TYPES]
                if t.get("any_type"):
                    self.assertIn("any command type", holds)
                    self.assertEqual(sorted(t["message_types"]), sorted(implicit[t["suffix"]]))
                else:
                    self.assertEqual(t["message_types"], types or implicit[t["suffix"]])

    @need_contract
    def test_sync_keys_equal_the_contract(self):
        text = " ".join(section(contract_text(), "Topics").split())
        m = re.search(r"Keys on the sync topic: (.*?)\.(?:\s|$)", text)
        self.assertTrue(m)
        want = {}
        # remarks in parentheses ("(the customer kept)") are not part of the lists
        keys = re.sub(r" \([^)]*\)", "", m.group(1))
        for key, types in re.findall(r"`([a-z_/]+)` for ((?:`[a-z._]+`(?:,? and |, )?)+)", keys):
            for ty in ticked(types):
                want[ty] = key
        sync = [t for t in self.m["topics"] if t["suffix"] == "commands.sync"][0]
        self.assertEqual(set(want), set(sync["message_types"]))
        self.assertEqual(sync["key_by_type"], want)

    @need_contract
    def test_prefix_is_configurable_as_the_contract_says(self):
        text = contract_text()
        self.assertIn("The prefix `%s` is configurable" % self.m["prefix"]["default"], text)
        self.assertIn("`%s`" % self.m["prefix"]["env"], text)


class AgainstTheContract(unittest.TestCase):
    def setUp(self):
        if not HAVE_CONTRACT:
            self.skipTest("no contract at %s" % CONTRACT)
        self.text = contract_text()

    def test_error_codes(self):
        m = re.search(r"^Error codes:(.*?)(?=^\s*$)", self.text, re.S | re.M)
        self.assertTrue(m)
        want = ticked(m.group(1))
        common = schemas.schema("common")["$defs"]
        self.assertEqual(common["error_code"]["enum"], want)
        err = schemas.schema("result")["$defs"]["error"]["properties"]["code"]
        self.assertEqual(resolve("result.schema.json", err)[1]["enum"], want)

    def test_dead_letter_codes(self):
        b = bullet(section(self.text, "Precise rules"), "**Dead letters.**")
        want = [c for c in ticked(b) if re.fullmatch(r"[A-Z_]+", c)]
        self.assertEqual(want, ["NOT_JSON", "NOT_A_COMMAND", "TOO_LARGE"])
        dl = schemas.schema("dead-letter")
        # and the dead letter of commands the broker deleted ("Limits and failures")
        lost = bullet(section(self.text, "Limits and failures"), "**Commands the broker deleted first**")
        self.assertIn("`error.code` = `COMMANDS_LOST`", lost)
        self.assertEqual(dl["properties"]["error.code"]["enum"], want + ["COMMANDS_LOST"])
        # the header names: a command's dead letter ...
        env = section(self.text, "Command envelope")
        m = re.search(r"reason in headers \(([^)]*)\)", " ".join(env.split()))
        self.assertTrue(m)
        names = sorted(ticked(m.group(1)))
        ex = [e for e in dl["examples"] if e["error.code"] != "COMMANDS_LOST"][0]
        self.assertTrue(schemas.is_valid("dead-letter", ex))
        for h in names:
            self.assertFalse(schemas.is_valid("dead-letter", drop(ex, h)), h)
        # ... and a gap's: the headers the rule lists, source.offset not among them
        m = re.search(r"headers (`error\.code`.*?)\(the first", lost)
        lost_names = sorted(n for n in ticked(m.group(1)) if "." in n)
        self.assertEqual(lost_names, sorted(["error.code", "error.message", "source.topic",
                                             "source.partition", "lost.from_offset", "lost.to_offset"]))
        gap = [e for e in dl["examples"] if e["error.code"] == "COMMANDS_LOST"][0]
        self.assertEqual(sorted(gap), lost_names)
        self.assertTrue(schemas.is_valid("dead-letter", gap))
        for h in lost_names:
            self.assertFalse(schemas.is_valid("dead-letter", drop(gap, h)), h)
        self.assertFalse(schemas.is_valid("dead-letter", dict(gap, **{"lost.to_offset": "-1"})))

    def test_required_fields(self):
        b = bullet(section(self.text, "Precise rules"), "**Required fields.**")
        b = b.split(". A missing")[0]
        for part in b.split(";"):
            head, _, fields = part.partition(":")
            ty = ticked(head)[0]
            want = set(ticked(fields))
            with self.subTest(type=ty):
                if ty == "assign":
                    self.assertIn("by email", head)
                    self.assertEqual(want, {"email"})
                    ok = with_payload("assign", customer={"email": "a@b.example"})
                    self.assertTrue(schemas.is_valid("assign", ok))
                    continue
                payload = resolve("command.%s.schema.json" % ty,
                                  {"$ref": "#/$defs/payload"})[1]
                self.assertEqual(set(payload.get("required", [])), want)
                for f in want:
                    self.assertFalse(schemas.is_valid(ty, with_payload(ty, **{f: DROP})), f)
                    self.assertFalse(schemas.is_valid(ty, with_payload(ty, **{f: None})), f)

    def test_enums(self):
        cmds = section(self.text, "Commands")
        common = schemas.schema("common")["$defs"]
        m = re.search(r"`role` is `(\w+)` or `(\w+)`", " ".join(cmds.split()))
        self.assertEqual(common["role"]["enum"], list(m.groups()))
        rv = resolve("command.revoke.schema.json", {"$ref": "#/$defs/payload"})[1]
        b = bullet(cmds, "`scope`:")
        self.assertEqual(rv["properties"]["scope"]["enum"],
                         re.findall(r"`(\w+)` \(", b))
        m = re.search(r'"status": "([a-z|]+)"', cmds)
        order = resolve("command.order.upsert.schema.json", {"$ref": "#/$defs/payload"})[1]
        self.assertEqual(order["properties"]["status"]["enum"], m.group(1).split("|"))
        b = bullet(cmds, "`recipient`:")
        nt = resolve("command.notify.schema.json", {"$ref": "#/$defs/payload"})[1]
        want = re.search(r"`(\w+)` \(default\) or `(\w+)`", b).groups()
        self.assertEqual([x for x in nt["properties"]["recipient"]["enum"] if x], list(want))
        self.assertEqual(nt["properties"]["recipient"]["default"], want[0])
        res = section(self.text, "Result")
        self.assertEqual(schemas.schema("result")["properties"]["status"]["enum"],
                         list(re.search(r"`status` is `(\w+)` or `(\w+)`", res).groups()))
        acc = section(self.text, "Access event")
        a = schemas.schema("access")
        self.assertEqual(a["properties"]["experience"]["enum"],
                         list(re.search(r'"experience": "(\w+)"', acc).groups())
                         + list(re.search(r"else `(\w+)`", acc).groups()))
        self.assertIn("no_access", a["$defs"]["company_access"]["properties"]["access"]["enum"])
        self.assertIn(re.search(r'"access": "(\w+)"', acc).group(1),
                      a["$defs"]["company_access"]["properties"]["access"]["enum"])
        pr = section(self.text, "Precise rules")
        b = bullet(pr, "**`notify` result.**")
        reasons = re.search(r"reasons ((?:`\w+`,? ?)+)", b).group(1)
        skipped = schemas.schema("result")["$defs"]["notify_result"]["properties"]["skipped"]
        susp = " ".join(section(self.text, "Suspension").split())
        self.assertIn("listed in `skipped` with reason `SUSPENDED`", susp)
        self.assertEqual(skipped["items"]["properties"]["reason"]["enum"], ticked(reasons) + ["SUSPENDED"])
        self.assertIn('"access": "suspended"', susp)
        self.assertIn("suspended", a["$defs"]["company_access"]["properties"]["access"]["enum"])
        nt = section(self.text, "Notification events")
        n = schemas.schema("notification")
        self.assertEqual(n["properties"]["status"]["enum"],
                         re.findall(r'"(\w+)"', re.search(r'"status": ([^,]*"[^"]*"[^,]*),', nt).group(1))[:2])
        b = bullet(pr, "**Notification events**")
        self.assertEqual(n["properties"]["type"]["enum"], re.findall(r'"(notification\.\w+)"', b))

    def test_id_limits(self):
        env = section(self.text, "Command envelope")
        self.assertIn("1 to 64 characters of `A-Za-z0-9._:-`", " ".join(env.split()))
        self.assertIn("(1 to 255 characters)", " ".join(env.split()))
        common = schemas.schema("common")["$defs"]
        self.assertEqual(common["shop_id"]["pattern"], "^[A-Za-z0-9._:-]{1,64}$")
        self.assertEqual((common["id"]["minLength"], common["id"]["maxLength"]), (1, 255))

    def test_field_names_of_the_contracts_shapes(self):
        """Every field name the contract shows inline is declared by the schema."""
        cmds = section(self.text, "Commands")
        pr = section(self.text, "Precise rules")
        checks = []
        priv = section(self.text, "Privacy, profiles and audit")
        for ty in schemas.SYNC_TYPES:
            line = bullet(cmds if "`%s`:" % ty in cmds else priv, "`%s`:" % ty)
            for shape in re.findall(r"`(\{.*?\})`", line)[:1 if ty != "customer.data_request" else 2]:
                if shape == "{}":
                    payload = resolve("command.%s.schema.json" % ty, {"$ref": "#/$defs/payload"})[1]
                    self.assertFalse(payload.get("required"), ty)
                    continue
                if shape.startswith('{"event_id"'):
                    continue
                checks.append((ty, "command.%s.schema.json" % ty, "#/$defs/payload", shape))
        for ty in ("customer.redact",):
            for shape in re.findall(r"`(\{.*?\})`", bullet(priv, "`%s`:" % ty))[:2]:
                checks.append((ty, "command.%s.schema.json" % ty, "#/$defs/payload", shape))
        flat_priv = " ".join(priv.split())
        results = {"customer.merge": "customer_merge_result",
                   "customer.data_request": "customer_data_request_result",
                   "customer.redact": "customer_redact_result", "shop.redact": "shop_redact_result"}
        for ty, d in results.items():
            b = bullet(priv, "`%s`:" % ty)
            shape = re.search(r"Result: `(\{.*?\})`", b).group(1)
            checks.append((ty + " result", "result.schema.json", "#/$defs/" + d, shape))
        export = re.search(r"message: `(\{\"event_id\", \"type\": \"customer\.data_export\".*?\})`", flat_priv).group(1)
        checks.append(("customer.data_export", "data-export.schema.json", "#", export))
        shop = re.search(r"publishes `(\{\"event_id\", \"type\": \"shop\.settings\".*?\})`", flat_priv).group(1)
        checks.append(("shop.settings", "shop-settings.schema.json", "#", shop))
        flat = " ".join(cmds.split())
        checks.append(("revoke result", "result.schema.json", "#/$defs/revoke_result",
                       re.search(r'Result: `(\{"customer_id", "removed_roles".*?\})`', flat).group(1)))
        migrate_shape = re.search(r'Result: `(\{"customer_id", "location_id".*?\})`', flat).group(1)
        checks.append(("migrate result", "result.schema.json", "#/$defs/migrate_result", migrate_shape))
        nb = bullet(pr, "**`notify` result.**")
        for shape in re.findall(r"`(\{.*?\})`", nb):
            checks.append(("notify result", "result.schema.json", "#/$defs/notify_result", shape))
        nt = " ".join(section(self.text, "Notification events").split())
        checks.append(("notification", "notification.schema.json", "#",
                       re.search(r"`(\{.*?\})`", nt).group(1)))
        for what, f, ptr, shape in checks:
            names = quoted_names(shape)
            self.assertTrue(names, what)
            f2, node = resolve(f, {"$ref": ptr})
            have = property_names(f2, node)
            with self.subTest(what):
                self.assertLessEqual(names, have)

    def test_the_contracts_json_examples_validate(self):
        """The contract's ```json blocks, with its "…" placeholders filled in."""
        blocks = []
        heading = None
        lines = self.text.splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("#"):
                heading = lines[i]
            if lines[i].strip() == "```json":
                j = i + 1
                while lines[j].strip() != "```":
                    j += 1
                blocks.append((heading, json.loads("\n".join(lines[i + 1:j]))))
                i = j
            i += 1
        self.assertGreaterEqual(len(blocks), 7)
        envelope = None
        done = set()
        for heading, doc in blocks:
            doc = fill(doc)
            if heading.startswith("## Command envelope"):
                envelope = doc
                kind, msg = "envelope", doc
            elif heading.startswith("### `"):
                ty = ticked(heading)[0]
                msg = dict(envelope, type=ty, payload=doc)
                kind = ty
            elif heading.startswith("## Result"):
                kind, msg = "result", doc
            elif heading.startswith("## Access event"):
                kind, msg = "access", doc
            else:
                self.fail("unexpected json block under %s" % heading)
            with self.subTest(block=heading):
                self.assertEqual(schemas.errors(kind, msg), [])
                done.add(kind)
        self.assertEqual(done, {"envelope", "assign", "revoke", "migrate", "notify", "suspend",
                                "result", "access"})


class NewSections(unittest.TestCase):
    """The sections added on 2026-12-06: Suspension, Trace context and dry runs."""

    def setUp(self):
        if not HAVE_CONTRACT:
            self.skipTest("no contract at %s" % CONTRACT)
        self.text = contract_text()

    def test_suspension(self):
        sec = section(self.text, "Suspension")
        flat = " ".join(sec.split())
        self.assertIn("### `suspend`, `resume` (topic revoke, key `shop_id/company_id`)", sec)
        for ty in ("suspend", "resume"):
            with self.subTest(type=ty):
                payload = resolve("command.%s.schema.json" % ty, {"$ref": "#/$defs/payload"})[1]
                self.assertEqual(payload["required"], ["company_id"])
                company = with_payload(ty, 1, customer_id=None)
                self.assertTrue(schemas.is_valid(ty, company))
                self.assertTrue(schemas.is_valid(ty, with_payload(ty, 1, customer_id=DROP)))
                self.assertFalse(schemas.is_valid(ty, with_payload(ty, 1, customer_id=7)))
                self.assertFalse(schemas.is_valid(ty, with_payload(ty, 1, company_id=DROP)))
        shape = re.search(r"Result: `(\{\"company_id\".*?\})`", flat).group(1)
        f, node = resolve("result.schema.json", {"$ref": "#/$defs/suspend_result"})
        self.assertLessEqual(quoted_names(shape), property_names(f, node))
        self.assertEqual(set(node["required"]), quoted_names(shape))
        res = example_of_type("result", "suspend")
        self.assertTrue(schemas.is_valid("result", res))
        res["result"]["customers_affected"] = -1
        self.assertFalse(schemas.is_valid("result", res))
        # assign while suspended: "suspended": true, absent otherwise
        self.assertIn('its result carries `"suspended": true`', flat)
        a = example_of_type("result", "assign")
        a["result"]["suspended"] = True
        self.assertTrue(schemas.is_valid("result", a))
        a["result"]["suspended"] = False
        self.assertFalse(schemas.is_valid("result", a))
        # the export's companies carry "suspended": bool
        self.assertIn('gives every entry of `companies` a `"suspended": bool`', flat)
        exp = schemas.schema("customer.data_export")
        self.assertEqual(exp["properties"]["companies"]["items"]["properties"]["suspended"]["type"],
                         "boolean")

    def test_dry_run(self):
        sec = " ".join(section(self.text, "Trace context and dry runs").split())
        b = re.search(r"The envelope of an (.*?) may carry `\"dry_run\": true`", sec).group(1)
        allowed = set(ticked(b))
        self.assertEqual(allowed, {"assign", "revoke", "migrate", "suspend", "resume"})
        for ty in schemas.COMMAND_TYPES:
            ex = example(ty)
            with self.subTest(type=ty):
                self.assertTrue(schemas.is_valid(ty, dict(ex, dry_run=False)))
                self.assertTrue(schemas.is_valid(ty, dict(ex, dry_run=None)))
                self.assertFalse(schemas.is_valid(ty, dict(ex, dry_run="yes")))
                self.assertEqual(schemas.is_valid(ty, dict(ex, dry_run=True)), ty in allowed)
        self.assertIn('with `"dry_run": true` added to the result message (beside `status`)', sec)
        res = example_of_type("result", "assign")
        self.assertTrue(schemas.is_valid("result", dict(res, dry_run=True)))
        self.assertFalse(schemas.is_valid("result", dict(res, dry_run=False)))

    def test_trace_context(self):
        sec = " ".join(section(self.text, "Trace context and dry runs").split())
        self.assertIn("`traceparent` and `tracestate`", sec)
        ok = ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
              # a later version: read by its first four fields
              "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"]
        bad = ["ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   # version ff
               "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   # trace id all zeros
               "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   # parent id all zeros
               "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   # upper case
               "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # 00 has four fields
               "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    # 31 digits
               ""]
        for v in ok:
            self.assertTrue(schemas.is_valid("trace-context", {"traceparent": v}), v)
        for v in bad:
            self.assertFalse(schemas.is_valid("trace-context", {"traceparent": v}), v)


def fill(node, key=None):
    """Replaces the contract's placeholders ("…", "<command_id>") with valid values."""
    if isinstance(node, dict):
        return {k: fill(v, k) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(v, key) for v in node]
    if node in ("…", "<command_id>"):
        if key.endswith("_at"):
            return TS
        if key in ("import_id",):
            return "import-1"
        return UUID_B
    return node


if __name__ == "__main__":
    unittest.main()

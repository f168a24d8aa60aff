"""The contract's "Privacy, profiles and audit": audit (actor, issued_at, access history),
shop.settings events, stale upserts, customer.merge, customer.data_request,
customer.redact and shop.redact, through Kafka and PostgreSQL."""
import json
import os
import shutil
import tempfile
import subprocess
import unittest

import harness
from b2btest import B2bTestCase, wait_until

import schemas

FAST_RETRY = {"B2BD_NOTIFIER_RETRY_INITIAL_MS": "200", "B2BD_NOTIFIER_RETRY_MAX_MS": "400"}


class PrivacyBase(B2bTestCase):
    PRIVATE_SMTP = True
    DAEMON_ENV = FAST_RETRY

    def setUp(self):
        super().setUp()
        self.smtp.control("clear")
        self.make_company("c-1", ["loc-1", "loc-2"])

    def order(self, order_id, customer, company=None, location=None, status="open", **kw):
        p = {"order_id": order_id, "customer_id": customer, "status": status,
             "company_id": company, "location_id": location, "total": "10.00", "currency": "EUR"}
        p.update(kw)
        return self.applied("order.upsert", p)

    def access_msgs(self, customer_id):
        """(key, value) of events.access for the customer, tombstones included (value None)."""
        key = "%s/%s" % (self.shop, customer_id)
        self.settle()
        return [(m[0], m[1]) for m in self.bus.read_to_end("events.access") if m[0] == key]

    def wait_tombstone(self, topic, key, timeout=30):
        return self.bus.wait_for(topic, lambda m: m[0] == key and m[1] is None, timeout=timeout)

    def outbox_drained(self):
        wait_until(lambda: self.query("SELECT count(*) FROM outbox")[0][0] == 0, what="outbox drained")

    def pg_dump(self):
        out = subprocess.run(["pg_dump", "--data-only", "--dbname", self.dsn],
                             check=True, capture_output=True, timeout=60)
        return out.stdout.decode("utf-8")


class AuditTest(PrivacyBase):

    def test_actor_and_issued_at_stored_with_every_applied_command(self):
        r1 = self.run_cmd("customer.upsert", {"customer_id": "cust-1", "email": "a1@example.com"},
                          actor="sync:shopify", issued_at="2026-12-01T09:00:00Z")
        r2 = self.run_cmd("customer.upsert", {"customer_id": "cust-2", "email": "a2@example.com"})
        rows = dict((str(c), (a, i)) for c, a, i in self.query(
            "SELECT command_id, actor, issued_at FROM commands WHERE command_id IN (%s, %s)",
            (r1["command_id"], r2["command_id"])))
        self.assertEqual(rows[r1["command_id"]], ("sync:shopify", "2026-12-01T09:00:00Z"))
        self.assertEqual(rows[r2["command_id"]], (None, None))

    def test_access_events_carry_the_actor_and_history_is_kept(self):
        self.make_customer("cust-1")
        self.run_cmd("assign", self.assign("cust-1", [("loc-1", "ordering_only")]), actor="staff:42")
        self.run_cmd("revoke", {"company_id": "c-1", "customer_id": "cust-1", "scope": "all_locations"})
        e1, e2 = self.wait_access("cust-1", 1), self.wait_access("cust-1", 2)
        self.assertEqual(e1["actor"], "staff:42")
        self.assertIn("actor", e2)
        self.assertIsNone(e2["actor"])
        hist = self.query("SELECT version, companies, caused_by::text, actor FROM access_history"
                          " WHERE shop_id = %s AND customer_id = %s ORDER BY version", (self.shop, "cust-1"))
        self.assertEqual([(h[0], h[1], h[2], h[3]) for h in hist],
                         [(1, e1["companies"], e1["caused_by"], "staff:42"),
                          (2, e2["companies"], e2["caused_by"], None)])

    def test_bulk_assigns_keep_each_actor(self):
        """Runs of assigns and of revokes are applied set-based (b2bd_assign_bulk,
        b2bd_revoke_bulk, which take each command's actor and issued_at in its row): each
        still gets its own, or none."""
        actor = lambda i: None if i % 3 == 2 else "import:%d" % i  # noqa: E731
        issued = lambda i: "2026-12-01T09:00:0%dZ" % i if i % 2 == 0 else None  # noqa: E731
        cmds = [self.command("assign", self.assign({"email": "bulk%d@example.com" % i},
                                                   [("loc-1", "ordering_only")]),
                             **dict({"actor": actor(i)} if actor(i) else {},
                                    **({"issued_at": issued(i)} if issued(i) else {})))
                for i in range(6)]
        for r in self.run_cmds(cmds):
            self.assertEqual(r["status"], "applied", r)
        revokes = [self.command("revoke", {"company_id": "c-1", "customer_id": "bulk%d@example.com" % i,
                                           "scope": "all_locations"},
                                **({"actor": "cleanup:%d" % i} if i != 4 else {}))
                   for i in range(6)]
        for r in self.run_cmds(revokes):
            self.assertEqual(r["status"], "applied", r)
        for i in range(6):
            self.assertEqual(self.wait_access("bulk%d@example.com" % i, 1)["actor"], actor(i))
            self.assertEqual(self.wait_access("bulk%d@example.com" % i, 2)["actor"],
                             None if i == 4 else "cleanup:%d" % i)
        rows = dict((str(c), (a, t)) for c, a, t in self.query(
            "SELECT command_id, actor, issued_at FROM commands WHERE command_id = ANY(%s::uuid[])",
            ([c["command_id"] for c in cmds + revokes],)))
        self.assertEqual([rows[c["command_id"]] for c in cmds], [(actor(i), issued(i)) for i in range(6)])
        self.assertEqual([rows[c["command_id"]] for c in revokes],
                         [(None if i == 4 else "cleanup:%d" % i, None) for i in range(6)])
        hist = self.query("SELECT customer_id, version, actor FROM access_history WHERE shop_id = %s"
                          " AND customer_id LIKE 'bulk%%' ORDER BY 1, 2", (self.shop,))
        self.assertEqual(hist, [("bulk%d@example.com" % i, v, a) for i in range(6)
                                for v, a in ((1, actor(i)), (2, None if i == 4 else "cleanup:%d" % i))])


class ShopEventsTest(PrivacyBase):

    def shop_events(self):
        self.settle()
        return [m[1] for m in self.bus.read_to_end("events.shops") if m[0] == self.shop]

    def test_each_change_publishes_shop_settings(self):
        base = {"name": "Nordic", "account_url": "https://n.example/account", "b2b_only": True}
        c1 = self.run_cmd("shop.upsert", base, actor="admin:1")
        self.run_cmd("shop.upsert", base)  # changes nothing
        c3 = self.run_cmd("shop.upsert", dict(base, b2b_only=False))
        self.run_cmd("shop.upsert", dict(base, b2b_only=False, staff_email="s@n.example"))
        evs = self.shop_events()
        self.assertEqual([e["version"] for e in evs], [1, 2, 3])
        self.assertEqual([e["b2b_only"] for e in evs], [True, False, False])
        self.assertEqual((evs[0]["caused_by"], evs[0]["actor"], evs[0]["name"], evs[0]["account_url"]),
                         (c1["command_id"], "admin:1", "Nordic", "https://n.example/account"))
        self.assertEqual((evs[1]["caused_by"], evs[1]["actor"]), (c3["command_id"], None))
        for e in evs:
            self.assertEqual(schemas.errors("shop.settings", e), [])


class StaleUpsertTest(PrivacyBase):

    def test_customer_upsert_older_than_stored_is_stale(self):
        new = {"customer_id": "cust-1", "email": "new@example.com", "first_name": "New",
               "source_updated_at": "2026-12-01T10:00:00Z"}
        self.assertNotIn("stale", self.applied("customer.upsert", new))
        old = dict(new, email="old@example.com", first_name="Old", source_updated_at="2026-12-01T09:59:59Z")
        r = self.applied("customer.upsert", old)
        self.assertEqual(r, {"customer_id": "cust-1", "created": False, "stale": True})
        self.assertEqual(self.query("SELECT email, first_name FROM customers WHERE shop_id = %s", (self.shop,)),
                         [("new@example.com", "New")])
        # the same time is not older; the same instant in another zone neither
        same = dict(new, first_name="Same", source_updated_at="2026-12-01T11:00:00+01:00")
        self.assertNotIn("stale", self.applied("customer.upsert", same))
        # without the field it applies as before
        self.assertNotIn("stale", self.applied("customer.upsert", dict(new, first_name="Plain", source_updated_at=None)))
        self.assertEqual(self.query("SELECT first_name FROM customers WHERE shop_id = %s", (self.shop,))[0][0], "Plain")
        # the stored time stays the newest one
        self.assertTrue(self.applied("customer.upsert", old).get("stale"))

    def test_every_upsert_kind(self):
        t1, t0 = "2026-12-01T10:00:00Z", "2026-12-01T09:00:00Z"
        self.make_customer("cust-1")
        cases = [
            ("shop.upsert", {"name": "A", "source_updated_at": t1}, {"name": "B", "source_updated_at": t0},
             "SELECT name FROM shops WHERE shop_id = %s", ("A",)),
            ("company.upsert", {"company_id": "c-9", "name": "A", "source_updated_at": t1},
             {"company_id": "c-9", "name": "B", "locations": [{"location_id": "l-9"}], "source_updated_at": t0},
             "SELECT c.name || count(l.location_id) FROM companies c LEFT JOIN locations l USING (shop_id, company_id)"
             " WHERE shop_id = %s AND company_id = 'c-9' GROUP BY c.name", ("A0",)),
            ("order.upsert", {"order_id": "o-1", "customer_id": "cust-1", "status": "open", "source_updated_at": t1},
             {"order_id": "o-1", "customer_id": "cust-1", "status": "cancelled", "source_updated_at": t0},
             "SELECT status FROM orders WHERE shop_id = %s", ("open",)),
        ]
        for kind, first, second, sql, want in cases:
            with self.subTest(kind=kind):
                self.applied(kind, first)
                r = self.applied(kind, second)
                self.assertIs(r.get("stale"), True, r)
                self.assertIs(r.get("created"), False, r)
                self.assertEqual(self.query(sql, (self.shop,))[0], want)


class MergeTest(PrivacyBase):

    def setUp(self):
        super().setUp()
        self.applied("shop.upsert", {"name": "Nordic", "from_email": "hello@nordic.example"})
        self.make_customer("cust-1", tags=["VIP", "north"])
        self.make_customer("cust-2", tags=["vip", "South", "NORTH"])

    def test_refusals(self):
        # never contacts, never B2B orders: plain D2C profiles
        self.rejected("customer.merge", {"customer_id": "cust-1", "merge_customer_id": "nope"},
                      "NOT_FOUND", "payload.merge_customer_id")
        self.rejected("customer.merge", {"customer_id": "nope", "merge_customer_id": "cust-2"},
                      "NOT_FOUND", "payload.customer_id")
        self.rejected("customer.merge", {"customer_id": "cust-1", "merge_customer_id": "cust-1"},
                      "INVALID", "payload.merge_customer_id")
        # a contact without roles blocks it
        self.applied("assign", self.assign("cust-2", []))
        r = self.rejected("customer.merge", {"customer_id": "cust-1", "merge_customer_id": "cust-2"},
                          "MERGE_REFUSED", "payload.merge_customer_id")
        self.assertIn("contact", r["error"]["message"])
        # both blocking: the kept one is named
        self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")]))
        self.rejected("customer.merge", {"customer_id": "cust-1", "merge_customer_id": "cust-2"},
                      "MERGE_REFUSED", "payload.customer_id")
        # a B2B order, even cancelled, blocks it once the contact is gone
        self.make_customer("cust-3")
        self.make_customer("cust-4")
        self.order("o-b2b", "cust-4", "c-1", "loc-1", status="cancelled")
        r = self.rejected("customer.merge", {"customer_id": "cust-3", "merge_customer_id": "cust-4"},
                          "MERGE_REFUSED", "payload.merge_customer_id")
        self.assertIn("B2B order", r["error"]["message"])
        self.rejected("customer.merge", {"customer_id": "cust-4", "merge_customer_id": "cust-3"},
                      "MERGE_REFUSED", "payload.customer_id")
        # nothing changed
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s", (self.shop,))[0][0], 4)

    def test_merge_moves_orders_and_notifications_joins_tags(self):
        self.order("o-1", "cust-1")
        self.order("o-2", "cust-2")
        self.order("o-3", "cust-2", status="cancelled")
        # cust-2 was once a contact (with an email and access events), then removed
        self.applied("assign", self.assign("cust-2", [("loc-1", "ordering_only")], notify=True))
        self.applied("revoke", {"company_id": "c-1", "customer_id": "cust-2", "scope": "company"})
        nid = self.query("SELECT notification_id::text FROM notifications WHERE shop_id = %s", (self.shop,))[0][0]
        r = self.applied("customer.merge", {"customer_id": "cust-1", "merge_customer_id": "cust-2"})
        self.assertEqual(r, {"customer_id": "cust-1", "merged_customer_id": "cust-2",
                             "moved_order_ids": ["o-2", "o-3"]})
        self.assertEqual(self.query("SELECT order_id FROM orders WHERE shop_id = %s AND customer_id = 'cust-1'"
                                    " ORDER BY 1", (self.shop,)), [("o-1",), ("o-2",), ("o-3",)])
        self.assertEqual(self.query("SELECT customer_id FROM notifications WHERE notification_id = %s", (nid,)),
                         [("cust-1",)])
        self.assertEqual(self.query("SELECT customer_id, email, tags FROM customers WHERE shop_id = %s", (self.shop,)),
                         [("cust-1", "cust-1@example.com", ["VIP", "north", "South"])])
        self.wait_tombstone("events.access", "%s/cust-2" % self.shop)
        # the kept one never had an access event: no tombstone for it
        self.assertEqual(self.access_msgs("cust-1"), [])

    def test_tags_keep_the_first_250(self):
        self.make_customer("cust-5", tags=["a%03d" % i for i in range(200)])
        self.make_customer("cust-6", tags=["A%03d" % i for i in range(150, 250)] + ["b%03d" % i for i in range(100)])
        self.applied("customer.merge", {"customer_id": "cust-5", "merge_customer_id": "cust-6"})
        tags = self.query("SELECT tags FROM customers WHERE shop_id = %s AND customer_id = 'cust-5'", (self.shop,))[0][0]
        self.assertEqual(tags, ["a%03d" % i for i in range(200)] + ["A%03d" % i for i in range(200, 250)])
        # no tombstone for a customer that never had an access event
        self.assertEqual(self.access_msgs("cust-6"), [])


class DataRequestTest(PrivacyBase):

    def setUp(self):
        super().setUp()
        self.applied("shop.upsert", {"name": "Nordic", "from_email": "hello@nordic.example"})
        self.email = "Ann.%s@Example.com" % self.shop
        self.make_customer("cust-1", email=self.email, first_name="Ann", last_name="Berg",
                           phone="+46 70 000", tags=["vip"])

    def export_for(self, request_id):
        return self.bus.wait_for("events.privacy",
                                 lambda m: isinstance(m[1], dict) and m[1].get("request_command_id") == request_id)

    def test_export_holds_everything_item_by_item(self):
        a = self.run_cmd("assign", self.assign("cust-1", [("loc-2", "location_admin")], notify=True,
                                              migrate_orders_to="loc-2"), actor="staff:7",
                         issued_at="2026-12-01T08:00:00Z")
        self.order("o-1", "cust-1", placed_at="2026-10-02T08:15:00Z")
        self.make_customer("cust-x")
        self.order("o-x", "cust-x")
        r = self.run_cmd("customer.data_request", {"customer_id": "cust-1"}, actor="dpo:1")
        self.assertEqual(r["status"], "applied", r)
        key, doc = self.export_for(r["command_id"])[:2]
        self.assertEqual(key, "%s/cust-1" % self.shop)
        self.assertEqual(r["result"], {"customer_id": "cust-1", "export_event_id": doc["event_id"]})
        self.assertEqual(schemas.errors("customer.data_export", doc), [])
        self.assertEqual(doc["profile"], {"customer_id": "cust-1", "email": self.email, "first_name": "Ann",
                                          "last_name": "Berg", "phone": "+46 70 000", "tags": ["vip"]})
        self.assertEqual(doc["companies"], [{"company_id": "c-1", "name": "Company c-1",
                                             "locations": [{"location_id": "loc-2", "name": "Location loc-2",
                                                            "role": "location_admin"}],
                                             "suspended": False}])
        self.assertEqual([(o["order_id"], o["migrated"], o["placed_at"]) for o in doc["orders"]],
                         [("o-1", False, "2026-10-02T08:15:00.000Z")])
        self.assertEqual(doc["order_migrations"], [{"company_id": "c-1", "location_id": "loc-2",
                                                    "command_id": a["command_id"]}])
        self.assertEqual(len(doc["notifications"]), 1)
        n = doc["notifications"][0]
        self.assertEqual((n["notification_id"], n["to"]), (a["result"]["notification_ids"][0], self.email))
        self.assertIn("Ann", n["text"])
        ev = self.wait_access("cust-1", 1)
        self.assertEqual(doc["access_history"], [{"version": 1, "companies": ev["companies"],
                                                  "caused_by": a["command_id"], "actor": "staff:7",
                                                  "occurred_at": ev["occurred_at"]}])
        cmds = {c["command_id"]: c for c in doc["commands"]}
        self.assertEqual((cmds[a["command_id"]]["actor"], cmds[a["command_id"]]["issued_at"], cmds[a["command_id"]]["type"]),
                         ("staff:7", "2026-12-01T08:00:00Z", "assign"))
        types = sorted(c["type"] for c in doc["commands"])
        self.assertEqual(types, ["assign", "customer.upsert", "order.upsert"])  # not cust-x's
        # idempotent: the same command again, the same result, no second export
        again = self.run_cmd("customer.data_request", {"customer_id": "cust-1"}, command_id=r["command_id"])
        self.assertEqual(again, r)
        self.settle()
        exports = [m for m in self.bus.read_to_end("events.privacy")
                   if isinstance(m[1], dict) and m[1].get("request_command_id") == r["command_id"]]
        self.assertEqual(len(exports), 1)

    def test_by_email_unknown_and_other_shop(self):
        r = self.run_cmd("customer.data_request", {"email": self.email.upper()})
        key, doc = self.export_for(r["command_id"])[:2]
        self.assertEqual(key, "%s/%s" % (self.shop, self.email.upper().lower()))
        self.assertEqual(doc["customer_id"], "cust-1")
        self.rejected("customer.data_request", {"customer_id": "nope"}, "NOT_FOUND", "payload.customer_id")
        self.rejected("customer.data_request", {"email": "nobody@example.com"}, "NOT_FOUND", "payload.email")
        other = harness.unique_name("shop-")
        self.rejected("customer.data_request", {"customer_id": "cust-1"}, "NOT_FOUND", shop=other)
        self.rejected("customer.redact", {"customer_id": "cust-1"}, "NOT_FOUND", shop=other)
        self.rejected("customer.merge", {"customer_id": "cust-1", "merge_customer_id": "cust-1b"}, "NOT_FOUND",
                      shop=other)
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s", (self.shop,))[0][0], 1)


class RedactTest(PrivacyBase):

    def setUp(self):
        super().setUp()
        self.applied("shop.upsert", {"name": "Nordic", "from_email": "hello@nordic.example"})
        self.email = "zed.%s@example.com" % self.shop  # the customer's id too (created by email)

    def test_redact_leaves_no_trace(self):
        self.make_customer("keep-1")
        a = self.run_cmd("assign", self.assign({"email": self.email, "first_name": "Zebulon",
                                                "last_name": "Quarrington", "phone": "+46 555 0199"},
                                               [("loc-1", "ordering_only")], notify=True), actor="staff:1")
        self.assertEqual(a["result"]["customer_id"], self.email)
        self.order("o-1", self.email, "c-1", "loc-1", placed_at="2026-10-01T00:00:00Z")
        p = self.run_cmd("notify", {"company_id": "c-1", "customer_ids": [self.email, "keep-1"], "preview": True})
        self.smtp.wait_messages(1, to=self.email)
        seats = self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-1'",
                           (self.shop,))[0][0]
        r = self.run_cmd("customer.redact", {"email": self.email.upper()})
        self.assertEqual(r["status"], "applied", r)
        self.assertEqual(r["result"], {"customer_id": None, "erased": {"contacts": 1, "roles": 1,
                                                                       "notifications": 1, "orders_unlinked": 1}})
        # seats freed; orders keep id, amount and company
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = 'c-1'",
                                    (self.shop,))[0][0], seats - 1)
        self.assertEqual(self.query("SELECT order_id, customer_id, total::text, company_id FROM orders"
                                    " WHERE shop_id = %s", (self.shop,)), [("o-1", None, "10.00", "c-1")])
        self.assertEqual(self.query("SELECT status, to_address, subject, body_text, body_html FROM notifications"
                                    " WHERE shop_id = %s", (self.shop,)), [("sent", None, None, None, None)])
        # a final access event without email or access, then a tombstone
        msgs = self.access_msgs(self.email)
        self.assertEqual([m[1]["version"] if m[1] else None for m in msgs], [1, 2, None])
        final = msgs[1][1]
        self.assertEqual((final["email"], final["experience"], final["companies"], final["caused_by"]),
                         (None, "d2c", [], r["command_id"]))
        # older commands get their stored results, redacted, with the same event_id
        again = self.run_cmd("assign", self.assign({"email": self.email, "first_name": "Zebulon",
                                                    "last_name": "Quarrington", "phone": "+46 555 0199"},
                                                   [("loc-1", "ordering_only")], notify=True),
                             command_id=a["command_id"], actor="staff:1")
        self.assertEqual((again["event_id"], again["status"]), (a["event_id"], "applied"))
        self.assertIsNone(again["result"]["customer_id"])
        pa = self.run_cmd("notify", {"company_id": "c-1", "customer_ids": [self.email, "keep-1"], "preview": True},
                          command_id=p["command_id"])
        self.assertEqual(pa["event_id"], p["event_id"])
        self.assertEqual([pv["to"] for pv in p["result"]["previews"]], [self.email])
        self.assertEqual([(pv["to"], pv["subject"], pv["text"], pv["html"]) for pv in pa["result"]["previews"]],
                         [(None, None, None, None)])
        # idempotent: the redact again gets its result; a new one finds nothing
        self.assertEqual(self.run_cmd("customer.redact", {"email": self.email.upper()},
                                      command_id=r["command_id"]), r)
        self.rejected("customer.redact", {"email": self.email}, "NOT_FOUND", "payload.email")
        # no trace in the database: not in any row, not in the outbox once relayed
        self.outbox_drained()
        dump = self.pg_dump().lower()
        for secret in (self.email, "zebulon", "quarrington", "555 0199"):
            self.assertNotIn(secret.lower(), dump, secret)
        # the other customer untouched
        self.assertEqual(self.query("SELECT email FROM customers WHERE shop_id = %s", (self.shop,)),
                         [("keep-1@example.com",)])
        # after the tombstone the key's versions start again at 1
        again = self.run_cmd("assign", self.assign({"email": self.email}, [("loc-2", "ordering_only")]))
        ev = self.bus.wait_for("events.access", lambda m: isinstance(m[1], dict)
                               and m[1]["caused_by"] == again["command_id"])[1]
        self.assertEqual((ev["version"], ev["companies"][0]["locations"]),
                         (1, [{"location_id": "loc-2", "role": "ordering_only"}]))

    def test_redact_every_kind_of_data(self):
        """A customer with every kind of data b2bd keeps: profile, roles in two companies,
        a migrated and a B2B order, a sent and a failed email from the shop's own
        template, access history, an import. After the erasure neither the database
        (pg_dump --data-only) nor the outbox holds the email, the names or the phone, and
        the other customer's rows and access are as they were."""
        self.applied("template.update", {"subject": "Welcome {{customer.first_name}} {{customer.last_name}}",
                                         "text": "Hi {{customer.first_name}} <{{customer.email}}>",
                                         "html": "<p>Hi {{customer.first_name}}</p>"})
        self.make_company("c-2", ["loc-x"])
        self.make_customer("keep-1", first_name="Kept")
        self.applied("assign", self.assign("keep-1", [("loc-1", "location_admin")]))
        keep_before = {
            "rows": self.query("SELECT customer_id, email, first_name, access_version FROM customers"
                               " WHERE shop_id = %s AND customer_id = 'keep-1'", (self.shop,)),
            "roles": self.query("SELECT company_id, location_id, role FROM roles WHERE shop_id = %s"
                                " AND customer_id = 'keep-1'", (self.shop,)),
            "events": [m[1] for m in self.access_msgs("keep-1")],
        }
        email, first, last, phone = ("Yara.%s@Example.com" % self.shop, "Yolanthe", "Quixwell", "+46 555 0177")
        cid = email.lower()
        self.make_customer(cid, email=email, first_name=first, last_name=last, phone=phone, tags=["trade"])
        self.order("o-d2c", cid, placed_at="2026-09-01T00:00:00Z")  # migrated below
        imported = self.run_cmd("assign", self.assign({"email": email.upper()}, [("loc-1", "ordering_only")],
                                                      migrate_orders_to="loc-1", notify=True),
                                import_id="import-%s" % self.shop, actor="importer")
        self.assertEqual(imported["status"], "applied", imported)
        self.applied("assign", self.assign(cid, [("loc-x", "location_admin")], company="c-2"))
        self.order("o-b2b", cid, "c-1", "loc-1", status="closed")
        self.smtp.wait_messages(1, to=email.lower())
        # a failed email: the server refuses the recipient for good
        self.smtp.control("fail-rcpt %s 550" % email)
        nid = self.applied("notify", {"company_id": "c-2", "customer_ids": [cid]})["queued"][0]["notification_id"]
        wait_until(lambda: self.query("SELECT status FROM notifications WHERE notification_id = %s", (nid,))
                   == [("failed",)], timeout=60, what="the second email failed")
        self.assertEqual(self.query("SELECT count(*) FROM access_history WHERE shop_id = %s AND customer_id = %s",
                                    (self.shop, cid)), [(2,)])
        r = self.run_cmd("customer.redact", {"customer_id": cid})
        self.assertEqual(r["status"], "applied", r)
        self.assertEqual(r["result"]["erased"], {"contacts": 2, "roles": 2, "notifications": 2, "orders_unlinked": 2})
        self.outbox_drained()
        dump = self.pg_dump().lower()
        for secret in (email, first, last, phone, "555 0177"):
            self.assertNotIn(secret.lower(), dump, secret)
        # both orders keep their ids, amounts and companies; both emails keep their status
        self.assertEqual(self.query("SELECT order_id, customer_id, company_id, total::text FROM orders"
                                    " WHERE shop_id = %s ORDER BY 1", (self.shop,)),
                         [("o-b2b", None, "c-1", "10.00"), ("o-d2c", None, "c-1", "10.00")])
        self.assertEqual(sorted(x[0] for x in self.query("SELECT status FROM notifications WHERE shop_id = %s",
                                                          (self.shop,))), ["failed", "sent"])
        # the other customer: rows, roles and access as before, no new access event
        self.assertEqual(self.query("SELECT customer_id, email, first_name, access_version FROM customers"
                                    " WHERE shop_id = %s AND customer_id = 'keep-1'", (self.shop,)),
                         keep_before["rows"])
        self.assertEqual(self.query("SELECT company_id, location_id, role FROM roles WHERE shop_id = %s"
                                    " AND customer_id = 'keep-1'", (self.shop,)), keep_before["roles"])
        self.assertEqual([m[1] for m in self.access_msgs("keep-1")], keep_before["events"])

    def test_queued_email_is_never_sent(self):
        self.smtp.control("fail-next 1000 451 try again later")
        self.make_customer("cust-1", email=self.email, first_name="Zed")
        a = self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], notify=True))
        nid = a["notification_ids"][0]
        wait_until(lambda: self.query("SELECT attempts FROM notifications WHERE notification_id = %s",
                                      (nid,))[0][0] >= 1, what="a failed attempt")
        self.applied("customer.redact", {"customer_id": "cust-1"})
        self.smtp.control("clear")
        # a positive marker: an email queued after the redact is sent (the redacted one was
        # due earlier, on a 200-400 ms retry pace, so the notifier has passed it by then)
        self.make_customer("later-1", email="later.%s@example.com" % self.shop)
        later = self.applied("assign", self.assign("later-1", [("loc-1", "ordering_only")], notify=True))
        wait_until(lambda: self.query("SELECT status FROM notifications WHERE notification_id = %s",
                                      (later["notification_ids"][0],)) == [("sent",)], timeout=60,
                   what="the later email sent")
        self.assertEqual(len(self.smtp.messages(to="later.%s@example.com" % self.shop)), 1)
        self.assertEqual(self.smtp.messages(to=self.email), [])
        status, = self.query("SELECT status FROM notifications WHERE notification_id = %s", (nid,))[0]
        self.assertEqual(status, "queued")
        self.assertTrue(self.d.alive())


class ShopRedactTest(PrivacyBase):

    def test_shop_redact_erases_the_shop_only(self):
        other = harness.unique_name("shop-")
        for shop in (self.shop, other):
            self.applied("shop.upsert", {"name": "S", "from_email": "s@example.com"}, shop=shop)
            self.make_company("c-1", ["loc-1"], shop=shop)
            self.make_customer("cust-1", shop=shop)
            self.make_customer("cust-2", shop=shop)
            self.applied("assign", self.assign("cust-1", [("loc-1", "ordering_only")], notify=True), shop=shop)
            self.applied("order.upsert", {"order_id": "o-1", "customer_id": "cust-2", "status": "open"}, shop=shop)
            self.applied("template.update", {"subject": "s", "text": "t", "html": "h"}, shop=shop)
        n_commands = self.query("SELECT count(*) FROM commands WHERE shop_id = %s", (self.shop,))[0][0]
        self.assertEqual(n_commands, 8)  # setUp's company.upsert and the loop's 7
        r = self.run_cmd("shop.redact", {})
        self.assertEqual(r["result"], {"customers": 2, "companies": 1, "orders": 1, "notifications": 1,
                                       "commands": n_commands})
        for table in ("shops", "companies", "locations", "customers", "contacts", "roles", "orders",
                      "notifications", "templates", "access_history", "source_versions"):
            with self.subTest(table=table):
                self.assertEqual(self.query("SELECT count(*) FROM %s WHERE shop_id = %%s" % table,
                                            (self.shop,))[0][0], 0)
                if table not in ("source_versions", "access_history"):
                    self.assertGreater(self.query("SELECT count(*) FROM %s WHERE shop_id = %%s" % table,
                                                  (other,))[0][0], 0)
        self.assertEqual(self.query("SELECT command_id::text FROM commands WHERE shop_id = %s", (self.shop,)),
                         [(r["command_id"],)])
        self.wait_tombstone("events.access", "%s/cust-1" % self.shop)
        self.wait_tombstone("events.shops", self.shop)
        self.assertEqual([m for m in self.access_msgs("cust-2")], [], "cust-2 never had access")
        # idempotent
        self.assertEqual(self.run_cmd("shop.redact", {}, command_id=r["command_id"]), r)
        # versions start again at 1
        self.applied("shop.upsert", {"name": "Again"})
        ev = self.bus.wait_for("events.shops", lambda m: m[0] == self.shop and m[1] and m[1]["name"] == "Again")[1]
        self.assertEqual(ev["version"], 1)


class ExportLimitTest(PrivacyBase):
    """An export over max_message_bytes is LIMIT_REACHED, and nothing is published."""
    START_DAEMON = False

    def setUp(self):
        super(PrivacyBase, self).setUp()
        path = os.path.join(harness.LOCALENV_DIR, "%s.conf" % self.shop)
        with open(path, "w") as f:
            f.write("max_message_bytes = 2000\n")
        self.d = self.start_daemon(args=["--config", path], extra_env=FAST_RETRY, smtp_url=self.smtp.url)

    def test_export_over_the_limit(self):
        self.make_customer("cust-1")
        orders = [self.command("order.upsert", {"order_id": "o-%03d" % i, "customer_id": "cust-1",
                                                "status": "open", "total": "10.00", "currency": "EUR"})
                  for i in range(30)]
        self.assertEqual({r["status"] for r in self.run_cmds(orders)}, {"applied"})
        r = self.rejected("customer.data_request", {"customer_id": "cust-1"}, "LIMIT_REACHED",
                          "payload.customer_id")
        self.assertIn("2000", r["error"]["message"])
        self.make_customer("cust-2")
        ok = self.run_cmd("customer.data_request", {"customer_id": "cust-2"})
        self.assertEqual(ok["status"], "applied", ok)
        self.settle()
        msgs = [m for m in self.bus.read_to_end("events.privacy") if m[1].get("shop_id") == self.shop]
        self.assertEqual([m[1]["request_command_id"] for m in msgs], [ok["command_id"]])
        self.assertLessEqual(max(len(json.dumps(m[1]).encode()) for m in msgs), 2000)


class CtlTest(PrivacyBase):
    """b2bctl privacy export|redact and b2bctl history."""

    def ctl(self, *args):
        exe = os.path.join(harness.BUILD_DIR, "b2bctl")
        if not os.path.exists(exe):
            harness.missing("b2bctl is not built")
        e = dict(os.environ, B2BD_KAFKA_BOOTSTRAP=harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                 B2BD_TOPIC_PREFIX=self.prefix, B2BD_PG_DSN=self.dsn)
        return subprocess.run([exe] + list(args), env=e, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)

    def test_export_history_redact(self):
        self.make_customer("cust-1", email="c1.%s@example.com" % self.shop, first_name="Cy")
        a = self.run_cmd("assign", self.assign("cust-1", [("loc-1", "ordering_only")]), actor="staff:3")
        self.run_cmd("revoke", {"company_id": "c-1", "customer_id": "cust-1", "scope": "all_locations"})
        p = self.ctl("history", "--json", self.shop, "cust-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        h = json.loads(p.stdout)["access_history"]
        self.assertEqual([(x["version"], x["caused_by"], x["actor"]) for x in h],
                         [(1, a["command_id"], "staff:3"), (2, h[1]["caused_by"], None)])
        self.assertEqual(h[0]["companies"][0]["locations"], [{"location_id": "loc-1", "role": "ordering_only"}])
        tmp = tempfile.mkdtemp(prefix="b2bd-export.", dir="/tmp")
        self.addCleanup(shutil.rmtree, tmp, True)
        out = os.path.join(tmp, "export.json")
        p = self.ctl("privacy", "export", "--email", "-o", out, self.shop, "C1.%s@example.com" % self.shop)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "", "the document goes to the file")
        with open(out) as f:
            doc = json.loads(f.read())
        self.assertEqual((doc["type"], doc["customer_id"], doc["profile"]["first_name"]),
                         ("customer.data_export", "cust-1", "Cy"))
        self.assertEqual(len(doc["access_history"]), 2)
        # no terminal and no --yes: refused before anything is sent
        p = self.ctl("privacy", "redact", self.shop, "cust-1")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--yes", p.stderr)
        self.assertEqual(self.query("SELECT count(*) FROM customers WHERE shop_id = %s AND customer_id = 'cust-1'",
                                    (self.shop,)), [(1,)])
        p = self.ctl("privacy", "redact", "--yes", self.shop, "cust-1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("erased: contacts 1, roles 0", p.stdout)
        p = self.ctl("privacy", "redact", "--yes", self.shop, "cust-1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("NOT_FOUND", p.stdout)
        self.assertIn("no access history", self.ctl("history", self.shop, "cust-1").stdout)


if __name__ == "__main__":
    unittest.main()

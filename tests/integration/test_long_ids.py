"""Every valid identifier fits (CONTRACT.md, "Limits and failures"): identifiers of 255
characters of four bytes each in UTF-8, in every id position of a command at once, are
applied like short ones, by every command type and by both paths of assign (one by one
and the set-based run); 256 characters are INVALID.

The characters are random code points of CJK Extension B (U+20000..U+2A6DF): one
character repeated would let PostgreSQL compress an index entry under its limit and hide
the problem (roles' old primary key took three such ids: SQLSTATE 54000, and the batch
was retried for ever). Commands go to Kafka as raw UTF-8 JSON, not as \\u escapes."""
import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import unittest
import uuid

import harness
from b2btest import B2bTestCase, wait_until
from test_import import B2BCTL, ctl_env

RNG = random.SystemRandom()
WAIT = 20  # seconds for one result: a command that stalls fails the test, not the suite


def long_id(n=255):
    """n random characters of four bytes each in UTF-8."""
    return "".join(chr(RNG.randint(0x20000, 0x2A6DF)) for _ in range(n))


def long_shop():
    """A shop id of the contract's largest size: 64 characters of A-Za-z0-9._:-."""
    return ("shop-" + uuid.uuid4().hex + uuid.uuid4().hex)[:64]


class LongIdsBase(B2bTestCase):
    """Each test: its own shop (of 64 characters), company and three locations."""

    def setUp(self):
        super().setUp()
        self.shop = long_shop()
        self.co = long_id()
        self.locs = [long_id() for _ in range(3)]
        self.loc_names = ["Location %d %s" % (i + 1, long_id(20)) for i in range(3)]

    def cmd(self, type, payload):
        return harness.command(type, self.shop, payload)

    def send_raw(self, cmd):
        """Sends a command as UTF-8 JSON (the characters as such, not escaped)."""
        self.bus.send(json.dumps(cmd, ensure_ascii=False).encode("utf-8"),
                      topic_suffix=harness.topic_for(cmd["type"]), key=harness.key_for(cmd))

    def do(self, type, payload, status="applied"):
        c = self.cmd(type, payload)
        self.send_raw(c)
        self.bus.flush()
        r = self.bus.wait_result(c["command_id"], timeout=WAIT)
        self.assertEqual(r["status"], status, r)
        return r["result"] if status == "applied" else r

    def run_all(self, cmds):
        for c in cmds:
            self.send_raw(c)
        self.bus.flush()
        return self.bus.wait_results([c["command_id"] for c in cmds], timeout=WAIT + len(cmds))

    def world(self):
        """The shop, its company with three locations, and the email template."""
        self.do("shop.upsert", {"name": "Shop " + long_id(10), "account_url": "https://shop.example/account",
                                 "from_email": "shop@example.com", "staff_email": "staff@example.com"})
        r = self.do("company.upsert", {"company_id": self.co, "name": "Company " + long_id(10),
                                        "locations": [{"location_id": l, "name": n}
                                                      for l, n in zip(self.locs, self.loc_names)]})
        self.assertEqual((r["company_id"], r["created"], r["locations_added"]), (self.co, True, self.locs))
        r = self.do("company.upsert", {"company_id": self.co, "name": "Company",
                                        "locations": [{"location_id": self.locs[0], "name": self.loc_names[0] + "!"}]})
        self.assertEqual((r["created"], r["locations_added"], r["locations_renamed"]), (False, [], [self.locs[0]]))
        self.loc_names[0] += "!"
        r = self.do("template.update", {"subject": "{{company.name}}: access for {{customer.first_name}}",
                                         "text": "Hello {{customer.first_name}}{{#locations}} [{{name}}: {{role_name}}]"
                                                 "{{/locations}}",
                                         "html": "<p>{{customer.first_name}}</p>"})
        self.assertEqual(r["template_version"], 1)

    def access(self, customer, version):
        return self.bus.wait_for("events.access",
                                 lambda m: isinstance(m[1], dict) and m[1].get("shop_id") == self.shop
                                 and m[1].get("customer_id") == customer and m[1].get("version") == version,
                                 timeout=WAIT)

    def versions(self, customer):
        self.settle()
        return [m[1]["version"] for m in self.bus.read_to_end("events.access")
                if isinstance(m[1], dict) and m[1].get("customer_id") == customer]

    def db_roles(self, customer):
        return sorted(self.query("SELECT company_id, location_id, role FROM roles WHERE shop_id = %s"
                                 " AND customer_id = %s", (self.shop, customer)))

    def sent(self, notification_id, to):
        """Waits for the notifier's sent event and the mail itself; returns the mail's text."""
        ev = self.bus.wait_for("events.notifications",
                               lambda m: isinstance(m[1], dict) and m[1].get("notification_id") == notification_id,
                               timeout=WAIT)[1]
        self.assertEqual(ev["status"], "sent", ev)
        mid = "<%s@b2bd>" % notification_id
        mails = wait_until(lambda: [m for m in self.smtp.messages(to=to) if m.message["Message-ID"] == mid],
                           timeout=WAIT, what="the mail " + mid)
        self.assertEqual(len(mails), 1)
        return ev, mails[0].message.get_body(("plain",)).get_content()


class LongIdsOneByOne(LongIdsBase):
    """One daemon, sending to its own SMTP server (self.smtp), for the class."""
    PRIVATE_SMTP = True

    def test_every_command_type(self):
        self.world()
        co, (l1, l2, l3) = self.co, self.locs
        cu, ghost = long_id(), long_id()
        o_d2c, o_b2b, o_cancelled, o_later = (long_id() for _ in range(4))
        email = "ann.%s@example.com" % uuid.uuid4().hex[:8]
        tags = [long_id(), long_id()]

        r = self.do("customer.upsert", {"customer_id": cu, "email": email, "first_name": "Ann", "tags": tags})
        self.assertEqual(self.query("SELECT tags FROM customers WHERE shop_id = %s AND customer_id = %s",
                                    (self.shop, cu)), [(tags,)])

        def order(order_id, status="open", company=None, location=None):
            return self.do("order.upsert", {"order_id": order_id, "customer_id": cu, "status": status,
                                             "company_id": company, "location_id": location,
                                             "total": "10.00", "currency": "EUR"})
        order(o_d2c)
        order(o_b2b, company=co, location=l2)
        order(o_cancelled, status="cancelled")

        # assign by id, with migrate_orders_to and notify
        r = self.do("assign", {"company_id": co, "customer": {"id": cu},
                                "locations": [{"location_id": l1, "role": "ordering_only"},
                                              {"location_id": l2, "role": "location_admin"}],
                                "migrate_orders_to": l1, "notify": True})
        self.assertEqual((r["customer_id"], r["customer_created"], r["contact_created"]), (cu, False, True))
        self.assertEqual(sorted(map(tuple, (x.values() for x in r["roles"]))),
                         sorted([(l1, "ordering_only"), (l2, "location_admin")]))
        self.assertEqual(r["migration"], {"customer_id": cu, "location_id": l1, "migrated_order_ids": [o_d2c],
                                          "skipped": {"b2b": 1, "cancelled": 1, "deleted": 0}})
        self.assertEqual(len(r["notification_ids"]), 1)
        ev = self.access(cu, 1)
        self.assertEqual(ev[0], "%s/%s" % (self.shop, cu))  # the event's key
        self.assertEqual(ev[1]["experience"], "b2b")
        self.assertEqual([c["company_id"] for c in ev[1]["companies"]], [co])
        self.assertEqual(sorted((x["location_id"], x["role"]) for x in ev[1]["companies"][0]["locations"]),
                         sorted([(l1, "ordering_only"), (l2, "location_admin")]))
        self.assertEqual(self.db_roles(cu), sorted([(co, l1, "ordering_only"), (co, l2, "location_admin")]))
        nev, text = self.sent(r["notification_ids"][0], email)
        self.assertEqual((nev["customer_id"], nev["company_id"]), (cu, co))
        self.assertIn("Hello Ann", text)
        self.assertIn("[%s: " % self.loc_names[0], text)
        self.assertIn("[%s: " % self.loc_names[1], text)

        # a role changed (the upsert of an existing role), then the same again: no change
        r = self.do("assign", {"company_id": co, "customer": {"id": cu},
                                "locations": [{"location_id": l2, "role": "ordering_only"}]})
        self.assertFalse(r["contact_created"])
        self.access(cu, 2)
        self.do("assign", {"company_id": co, "customer": {"id": cu},
                            "locations": [{"location_id": l2, "role": "ordering_only"}]})
        self.assertEqual(self.db_roles(cu), sorted([(co, l1, "ordering_only"), (co, l2, "ordering_only")]))

        # migrate: the same location again moves the D2C order placed since
        order(o_later)
        r = self.do("migrate", {"company_id": co, "location_id": l1, "customer_id": cu})
        self.assertEqual({k: r[k] for k in ("customer_id", "location_id", "migrated_order_ids", "skipped")},
                         {"customer_id": cu, "location_id": l1, "migrated_order_ids": [o_later],
                          "skipped": {"b2b": 1, "cancelled": 1, "deleted": 0}})

        # notify: preview, queued (from a location page), resend
        r = self.do("notify", {"company_id": co, "customer_ids": [cu, ghost], "preview": True})
        self.assertEqual([(p["customer_id"], p["to"]) for p in r["previews"]], [(cu, email)])
        self.assertEqual(r["skipped"], [{"customer_id": ghost, "reason": "NOT_FOUND"}])
        r = self.do("notify", {"company_id": co, "location_id": l1, "customer_ids": [cu, ghost]})
        self.assertEqual([q["customer_id"] for q in r["queued"]], [cu])
        first = r["queued"][0]["notification_id"]
        self.sent(first, email)
        r = self.do("notify", {"company_id": co, "customer_ids": [], "resend_of": first})
        self.assertEqual([q["customer_id"] for q in r["queued"]], [cu])
        self.sent(r["queued"][0]["notification_id"], email)
        r = self.do("notify", {"company_id": co, "location_id": l3, "customer_ids": [cu]})
        self.assertEqual(r["skipped"], [{"customer_id": cu, "reason": "NO_LOCATION_ACCESS"}])

        # revoke, each scope
        r = self.do("revoke", {"company_id": co, "customer_id": cu, "scope": "locations", "location_ids": [l2, l3]})
        self.assertEqual(r, {"customer_id": cu, "removed_roles": [{"location_id": l2, "role": "ordering_only"}],
                             "not_held": [l3], "contact_removed": False, "reverted_order_ids": []})
        self.access(cu, 3)
        r = self.do("revoke", {"company_id": co, "customer_id": cu, "scope": "all_locations"})
        self.assertEqual(r["removed_roles"], [{"location_id": l1, "role": "ordering_only"}])
        self.assertEqual(self.access(cu, 4)[1]["companies"],
                         [{"company_id": co, "access": "no_access", "locations": []}])
        r = self.do("revoke", {"company_id": co, "customer_id": cu, "scope": "company",
                                "remove_migrated_orders": True})
        self.assertTrue(r["contact_removed"])
        self.assertEqual(sorted(r["reverted_order_ids"]), sorted([o_d2c, o_later]))
        self.assertEqual(self.access(cu, 5)[1]["companies"], [])
        self.assertEqual(sorted(self.query("SELECT order_id, company_id, location_id FROM orders"
                                           " WHERE shop_id = %s AND company_id IS NOT NULL", (self.shop,))),
                         [(o_b2b, co, l2)])
        self.assertEqual(self.versions(cu), [1, 2, 3, 4, 5], "the no-change assign published an event")

        # assign by email, with a new id: a customer created, then notified
        cu2, email2 = long_id(), "bo.%s@example.com" % uuid.uuid4().hex[:8]
        r = self.do("assign", {"company_id": co, "customer": {"id": cu2, "email": email2, "first_name": "Bo"},
                                "locations": [{"location_id": l3, "role": "location_admin"}], "notify": True})
        self.assertEqual((r["customer_id"], r["customer_created"], r["contact_created"]), (cu2, True, True))
        self.sent(r["notification_ids"][0], email2)
        self.assertEqual(self.db_roles(cu2), [(co, l3, "location_admin")])

    def test_256_characters_are_invalid(self):
        """The decoder counts characters: 255 four-byte characters pass (above), 256 do
        not, in any id position."""
        self.world()
        co, l1 = self.co, self.locs[0]
        cu = long_id()
        self.do("customer.upsert", {"customer_id": cu, "email": "c.%s@example.com" % uuid.uuid4().hex[:8]})
        self.do("assign", {"company_id": co, "customer": {"id": cu},
                            "locations": [{"location_id": l1, "role": "ordering_only"}]})
        big = long_id(256)
        cases = [
            ("company.upsert", {"company_id": big, "name": "x"}, "payload.company_id"),
            ("company.upsert", {"company_id": co, "name": "x", "locations": [{"location_id": big}]},
             "payload.locations[0].location_id"),
            ("customer.upsert", {"customer_id": big, "email": "x@example.com"}, "payload.customer_id"),
            ("customer.upsert", {"customer_id": cu, "email": "x@example.com", "tags": [big]}, "payload.tags[0]"),
            ("order.upsert", {"order_id": big, "customer_id": cu, "status": "open"}, "payload.order_id"),
            ("order.upsert", {"order_id": "o", "customer_id": cu, "status": "open", "company_id": co,
                              "location_id": big}, "payload.location_id"),
            ("assign", {"company_id": co, "customer": {"id": big}, "locations": []}, "payload.customer.id"),
            ("assign", {"company_id": co, "customer": {"id": cu}, "locations": [{"location_id": big,
                                                                                  "role": "ordering_only"}]},
             "payload.locations[0].location_id"),
            ("assign", {"company_id": co, "customer": {"id": cu}, "locations": [], "migrate_orders_to": big},
             "payload.migrate_orders_to"),
            ("revoke", {"company_id": co, "customer_id": cu, "scope": "locations", "location_ids": [big]},
             "payload.location_ids[0]"),
            ("migrate", {"company_id": co, "location_id": big, "customer_id": cu}, "payload.location_id"),
            ("notify", {"company_id": co, "customer_ids": [cu, big]}, "payload.customer_ids[1]"),
        ]
        cmds = [self.cmd(t, p) for t, p, _ in cases]
        for (t, _, field), r in zip(cases, self.run_all(cmds)):
            self.assertEqual((r["status"], r["error"]["code"], r["error"]["field"]),
                             ("rejected", "INVALID", field), r)
            self.assertIn("255", r["error"]["message"])
        self.assertEqual(self.db_roles(cu), [(co, l1, "ordering_only")])


    def test_b2bctl_import_status_access_and_timeline(self):
        """b2bctl with such ids: an import (its --import-id one too), its status, a
        customer's access and email timeline."""
        self.world()
        co, (l1, l2, _) = self.co, self.locs
        cu, imp = long_id(), long_id()
        email = "e.%s@example.com" % uuid.uuid4().hex[:8]
        tmp = tempfile.mkdtemp(prefix="import-", dir=harness.LOCALENV_DIR)
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "rows.csv")
        with open(path, "w", encoding="utf-8") as f:
            f.write("customer_id,email,first_name,location_id,role,notify\n%s,%s,Ann,%s,location_admin,yes\n"
                    % (cu, email, l2))
        env = ctl_env(self.prefix, self.dsn)

        def ctl(*args):
            p = subprocess.run([B2BCTL] + list(args), env=env, stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr.decode("utf-8", "replace"))
            return json.loads(p.stdout.decode("utf-8"))
        s = ctl("import", "--shop", self.shop, "--company", co, "--location", l1, "--import-id", imp,
                "--json", path)
        self.assertEqual((s["import_id"], s["applied"], s["rejected"]), (imp, 1, 0), s)
        s = ctl("import", "status", imp, "--json")
        self.assertEqual((s["import_id"], s["applied"], s["by_type"]), (imp, 1, {"assign": 1}))
        a = ctl("access", self.shop, cu, "--json")
        self.assertEqual(a["customer_id"], cu)
        self.assertEqual([(c["company_id"], [(x["location_id"], x["role"]) for x in c["locations"]])
                          for c in a["companies"]], [(co, [(l2, "location_admin")])])

        def sent():
            items = ctl("timeline", self.shop, cu, "--json")["notifications"]
            return items if items and all(i["status"] == "sent" for i in items) else None
        items = wait_until(sent, timeout=WAIT, what="the email sent")
        self.assertEqual([(i["company_id"], i["to_address"]) for i in items], [(co, email)])
        too_long = subprocess.run([B2BCTL, "import", "--shop", self.shop, "--company", co,
                                   "--import-id", long_id(256), path], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=60)
        self.assertEqual(too_long.returncode, 2)
        self.assertIn(b"--import-id must have 1 to 255 characters", too_long.stderr)

    def test_rejections_quote_ids_whole_characters(self):
        """A rejection's message that quotes an id cuts it between characters: ids of
        three-byte characters, cut at 80 or 100 bytes, once made a message that was not
        UTF-8, and the result went out without it."""
        self.do("shop.upsert", {"name": "Shop"})

        def id3():
            return "".join(chr(RNG.randint(0x4E00, 0x9FFF)) for _ in range(255))
        co, other, l1, l2, cu = id3(), id3(), id3(), id3(), id3()
        self.do("company.upsert", {"company_id": co, "name": "A", "locations": [{"location_id": l1},
                                                                                {"location_id": l2}]})
        r = self.do("company.upsert", {"company_id": other, "name": "B", "locations": [{"location_id": l2}]},
                    status="rejected")
        self.assertEqual((r["error"]["code"], r["error"]["field"]), ("CONFLICT", "payload.locations[0].location_id"))
        self.assertEqual(r["error"]["message"],
                         "location %s belongs to another company of the shop" % l2[:26])
        self.do("customer.upsert", {"customer_id": cu, "email": "d.%s@example.com" % uuid.uuid4().hex[:8]})
        self.do("assign", {"company_id": co, "customer": {"id": cu}, "migrate_orders_to": l1,
                           "locations": [{"location_id": l1, "role": "ordering_only"},
                                         {"location_id": l2, "role": "ordering_only"}]})
        r = self.do("migrate", {"company_id": co, "location_id": l2, "customer_id": cu}, status="rejected")
        self.assertEqual(r["error"]["code"], "ALREADY_MIGRATED")
        self.assertEqual(r["error"]["message"],
                         "the customer's order history went to location %s of this company" % l1[:33])


class LongIdsBulk(LongIdsBase):
    """A run of plain assigns goes through b2bd_assign_bulk (set-based): the test starts
    its daemons itself, so that a run waits in Kafka for the next one."""
    SHARED = False
    START_DAEMON = False

    def start(self):
        return self.start_daemon(extra_env={"B2BD_BATCH_LINGER_MS": "200"})

    def test_run_of_assigns(self):
        d = self.start()
        self.world()
        co, (l1, l2, l3) = self.co, self.locs
        known = [long_id() for _ in range(3)]
        for i, cu in enumerate(known):
            self.do("customer.upsert", {"customer_id": cu, "email": "k%d.%s@example.com" % (i, self.shop[-8:])})
        self.assertEqual(d.stop(), 0)

        new_id, new_email = long_id(), "n1.%s@example.com" % self.shop[-8:]
        by_email = "N2.%s@Example.com" % self.shop[-8:]

        def assign(customer, locs):
            return self.cmd("assign", {"company_id": co, "customer": customer,
                                       "locations": [{"location_id": l, "role": r} for l, r in locs]})
        runs = [[assign({"id": known[0]}, [(l1, "ordering_only")]),
                 assign({"id": known[1]}, [(l1, "ordering_only"), (l2, "location_admin")]),
                 assign({"id": new_id, "email": new_email}, [(l2, "ordering_only"), (l3, "ordering_only")]),
                 assign({"email": by_email}, [(l3, "location_admin")])],
                # again: one role changed, one the same, one added
                [assign({"id": known[0]}, [(l1, "location_admin")]),
                 assign({"id": known[1]}, [(l1, "ordering_only")]),
                 assign({"id": known[2]}, [(l2, "ordering_only")])]]
        results = []
        for run in runs:
            # sent while no daemon runs: the next one reads the run in one batch
            for c in run:
                self.send_raw(c)
            self.bus.flush()
            d = self.start()
            results.append(self.bus.wait_results([c["command_id"] for c in run], timeout=WAIT + len(run)))
            self.assertEqual(d.stop(), 0)
            stopping = [l for l in d.log().splitlines() if "event=stopping" in l][-1]
            self.assertEqual(int(re.search(r" bulk=(\d+)", stopping).group(1)), len(run),
                             "the run did not go through the set-based path")
        for r in results[0] + results[1]:
            self.assertEqual(r["status"], "applied", r)
        first = [r["result"] for r in results[0]]
        self.assertEqual([(r["customer_id"], r["customer_created"], r["contact_created"]) for r in first],
                         [(known[0], False, True), (known[1], False, True), (new_id, True, True),
                          (by_email.lower(), True, True)])
        self.assertEqual(sorted((x["location_id"], x["role"]) for x in first[2]["roles"]),
                         sorted([(l2, "ordering_only"), (l3, "ordering_only")]))
        self.assertEqual(self.db_roles(known[0]), [(co, l1, "location_admin")])
        self.assertEqual(self.db_roles(known[1]), sorted([(co, l1, "ordering_only"), (co, l2, "location_admin")]))
        self.assertEqual(self.db_roles(known[2]), [(co, l2, "ordering_only")])
        self.assertEqual(self.db_roles(new_id), sorted([(co, l2, "ordering_only"), (co, l3, "ordering_only")]))
        self.assertEqual(self.db_roles(by_email.lower()), [(co, l3, "location_admin")])
        ev = self.access(known[0], 2)[1]
        self.assertEqual(ev["companies"], [{"company_id": co, "access": "locations",
                                            "locations": [{"location_id": l1, "role": "location_admin"}]}])
        self.access(new_id, 1)
        self.access(known[2], 1)
        self.assertEqual(self.versions(known[1]), [1], "the no-change assign published an event")
        self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s", (self.shop,)), [(5,)])


if __name__ == "__main__":
    unittest.main()

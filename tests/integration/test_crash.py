"""Crash tests: a stream of mixed commands (sync, assign, revoke, migrate, notify) with
b2bd killed with SIGKILL at several points and restarted, or with one of two instances
killed; afterwards the database equals what a simple reference model of the commands
says, every command has exactly one result (a repeat only with the same event_id), each
customer's access versions have no gap, and every email asked for was sent.

The contract orders commands per key within a topic only; assign, revoke, migrate and
notify are four topics. So the stream goes in rounds, each holding at most one command
per company (key), and a round is sent once the previous one has its results: the model's
order is then the order b2bd must follow."""
import random
import threading
import time
import unittest

import harness
from b2btest import B2bTestCase, wait_until

COMPANIES = {"c-0": ["l-00", "l-01", "l-02"]}
COMPANIES.update({"c-%d" % i: ["l-%d0" % i, "l-%d1" % i] for i in range(1, 8)})
MIGRATING = "c-0"  # the only company with migrations: order state depends on one key's order
ROLES = ["ordering_only", "location_admin"]


class Model:
    """What the commands mean, applied in order per company (the key's order)."""

    def __init__(self, customers):
        self.contacts = {}   # (company, customer) -> {location: role}
        self.bound = {}      # customer -> location of MIGRATING
        self.orders = {}     # order_id -> [customer, status, company, location]
        self.changes = {c: 0 for c in customers}
        self.emails = 0

    def assign(self, company, customer, locs):
        key = (company, customer)
        roles = self.contacts.get(key)
        changed = roles is None
        roles = dict(roles or {})
        for loc, role in locs.items():
            changed |= roles.get(loc) != role
            roles[loc] = role
        self.contacts[key] = roles
        if changed:
            self.changes[customer] += 1
        return ("applied", None)

    def revoke(self, company, customer, scope, locs=None, remove_migrated=False):
        key = (company, customer)
        if key not in self.contacts:
            return ("rejected", "NOT_A_CONTACT")
        roles = self.contacts[key]
        if scope == "locations":
            removed = [l for l in locs if l in roles]
            for l in removed:
                del roles[l]
            changed = bool(removed)
        elif scope == "all_locations":
            changed = bool(roles)
            roles.clear()
        else:
            del self.contacts[key]
            changed = True
            if remove_migrated:
                for o in self.orders.values():
                    if o[0] == customer and o[2] == company:
                        o[2] = o[3] = None
                self.bound.pop(customer, None)
        if changed:
            self.changes[customer] += 1
        return ("applied", None)

    def migrate(self, customer, loc):
        roles = self.contacts.get((MIGRATING, customer))
        if roles is None:
            return ("rejected", "NOT_A_CONTACT")
        if loc not in roles:
            return ("rejected", "NO_LOCATION_ACCESS")
        if self.bound.get(customer, loc) != loc:
            return ("rejected", "ALREADY_MIGRATED")
        self.bound[customer] = loc
        for o in self.orders.values():
            if o[0] == customer and o[2] is None and o[1] not in ("cancelled", "deleted"):
                o[2], o[3] = MIGRATING, loc
        return ("applied", None)

    def notify(self, company, customer):
        roles = self.contacts.get((company, customer))
        if roles:
            self.emails += 1
            return ("applied", "queued")
        return ("applied", "skipped")


class CrashBase(B2bTestCase):
    START_DAEMON = False
    PRIVATE_SMTP = True
    ENV = {"B2BD_BATCH_MAX": "40", "B2BD_NOTIFIER_RETRY_INITIAL_MS": "200",
           "B2BD_NOTIFIER_RETRY_MAX_MS": "400"}

    def daemon_(self):
        return self.start_daemon(extra_env=self.ENV, smtp_url=self.smtp.url)

    def scenario(self, n_commands, seed):
        rnd = random.Random(seed)
        customers = ["k-%02d" % i for i in range(30)]
        model = Model(customers)
        sync = [harness.command("shop.upsert", self.shop, {"name": "Crash Shop", "from_email": "s@example.com"})]
        for c, locs in COMPANIES.items():
            sync.append(harness.command("company.upsert", self.shop, {
                "company_id": c, "name": c, "locations": [{"location_id": l, "name": l} for l in locs]}))
        for k in customers:
            sync.append(harness.command("customer.upsert", self.shop,
                                        {"customer_id": k, "email": "%s.%s@example.com" % (k, self.shop)}))
            for j, status in enumerate(["open", "closed", "cancelled"]):
                oid = "o-%s-%d" % (k, j)
                sync.append(harness.command("order.upsert", self.shop,
                                            {"order_id": oid, "customer_id": k, "status": status}))
                model.orders[oid] = [k, status, None, None]
        stream = []
        for i in range(n_commands):
            # rounds of len(COMPANIES) commands, one per company
            company = list(COMPANIES)[i % len(COMPANIES)]
            k = rnd.choice(customers)
            x = rnd.random()
            if x < 0.5:
                locs = {l: rnd.choice(ROLES) for l in rnd.sample(COMPANIES[company], rnd.randint(0, 2))}
                payload = {"company_id": company, "customer": {"id": k},
                           "locations": [{"location_id": l, "role": r} for l, r in locs.items()]}
                expect = model.assign(company, k, locs)
                stream.append((harness.command("assign", self.shop, payload), expect))
            elif x < 0.7:
                scope = rnd.choice(["locations", "all_locations", "company"])
                payload = {"company_id": company, "customer_id": k, "scope": scope}
                locs = None
                remove = False
                if scope == "locations":
                    locs = rnd.sample(COMPANIES[company], rnd.randint(1, 2))
                    payload["location_ids"] = locs
                if scope == "company" and company == MIGRATING and rnd.random() < 0.5:
                    payload["remove_migrated_orders"] = remove = True
                expect = model.revoke(company, k, scope, locs, remove)
                stream.append((harness.command("revoke", self.shop, payload), expect))
            elif company == MIGRATING and x < 0.95:
                # migrations only in MIGRATING, whose slot this is: one command per key a round
                loc = rnd.choice(COMPANIES[MIGRATING])
                expect = model.migrate(k, loc)
                stream.append((harness.command("migrate", self.shop, {
                    "company_id": MIGRATING, "location_id": loc, "customer_id": k}), expect))
            else:
                expect = model.notify(company, k)
                stream.append((harness.command("notify", self.shop, {
                    "company_id": company, "customer_ids": [k]}), expect))
        return sync, stream, model

    def check(self, sync, stream, model):
        cmds = sync + [c for c, _ in stream]
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=180)
        for r in results[:len(sync)]:
            self.assertEqual(r["status"], "applied", r)
        for (c, (status, detail)), r in zip(stream, results[len(sync):]):
            self.assertEqual(r["status"], status, (c, r))
            if status == "rejected":
                self.assertEqual(r["error"]["code"], detail, (c, r))
            elif c["type"] == "notify":
                self.assertEqual(len(r["result"]["queued"]), 1 if detail == "queued" else 0, (c, r))
        # exactly one result per command: a repeat only as the same event
        events = {}
        for m in self.bus.drain("results", quiet=2.0):
            if m[1].get("shop_id") == self.shop:
                events.setdefault(m[1]["command_id"], set()).add(m[1]["event_id"])
        self.assertEqual(len(events), len(cmds))
        self.assertTrue(all(len(e) == 1 for e in events.values()),
                        [c for c, e in events.items() if len(e) > 1][:3])
        # the database equals the model
        db_roles = {}
        for company, customer, loc, role in self.query(
                "SELECT company_id, customer_id, location_id, role FROM roles WHERE shop_id = %s", (self.shop,)):
            db_roles.setdefault((company, customer), {})[loc] = role
        db_contacts = {(c, k): db_roles.get((c, k), {}) for c, k in self.query(
            "SELECT company_id, customer_id FROM contacts WHERE shop_id = %s", (self.shop,))}
        self.assertEqual(db_contacts, model.contacts)
        for company in COMPANIES:
            n = sum(1 for (c, _) in model.contacts if c == company)
            self.assertEqual(self.query("SELECT contact_count FROM companies WHERE shop_id = %s AND company_id = %s",
                                        (self.shop, company)), [(n,)])
        db_orders = {o: [k, s, c, l] for o, k, s, c, l in self.query(
            "SELECT order_id, customer_id, status, company_id, location_id FROM orders WHERE shop_id = %s",
            (self.shop,))}
        self.assertEqual(db_orders, model.orders)
        self.assertEqual(dict(self.query("SELECT customer_id, location_id FROM order_migrations WHERE shop_id = %s",
                                         (self.shop,))), model.bound)
        # access versions: 1..n per customer, no gap, repeats only of the same event
        seen = {}
        for m in self.bus.drain("events.access", quiet=2.0):
            v = m[1]
            if v.get("shop_id") == self.shop:
                seen.setdefault(v["customer_id"], {}).setdefault(v["version"], set()).add(v["event_id"])
        for k, n in model.changes.items():
            versions = seen.get(k, {})
            self.assertEqual(sorted(versions), list(range(1, n + 1)), k)
            self.assertTrue(all(len(e) == 1 for e in versions.values()), k)
        # every email asked for was sent, each at least once
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)),
                         [(model.emails,)])
        wait_until(lambda: self.query("SELECT count(*) FROM notifications WHERE shop_id = %s AND status = 'sent'",
                                      (self.shop,))[0][0] == model.emails, timeout=60, what="emails sent")
        sent = {}
        for m in self.smtp.messages():
            sent[m.message["Message-ID"]] = sent.get(m.message["Message-ID"], 0) + 1
        ids = [r[0] for r in self.query("SELECT message_id FROM notifications WHERE shop_id = %s", (self.shop,))]
        self.assertTrue(all(sent.get(i, 0) >= 1 for i in ids))
        return sum(1 for i in ids if sent.get(i, 0) > 1)

    def send_all(self, cmds):
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()

    def start_stream(self, stream):
        """Sends the stream round by round in a thread (self.sent counts the commands
        whose round has its results); returns the thread."""
        self.sent = 0
        self.stream_error = None
        rounds = [stream[i:i + len(COMPANIES)] for i in range(0, len(stream), len(COMPANIES))]

        def run():
            try:
                for r in rounds:
                    cmds = [c for c, _ in r]
                    self.send_all(cmds)
                    self.bus.wait_results([c["command_id"] for c in cmds], timeout=120)
                    self.sent += len(cmds)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.stream_error = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def wait_stream(self, t):
        t.join(600)
        self.assertFalse(t.is_alive(), "the stream did not finish")
        if self.stream_error:
            raise self.stream_error


class KillTest(CrashBase):

    def test_sigkill_at_random_moments(self):
        d = self.daemon_()
        sync, stream, model = self.scenario(1600, seed=20261127)
        self.send_all(sync)
        self.bus.wait_results([c["command_id"] for c in sync], timeout=120)
        t = self.start_stream(stream)
        kills = 0
        rnd = random.Random(1)
        for fraction in (0.2, 0.4, 0.6, 0.8):
            wait_until(lambda: self.sent >= fraction * len(stream) or not t.is_alive(), timeout=300,
                       what="%d%% of the stream" % (fraction * 100))
            time.sleep(rnd.random() * 0.2)  # somewhere inside a round: mid-batch or mid-publish
            d.kill()
            kills += 1
            d = self.daemon_()
        self.wait_stream(t)
        repeats = self.check(sync, stream, model)
        print("commands=%d kills=%d emails=%d sent twice=%d" % (len(sync) + len(stream), kills,
                                                                  model.emails, repeats))


class TwoInstancesTest(CrashBase):

    def test_one_of_two_killed_mid_stream(self):
        a = self.daemon_()
        b = self.start_daemon(extra_env=self.ENV, smtp_url=self.smtp.url, group_id=a.env["B2BD_GROUP_ID"])
        sync, stream, model = self.scenario(800, seed=7)
        self.send_all(sync)
        self.bus.wait_results([c["command_id"] for c in sync], timeout=120)
        t = self.start_stream(stream)
        wait_until(lambda: self.sent >= 0.4 * len(stream), timeout=300, what="40% of the stream")
        a.kill()
        self.wait_stream(t)
        self.assertTrue(b.alive())
        repeats = self.check(sync, stream, model)
        print("commands=%d one of two killed, emails=%d sent twice=%d" % (len(sync) + len(stream),
                                                                          model.emails, repeats))


if __name__ == "__main__":
    unittest.main()

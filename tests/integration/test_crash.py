"""Crash tests: a stream of mixed commands (sync, assign, revoke, suspend, resume, migrate,
notify) with b2bd killed with SIGKILL at several points and restarted, with one of two instances
killed, or with PostgreSQL itself killed with SIGKILL mid-batch and restarted (crash
recovery, on a cluster of the test's own); afterwards the database equals what a simple
reference model of the commands says, every command has exactly one result (a repeat only
with the same event_id), each customer's access versions have no gap, and every email
asked for was sent, twice only when a crash came between the mail server's answer and the
commit.

Hostile and failing commands are interleaved in the stream: invalid fields, unknown
types, wrong topics, dead letters (not JSON, not a command, too large), replays,
reused command ids, and commands the database refuses: a test-only trigger (a
"failpoint", installed by the test in the test's database) raises a chosen SQLSTATE
whenever a contact or role row of a chosen customer is written. The model expects each
of them rejected (or dead-lettered) and changing nothing.

The contract orders commands per key within a topic only; assign, revoke, migrate and
notify are four topics. So the stream goes in rounds, each holding at most one command
per company (key) that can change something, and a round is sent once the previous one
has its results: the model's order is then the order b2bd must follow. Hostile commands
change nothing whatever their order, so a round may hold any number of them.

A third of the stream's messages (all but the misrouted ones) go to the bulk topic
instead of their own (CONTRACT.md, "Bulk lane"): the same results, and replays and
reused ids across the two topics; b2bd consumes it with a consumer of its own, whose
fetched messages wait in the lane (src/lane.c) when it is killed."""
import json
import random
import sys
import threading
import time
import unittest
import uuid

import harness
from b2btest import B2bTestCase, wait_until
from private_pg import PrivatePostgres

COMPANIES = {"c-0": ["l-00", "l-01", "l-02"]}
COMPANIES.update({"c-%d" % i: ["l-%d0" % i, "l-%d1" % i] for i in range(1, 8)})
MIGRATING = "c-0"  # the only company with migrations: order state depends on one key's order
ROLES = ["ordering_only", "location_admin"]
MAX_MESSAGE_BYTES = 65536  # the daemon's limit here: a TOO_LARGE dead letter stays small
CRASH_WINDOW_S = 10.0  # an email sent twice: its first copy at most this long before a crash
# ... and not after it, but for the moment the mail server takes to accept a message whose
# last byte b2bd had written before it was killed (the server's clock is this machine's)
CRASH_ACCEPT_SLACK_S = 1.0

# Failpoints: SQLSTATE raised for a customer -> the codes the contract allows ("rejected
# with UNPROCESSABLE, or a more precise code"): class 22 and 23 are the data's fault
# (INVALID), a unique violation that retries do not cure is CONFLICT.
DATA_FAILURES = {"22003": {"INVALID", "UNPROCESSABLE"}, "23514": {"INVALID", "UNPROCESSABLE"},
                 "23505": {"CONFLICT", "UNPROCESSABLE"}}
UNPROCESSABLE_FAILURES = {"54000": {"UNPROCESSABLE"}, "XX000": {"UNPROCESSABLE"}}

FAILPOINT_SQL = [
    """CREATE TABLE IF NOT EXISTS test_failpoints (
         shop_id text NOT NULL, customer_id text NOT NULL, sqlstate text NOT NULL,
         PRIMARY KEY (shop_id, customer_id))""",
    """CREATE OR REPLACE FUNCTION test_failpoint() RETURNS trigger LANGUAGE plpgsql AS $$
       DECLARE
         r record;
         s text;
       BEGIN
         IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
         SELECT f.sqlstate INTO s FROM test_failpoints f
          WHERE f.shop_id = r.shop_id AND f.customer_id = r.customer_id;
         IF s IS NOT NULL THEN
           RAISE EXCEPTION 'test failpoint %', s USING ERRCODE = s;
         END IF;
         RETURN r;
       END $$""",
    "DROP TRIGGER IF EXISTS test_failpoint ON contacts",
    """CREATE TRIGGER test_failpoint BEFORE INSERT OR UPDATE OR DELETE ON contacts
       FOR EACH ROW EXECUTE FUNCTION test_failpoint()""",
    "DROP TRIGGER IF EXISTS test_failpoint ON roles",
    """CREATE TRIGGER test_failpoint BEFORE INSERT OR UPDATE OR DELETE ON roles
       FOR EACH ROW EXECUTE FUNCTION test_failpoint()""",
]


class Item:
    """One message of the stream: a command (cmd) or raw bytes (a dead letter), what the
    model expects of it, and its kind: "cmd" (may change something), "hostile" (a command
    rejected whatever the state), "replay" (an applied command sent again, unchanged),
    "reuse" (an applied command's id with another payload), "dead" (no command at all)."""

    def __init__(self, kind, expect, cmd=None, raw=None, topic=None, key=None, of=None):
        self.kind, self.expect, self.cmd, self.raw, self.of = kind, expect, cmd, raw, of
        self.reused = False  # its id was sent again with another payload
        # a replay: (partition, end offset) of the results partition of its original's
        # result when it was sent; its own result comes at or after that offset
        self.results_from = None
        self.topic = topic or harness.topic_for(cmd["type"])
        self.key = key if key is not None else (harness.key_for(cmd) if cmd else None)

    @property
    def cid(self):
        return self.cmd["command_id"] if self.cmd else None

    def fresh(self):
        """A command id that gets its own result (replays and reuses share one)."""
        return self.kind in ("cmd", "hostile")


class Model:
    """What the commands mean, applied in order per company (the key's order)."""

    def __init__(self, customers, poisoned=None):
        self.contacts = {}   # (company, customer) -> {location: role}
        self.bound = {}      # customer -> location of MIGRATING
        self.orders = {}     # order_id -> [customer, status, company, location]
        self.poisoned = dict(poisoned or {})  # customer -> codes its writes are rejected with
        self.changes = {c: 0 for c in list(customers) + list(self.poisoned)}
        self.emails = 0
        self.suspended = set()  # companies suspended
        self.own = set()        # (company, customer): contacts suspended on their own

    def is_suspended(self, company, customer):
        return company in self.suspended or (company, customer) in self.own

    def suspend(self, company, customer, on):
        """suspend (on) or resume of the company (customer None) or of one contact."""
        if customer is None:
            if (company in self.suspended) == on:
                return ("applied", None)
            self.suspended.symmetric_difference_update({company})
            for (c, k) in self.contacts:
                if c == company and (c, k) not in self.own:
                    self.changes[k] += 1
            return ("applied", None)
        key = (company, customer)
        if key not in self.contacts:
            return ("rejected", "NOT_A_CONTACT")
        if (key in self.own) == on:
            return ("applied", None)
        self.own.symmetric_difference_update({key})
        if company not in self.suspended:
            self.changes[customer] += 1
        return ("applied", None)

    def assign(self, company, customer, locs):
        if customer in self.poisoned:
            return ("rejected", self.poisoned[customer])
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
            self.own.discard(key)  # a removed contact loses its own suspension
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
        if roles and not self.is_suspended(company, customer):
            self.emails += 1
            return ("applied", "queued")
        return ("applied", "skipped")


class CrashBase(B2bTestCase):
    START_DAEMON = False
    PRIVATE_SMTP = True
    ENV = {"B2BD_BATCH_MAX": "40", "B2BD_NOTIFIER_RETRY_INITIAL_MS": "200",
           "B2BD_NOTIFIER_RETRY_MAX_MS": "400", "B2BD_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES)}
    ROUND_TIMEOUT = 120  # seconds a round may wait for its results

    def setUp(self):
        super().setUp()
        self.crash_times = []  # time.time() of each kill (b2bd or PostgreSQL)

    def daemon_(self):
        return self.start_daemon(extra_env=self.ENV, smtp_url=self.smtp.url)

    def kill_daemon(self, d):
        self.crash_times.append(time.time())
        d.kill()

    def install_failpoints(self, failures):
        """failures: SQLSTATE -> the codes allowed for it. Customer p-SQLSTATE's contact and
        role writes fail with SQLSTATE from now on (the daemon created the tables). Returns
        the poisoned customers: customer -> (SQLSTATE, codes)."""
        for sql in FAILPOINT_SQL:
            self.query(sql)
        poisoned = {"p-" + state: (state, codes) for state, codes in failures.items()}
        for customer, (state, _) in poisoned.items():
            self.query("INSERT INTO test_failpoints (shop_id, customer_id, sqlstate) VALUES (%s, %s, %s)",
                       (self.shop, customer, state))
        return poisoned

    def world(self, customers, model):
        """The sync commands: shop, companies, customers (poisoned ones too) and their orders."""
        sync = [harness.command("shop.upsert", self.shop, {"name": "Crash Shop", "from_email": "s@example.com"})]
        for c, locs in COMPANIES.items():
            sync.append(harness.command("company.upsert", self.shop, {
                "company_id": c, "name": c, "locations": [{"location_id": l, "name": l} for l in locs]}))
        for k in list(customers) + sorted(model.poisoned):
            sync.append(harness.command("customer.upsert", self.shop,
                                        {"customer_id": k, "email": "%s.%s@example.com" % (k, self.shop)}))
            for j, status in enumerate(["open", "closed", "cancelled"]):
                oid = "o-%s-%d" % (k, j)
                sync.append(harness.command("order.upsert", self.shop,
                                            {"order_id": oid, "customer_id": k, "status": status}))
                model.orders[oid] = [k, status, None, None]
        return sync

    def step(self, rnd, model, customers, company):
        """One command for company that may change something, and what the model says of it."""
        k = rnd.choice(customers)
        x = rnd.random()
        if x < 0.5:
            locs = {l: rnd.choice(ROLES) for l in rnd.sample(COMPANIES[company], rnd.randint(0, 2))}
            payload = {"company_id": company, "customer": {"id": k},
                       "locations": [{"location_id": l, "role": r} for l, r in locs.items()]}
            return Item("cmd", model.assign(company, k, locs), harness.command("assign", self.shop, payload))
        if x < 0.65:
            scope = rnd.choice(["locations", "all_locations", "company"])
            payload = {"company_id": company, "customer_id": k, "scope": scope}
            locs = None
            remove = False
            if scope == "locations":
                locs = rnd.sample(COMPANIES[company], rnd.randint(1, 2))
                payload["location_ids"] = locs
            if scope == "company" and company == MIGRATING and rnd.random() < 0.5:
                payload["remove_migrated_orders"] = remove = True
            return Item("cmd", model.revoke(company, k, scope, locs, remove),
                        harness.command("revoke", self.shop, payload))
        if x < 0.75:
            # suspend or resume: the company, or one customer of it (a contact or not)
            on = rnd.random() < 0.55
            who = None if rnd.random() < 0.4 else k
            payload = {"company_id": company} if who is None else {"company_id": company, "customer_id": who}
            return Item("cmd", model.suspend(company, who, on),
                        harness.command("suspend" if on else "resume", self.shop, payload))
        if company == MIGRATING and x < 0.95:
            # migrations only in MIGRATING, whose slot this is: one command per key a round
            loc = rnd.choice(COMPANIES[MIGRATING])
            return Item("cmd", model.migrate(k, loc), harness.command("migrate", self.shop, {
                "company_id": MIGRATING, "location_id": loc, "customer_id": k}))
        return Item("cmd", model.notify(company, k), harness.command("notify", self.shop, {
            "company_id": company, "customer_ids": [k]}))

    def hostile(self, rnd, model, company, customers, done):
        """A message that changes nothing whatever the state: rejected with a known code,
        dead-lettered, a replay or a reused id of an applied command (from done)."""
        shop = self.shop
        k = rnd.choice(customers)
        other = rnd.choice([c for c in COMPANIES if c != company])
        kinds = ["bad_role", "foreign_location", "unknown_company", "unknown_customer", "number_id",
                 "missing_company", "flag_without_company_scope", "unknown_type", "wrong_topic",
                 "not_json", "not_a_command", "bad_uuid", "too_large", "replay", "reuse"]
        if model.poisoned:
            kinds += ["poisoned"] * 5
        kind = rnd.choice(kinds)
        applied = [i for i in done if i.expect[0] == "applied"]
        assigns = [i for i in applied if i.cmd["type"] == "assign" and not i.reused]
        if (kind == "replay" and not applied) or (kind == "reuse" and not assigns):
            kind = "unknown_customer"  # nothing applied yet to repeat
        key = "%s/%s" % (shop, company)
        if kind == "bad_role":
            return Item("hostile", ("rejected", "INVALID"), harness.command("assign", shop, {
                "company_id": company, "customer": {"id": k},
                "locations": [{"location_id": COMPANIES[company][0], "role": "owner"}]}))
        if kind == "foreign_location":
            return Item("hostile", ("rejected", "NOT_FOUND"), harness.command("assign", shop, {
                "company_id": company, "customer": {"id": k},
                "locations": [{"location_id": COMPANIES[other][0], "role": "ordering_only"}]}))
        if kind == "unknown_company":
            return Item("hostile", ("rejected", "NOT_FOUND"), harness.command("revoke", shop, {
                "company_id": "c-none", "customer_id": k, "scope": "company"}))
        if kind == "unknown_customer":
            return Item("hostile", ("rejected", "NOT_FOUND"), harness.command("assign", shop, {
                "company_id": company, "customer": {"id": "nobody-" + k}, "locations": []}))
        if kind == "number_id":
            return Item("hostile", ("rejected", "INVALID"), harness.command("revoke", shop, {
                "company_id": company, "customer_id": 42, "scope": "company"}), key=key)
        if kind == "missing_company":
            return Item("hostile", ("rejected", "INVALID"), harness.command("migrate", shop, {
                "location_id": COMPANIES[company][0], "customer_id": k}), topic="commands.migrate", key=key)
        if kind == "flag_without_company_scope":
            return Item("hostile", ("rejected", "INVALID"), harness.command("revoke", shop, {
                "company_id": company, "customer_id": k, "scope": "all_locations",
                "remove_migrated_orders": True}))
        if kind == "unknown_type":
            return Item("hostile", ("rejected", "UNKNOWN_TYPE"), harness.command("assign.everyone", shop, {
                "company_id": company}), topic="commands.assign", key=key)
        if kind == "wrong_topic":
            return Item("hostile", ("rejected", "WRONG_TOPIC"), harness.command("revoke", shop, {
                "company_id": company, "customer_id": k, "scope": "company"}), topic="commands.notify", key=key)
        if kind == "poisoned":
            p = rnd.choice(sorted(model.poisoned))
            locs = {l: rnd.choice(ROLES) for l in rnd.sample(COMPANIES[company], rnd.randint(0, 2))}
            return Item("hostile", model.assign(company, p, locs), harness.command("assign", shop, {
                "company_id": company, "customer": {"id": p},
                "locations": [{"location_id": l, "role": r} for l, r in locs.items()]}))
        if kind == "replay":
            orig = rnd.choice(applied)
            return Item("replay", ("applied", None), dict(orig.cmd), of=orig)
        if kind == "reuse":
            orig = rnd.choice(assigns)
            orig.reused = True  # a second reuse would add a third result to the id
            cmd = json.loads(json.dumps(orig.cmd))
            c = cmd["payload"]["company_id"]
            cmd["payload"]["locations"] = [] if cmd["payload"]["locations"] else [
                {"location_id": COMPANIES[c][0], "role": "ordering_only"}]
            return Item("reuse", ("rejected", "IDEMPOTENCY_KEY_REUSED"), cmd, of=orig)
        marker = str(uuid.uuid4())
        if kind == "not_json":
            return Item("dead", ("dead", "NOT_JSON"), raw=b"\xff\xfe" + marker.encode() + b" {not json",
                        topic="commands.revoke", key=key)
        if kind == "not_a_command":
            return Item("dead", ("dead", "NOT_A_COMMAND"), raw=json.dumps(
                {"type": "assign", "shop_id": shop, "marker": marker}).encode(), topic="commands.assign", key=key)
        if kind == "bad_uuid":
            return Item("dead", ("dead", "NOT_A_COMMAND"), raw=json.dumps(
                {"command_id": "not-a-uuid-" + marker, "type": "notify", "shop_id": shop}).encode(),
                topic="commands.notify", key=key)
        assert kind == "too_large", kind
        cmd = harness.command("assign", shop, {"company_id": company, "customer": {"id": k},
                                               "locations": [], "pad": marker + "x" * MAX_MESSAGE_BYTES})
        return Item("dead", ("dead", "TOO_LARGE"), raw=json.dumps(cmd).encode(), topic="commands.assign", key=key)

    def scenario(self, n_commands, seed, hostile=0.0, poisoned=None):
        """sync commands, rounds of stream items, the model. poisoned: customer ->
        (SQLSTATE, the codes allowed for it)."""
        customers = ["k-%02d" % i for i in range(30)]
        model = Model(customers, {k: codes for k, (_, codes) in (poisoned or {}).items()})
        sync = self.world(customers, model)
        rounds = self.rounds(random.Random(seed), model, customers, n_commands, hostile)
        self.route_bulk(rounds, random.Random(seed + 1))
        return sync, rounds, model

    @staticmethod
    def route_bulk(rounds, rnd, share=1 / 3):
        """Sends a share of the items to the bulk topic, which takes every type: all but
        the misrouted ones, whose topic is the point."""
        for r in rounds:
            for it in r:
                if it.expect[1:2] != ("WRONG_TOPIC",) and rnd.random() < share:
                    it.topic = harness.BULK_TOPIC

    def rounds(self, rnd, model, customers, n_commands, hostile):
        """Rounds of one command per company (n_commands in all), each with a hostile
        message more per company with probability hostile / len(COMPANIES)."""
        rounds, done = [], []
        for i in range(0, n_commands, len(COMPANIES)):
            r = [self.step(rnd, model, customers, c) for c in list(COMPANIES)[:n_commands - i]]
            for c in COMPANIES:
                if rnd.random() < hostile / len(COMPANIES):
                    r.insert(rnd.randint(0, len(r)), self.hostile(rnd, model, c, customers, done))
            done += [it for it in r if it.kind == "cmd"]
            rounds.append(r)
        return rounds

    def poisoned_items(self, items, states):
        """The stream's commands for customers whose writes fail with one of states."""
        return [it for it in items if it.cmd and it.cmd["type"] == "assign"
                and isinstance(it.cmd["payload"].get("customer"), dict)
                and it.cmd["payload"]["customer"].get("id") in {"p-" + s for s in states}]

    def results_end(self, cid):
        """(partition, end offset) of the results partition that holds the result of
        command cid (read by now): a result published later is at or past it."""
        part = next(m[3] for m in self.bus.messages("results")
                    if isinstance(m[1], dict) and m[1].get("command_id") == cid)
        if getattr(self, "_watermarks", None) is None:
            self._watermarks = harness.Consumer({"bootstrap.servers": harness.env()["B2BD_KAFKA_BOOTSTRAP"],
                                                 "group.id": harness.unique_name("wm-")})
            self.addCleanup(self._watermarks.close)
        _, high = self._watermarks.get_watermark_offsets(
            harness.TopicPartition(self.prefix + "results", part), timeout=30)
        return part, high

    def send_item(self, it):
        if it.kind == "replay":  # its original's result is in (the round before)
            it.results_from = self.results_end(it.of.cid)
        if it.raw is not None:
            self.bus.send(it.raw, topic_suffix=it.topic, key=it.key)
        else:
            self.bus.send(it.cmd, topic_suffix=it.topic, key=it.key)

    def send_all(self, cmds):
        for c in cmds:
            self.bus.send(c)
        self.bus.flush()

    def apply_sync(self, sync):
        self.send_all(sync)
        for r in self.bus.wait_results([c["command_id"] for c in sync], timeout=120):
            self.assertEqual(r["status"], "applied", r)

    def start_stream(self, rounds):
        """Sends the stream round by round in a thread (self.sent counts the items whose
        round has its results); returns the thread."""
        self.sent = 0
        self.stream_error = None

        def run():
            try:
                for r in rounds:
                    for it in r:
                        self.send_item(it)
                    self.bus.flush()
                    self.bus.wait_results([it.cid for it in r if it.fresh()], timeout=self.ROUND_TIMEOUT)
                    self.sent += len(r)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.stream_error = e

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def wait_stream(self, t, timeout=600):
        t.join(timeout)
        self.assertFalse(t.is_alive(), "the stream did not finish")
        if self.stream_error:
            raise self.stream_error

    def results_by_command(self, where=False):
        """command_id -> [result] of this shop, everything read so far; where: [(result,
        partition, offset)] instead."""
        out = {}
        for m in self.bus.messages("results"):
            v = m[1]
            if isinstance(v, dict) and v.get("shop_id") == self.shop:
                out.setdefault(v["command_id"], []).append((v, m[3], m[4]) if where else v)
        return out

    @staticmethod
    def after_replay(it, where):
        """The results (of where: [(result, partition, offset)]) published after the
        replay it was sent, not a republished original read before."""
        part, start = it.results_from
        return [r for r, p, o in where if p == part and o >= start]

    def check(self, sync, items, model):
        """items: the stream, flattened (a burst and rounds)."""
        cmds = sync + [it.cmd for it in items if it.fresh()]
        results = self.bus.wait_results([c["command_id"] for c in cmds], timeout=180)
        for r in results[:len(sync)]:
            self.assertEqual(r["status"], "applied", r)
        first = dict(zip([c["command_id"] for c in cmds], results))
        for it in items:
            if not it.fresh():
                continue
            r = first[it.cid]
            status, detail = it.expect
            self.assertEqual(r["status"], status, (it.cmd, r))
            if status == "rejected":
                self.assertIn(r["error"]["code"], detail if isinstance(detail, set) else {detail}, (it.cmd, r))
                self.assertIsNone(r["result"], r)
            elif it.cmd["type"] == "notify":
                self.assertEqual(len(r["result"]["queued"]), 1 if detail == "queued" else 0, (it.cmd, r))
        # replays get the stored result again (same event), a reused id its own rejection
        again = [it for it in items if it.kind in ("replay", "reuse")]

        def answered(it, where):
            rs = where.get(it.cid, [])
            return self.after_replay(it, rs) if it.kind == "replay" else len(rs) >= 2
        wait_until(lambda: all(answered(it, w) for w in [self.results_by_command(where=True)] for it in again),
                   timeout=60, what="the replays' results (published after they were sent) and the reuses'")
        by_cid = self.results_by_command()
        where = self.results_by_command(where=True)
        for it in again:
            rs = by_cid[it.cid]
            orig = first[it.of.cid]
            if it.kind == "replay":
                self.assertTrue(all(r == orig for r in rs), (it.cmd, rs))
                self.assertTrue(self.after_replay(it, where[it.cid]), (it.cmd, it.results_from, where[it.cid]))
            else:
                other = [r for r in rs if r["event_id"] != orig["event_id"]]
                self.assertTrue(other, (it.cmd, rs))
                self.assertTrue(all(r == other[0] for r in other), rs)
                self.assertEqual((other[0]["status"], other[0]["error"]["code"]),
                                 ("rejected", "IDEMPOTENCY_KEY_REUSED"), other[0])
        # exactly one result per command: a repeat only as the same event (a reused id:
        # the first command's and its own rejection)
        events = {}
        self.settle(shop=self.shop + "-settle")  # a marker of another shop: not counted here
        for m in self.bus.read_to_end("results"):
            if m[1].get("shop_id") == self.shop:
                events.setdefault(m[1]["command_id"], set()).add(m[1]["event_id"])
        self.assertEqual(set(events), {c["command_id"] for c in cmds})
        reused = {it.cid for it in again if it.kind == "reuse"}
        self.assertEqual([c for c, e in events.items() if len(e) != (2 if c in reused else 1)], [])
        # only applied commands are recorded
        applied = {c["command_id"] for c in sync} | {it.cid for it in items
                                                     if it.fresh() and it.expect[0] == "applied"}
        self.assertEqual({str(r[0]) for r in self.query("SELECT command_id FROM commands WHERE shop_id = %s",
                                                        (self.shop,))}, applied)
        self.check_dead_letters([it for it in items if it.kind == "dead"])
        # the database equals the model
        db_roles = {}
        for company, customer, loc, role in self.query(
                "SELECT company_id, customer_id, location_id, role FROM roles WHERE shop_id = %s", (self.shop,)):
            db_roles.setdefault((company, customer), {})[loc] = role
        db_contacts = {(c, k): db_roles.get((c, k), {}) for c, k in self.query(
            "SELECT company_id, customer_id FROM contacts WHERE shop_id = %s", (self.shop,))}
        self.assertEqual(db_contacts, model.contacts)
        self.assertEqual({c for (c,) in self.query("SELECT company_id FROM companies WHERE shop_id = %s AND suspended",
                                                   (self.shop,))}, model.suspended)
        self.assertEqual(set(self.query("SELECT company_id, customer_id FROM contacts WHERE shop_id = %s AND suspended",
                                        (self.shop,))), model.own)
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
        self.settle(shop=self.shop + "-settle")
        for m in self.bus.read_to_end("events.access"):
            v = m[1]
            if v.get("shop_id") == self.shop:
                seen.setdefault(v["customer_id"], {}).setdefault(v["version"], set()).add(v["event_id"])
        self.assertEqual(set(seen) - set(model.changes), set())
        for k, n in model.changes.items():
            versions = seen.get(k, {})
            self.assertEqual(sorted(versions), list(range(1, n + 1)), k)
            self.assertTrue(all(len(e) == 1 for e in versions.values()), k)
        repeats = self.check_emails(model)
        kinds = [it.kind for it in items]
        sys.stderr.write("\n%s: %d commands (%d rejected, %d dead letters, %d replays, %d reused ids), "
                         "%d crashes, %d emails, %d sent twice\n" % (
                             self._testMethodName, len(cmds), sum(1 for r in results if r["status"] == "rejected"),
                             kinds.count("dead"), kinds.count("replay"), kinds.count("reuse"),
                             len(self.crash_times), model.emails, repeats))

    def check_emails(self, model):
        """Every email asked for was sent; one sent twice only when its first copy was
        accepted by the mail server shortly before a crash (the commit saying "sent" lost)."""
        self.assertEqual(self.query("SELECT count(*) FROM notifications WHERE shop_id = %s", (self.shop,)),
                         [(model.emails,)])
        # a notification claimed by a killed b2bd is sent again once its lease ends
        # (src/notifier.c: the 30 s SMTP limit plus a minute), then on the retry pace
        wait_until(lambda: self.query("SELECT count(*) FROM notifications WHERE shop_id = %s AND status = 'sent'",
                                      (self.shop,))[0][0] == model.emails, timeout=180, what="emails sent")
        ids = {r[0] for r in self.query("SELECT message_id FROM notifications WHERE shop_id = %s", (self.shop,))}
        sent = {}
        for m in self.smtp.messages():
            if m.message["Message-ID"] in ids:
                sent.setdefault(m.message["Message-ID"], []).append(m["received_at"])
        self.assertEqual(set(sent), ids, "every email was sent")
        for mid, times in sent.items():
            if len(times) > 1:
                t = min(times)
                # README: sent again only when its first copy was accepted shortly before a
                # crash (the commit saying "sent" lost): within 10 s before it, not after
                self.assertTrue(any(c - CRASH_WINDOW_S <= t <= c + CRASH_ACCEPT_SLACK_S for c in self.crash_times),
                                "email %s sent %d times, the first at %.3f, crashes at %s"
                                % (mid, len(times), t, self.crash_times))
        return sum(1 for t in sent.values() if len(t) > 1)

    def check_dead_letters(self, dead):
        """Each dead letter is on the dlq, with its code and original key; nothing else of
        this shop is."""
        if not dead:
            return
        self.settle(shop=self.shop + "-settle")
        msgs = [m for m in self.bus.read_to_end("dlq")
                if isinstance(m[0], str) and m[0].startswith(self.shop + "/")]
        for it in dead:
            want = harness._decode_value(it.raw[:MAX_MESSAGE_BYTES])  # the bus's reading of the kept bytes
            found = [m for m in msgs if m[1] == want]
            self.assertTrue(found, "no dead letter for %r" % it.raw[:200])
            for m in found:
                self.assertEqual((m[0], m[2]["error.code"], m[2]["source.topic"]),
                                 (it.key, it.expect[1], self.prefix + it.topic), m[2])
        self.assertEqual(len({(m[2]["source.topic"], m[2]["source.partition"], m[2]["source.offset"])
                              for m in msgs}), len(dead), "a dead letter of another message")


def flatten(rounds):
    return [it for r in rounds for it in r]


class KillTest(CrashBase):

    def test_sigkill_at_random_moments(self):
        """b2bd killed at four moments of a mixed stream with hostile and refused commands
        (failpoints of class 22 and 23) interleaved."""
        d = self.daemon_()
        poisoned = self.install_failpoints(DATA_FAILURES)
        sync, rounds, model = self.scenario(640, seed=20261127, hostile=0.5, poisoned=poisoned)
        items = flatten(rounds)
        self.assertTrue({"hostile", "replay", "reuse", "dead"} <= {it.kind for it in items})
        for s in DATA_FAILURES:
            self.assertTrue(self.poisoned_items(items, [s]), s)
        self.apply_sync(sync)
        t = self.start_stream(rounds)
        rnd = random.Random(1)
        for fraction in (0.2, 0.4, 0.6, 0.8):
            wait_until(lambda: self.sent >= fraction * len(items) or not t.is_alive(), timeout=300,
                       what="%d%% of the stream" % (fraction * 100))
            time.sleep(rnd.random() * 0.2)  # somewhere inside a round: mid-batch or mid-publish
            self.kill_daemon(d)
            d = self.daemon_()
        self.wait_stream(t)
        self.check(sync, items, model)


class TwoInstancesTest(CrashBase):

    def test_one_of_two_killed_mid_stream(self):
        a = self.daemon_()
        b = self.start_daemon(extra_env=self.ENV, smtp_url=self.smtp.url, group_id=a.env["B2BD_GROUP_ID"])
        sync, rounds, model = self.scenario(320, seed=7, hostile=0.3)
        items = flatten(rounds)
        self.apply_sync(sync)
        t = self.start_stream(rounds)
        wait_until(lambda: self.sent >= 0.4 * len(items) or not t.is_alive(), timeout=300, what="40% of the stream")
        self.kill_daemon(a)
        self.wait_stream(t)
        self.assertTrue(b.alive())
        self.check(sync, items, model)


class PostgresKillTest(CrashBase):
    """PostgreSQL killed with SIGKILL (postmaster and every backend) while b2bd has
    batches in flight, then started again on the same data directory: crash recovery.
    A cluster of the test's own (see PrivatePostgres)."""

    @classmethod
    def _make_world(cls, target):
        target.prefix = harness.unique_name("t") + "."
        harness.create_topics(target.prefix)
        target.pg = PrivatePostgres(durable=True, dbname="b2bd_crash")
        target.dsn = target.pg.dsn
        target.db_name = None  # the database goes with the cluster

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.pg.destroy()

    def tearDown(self):
        if self._failed():
            sys.stderr.write("\n----- private postgres.log (tail) -----\n%s\n" % self.pg.log()[-20000:])
        super().tearDown()

    def crash_postgres(self, d, mid_batch):
        """Kills the cluster, starts it again, and checks that it went through crash
        recovery and that b2bd was left running and noticed; mid_batch: a batch of b2bd's
        failed on its open connection (not only on connecting again)."""
        log_at = len(self.pg.log())
        d_log_at = len(d.log())
        self.crash_times.append(time.time())
        self.assertGreater(self.pg.kill(), 3, "postmaster, its auxiliary processes and b2bd's backends")
        time.sleep(0.5)  # b2bd meets a database that is not there
        self.pg.start()
        log = self.pg.log()[log_at:]
        self.assertIn("database system was interrupted", log)
        self.assertIn("automatic recovery in progress", log)
        self.assertIn("redo done at", log)
        self.assertTrue(d.alive(), "b2bd waits for the database, it does not exit")

        def failed():
            return [l for l in d.log()[d_log_at:].splitlines() if "event=batch_failed" in l
                    and (not mid_batch or 'error="cannot connect' not in l)]
        wait_until(failed, timeout=30, what="b2bd's batch failing with the database gone")

    def test_postgres_sigkill_mid_batch(self):
        d = self.daemon_()
        poisoned = self.install_failpoints(DATA_FAILURES)
        # a burst of assigns on one topic (per-key order is send order), sent at once: the
        # cluster dies once a batch of their results is out, the rest in flight
        rnd = random.Random(11)
        customers = ["k-%02d" % i for i in range(30)]
        model = Model(customers, {k: codes for k, (_, codes) in poisoned.items()})
        sync = self.world(customers, model)
        burst = []
        for i in range(800):
            company = rnd.choice(list(COMPANIES))
            k = rnd.choice(customers)
            locs = {l: rnd.choice(ROLES) for l in rnd.sample(COMPANIES[company], rnd.randint(0, 2))}
            burst.append(Item("cmd", model.assign(company, k, locs), harness.command("assign", self.shop, {
                "company_id": company, "customer": {"id": k},
                "locations": [{"location_id": l, "role": r} for l, r in locs.items()]})))
        self.apply_sync(sync)
        for it in burst:
            self.send_item(it)
        self.bus.flush()
        ids = {it.cid for it in burst}
        def out():
            self.bus.poll("results", 0.05)
            return len({m[1]["command_id"] for m in self.bus._read["results"] if m[1].get("command_id") in ids})
        wait_until(lambda: out() >= 40, timeout=120, step=0.01, what="the burst's first results")
        done = out()
        self.crash_postgres(d, mid_batch=True)
        sys.stderr.write("\nPostgreSQL killed with %d of %d results of the burst out\n" % (done, len(burst)))
        self.bus.wait_results(list(ids), timeout=180)
        # then the mixed stream, hostile messages interleaved; the cluster dies again mid-way
        more = self.rounds(random.Random(12), model, customers, 240, hostile=0.5)
        items = burst + flatten(more)
        t = self.start_stream(more)
        wait_until(lambda: self.sent >= 0.5 * len(flatten(more)) or not t.is_alive(), timeout=300,
                   what="half of the mixed stream")
        time.sleep(rnd.random() * 0.2)
        self.crash_postgres(d, mid_batch=False)
        self.wait_stream(t)
        self.check(sync, items, model)
        self.assertTrue(d.alive())


class UnprocessableTest(CrashBase):
    """Commands the database refuses for a reason no retry cures (program limit, internal
    error), interleaved in the mixed stream with b2bd killed once: each is rejected and
    changes nothing, and the stream goes on (contract: "No command stalls the others")."""

    ROUND_TIMEOUT = 60

    def test_unprocessable_commands_interleaved(self):
        d = self.daemon_()
        poisoned = self.install_failpoints(dict(UNPROCESSABLE_FAILURES, **DATA_FAILURES))
        sync, rounds, model = self.scenario(240, seed=54000, hostile=1.0, poisoned=poisoned)
        items = flatten(rounds)
        for s in UNPROCESSABLE_FAILURES:
            self.assertTrue(self.poisoned_items(items, [s]), s)
        self.apply_sync(sync)
        t = self.start_stream(rounds)
        wait_until(lambda: self.sent >= 0.5 * len(items) or not t.is_alive(), timeout=120, what="half the stream")
        time.sleep(0.1)
        self.kill_daemon(d)
        d = self.daemon_()
        self.wait_stream(t, timeout=240)
        self.check(sync, items, model)


if __name__ == "__main__":
    unittest.main()

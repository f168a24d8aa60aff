"""A command the database refuses never stalls the others (CONTRACT.md, "Limits and
failures"). A failpoint, created by the test in the test's own database, raises a chosen
SQLSTATE when a chosen customer's row is written (a trigger on customers, contacts and
roles; a deferred constraint trigger on contacts, which fires at COMMIT; a trigger on the
outbox for a chosen command). Each burst of commands waits in Kafka while no daemon runs,
so that the next one reads it in one batch: the refused command ends as one `rejected`
result whose message quotes nothing of the database, and the commands before and after
it on its partition, and another shop's, are applied. test_isolation_batch.py uses the
same failpoints for failures outside a savepoint and for the surroundings' failures."""
import re
import unittest
import uuid

import harness
from b2btest import B2bTestCase, wait_until
from test_ops import scrape

COMPANY = "c-1"
LOCATIONS = ("loc-1", "loc-2")

FAILPOINTS_SQL = r"""
CREATE TABLE IF NOT EXISTS test_failpoints (
    shop_id   text NOT NULL,
    id        text NOT NULL,          -- a customer id, or a command id for the outbox
    sqlstate  text NOT NULL,
    times     bigint NOT NULL,        -- raise this often (counted by seq), -1: always
    seq       text NOT NULL,          -- a sequence: counts survive the rollbacks
    at_commit boolean NOT NULL DEFAULT false,
    PRIMARY KEY (shop_id, id, at_commit));

CREATE OR REPLACE FUNCTION test_failpoint_fire(f test_failpoints) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF f.times < 0 OR nextval(f.seq::regclass) <= f.times THEN
        RAISE EXCEPTION 'ERROR: test_failpoint_trigger in constraint test_failpoint_key (%)', f.sqlstate
            USING ERRCODE = f.sqlstate, DETAIL = 'Key (customer_id)=(' || f.id || ')';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION test_failpoint() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE f test_failpoints;
BEGIN
    SELECT * INTO f FROM test_failpoints
     WHERE shop_id = NEW.shop_id AND id = to_jsonb(NEW)->>'customer_id'
       AND at_commit = (TG_WHEN = 'AFTER');
    IF FOUND THEN
        PERFORM test_failpoint_fire(f);
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION test_failpoint_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE f test_failpoints;
BEGIN
    FOR f IN SELECT * FROM test_failpoints WHERE shop_id = '*outbox*' LOOP
        IF position(convert_to(f.id, 'UTF8') IN NEW.value) > 0 THEN
            PERFORM test_failpoint_fire(f);
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

DROP TRIGGER IF EXISTS test_failpoint_customers ON customers;
DROP TRIGGER IF EXISTS test_failpoint_contacts ON contacts;
DROP TRIGGER IF EXISTS test_failpoint_roles ON roles;
DROP TRIGGER IF EXISTS test_failpoint_commit ON contacts;
DROP TRIGGER IF EXISTS test_failpoint_outbox ON outbox;
CREATE TRIGGER test_failpoint_customers BEFORE INSERT OR UPDATE ON customers
    FOR EACH ROW EXECUTE FUNCTION test_failpoint();
CREATE TRIGGER test_failpoint_contacts BEFORE INSERT OR UPDATE ON contacts
    FOR EACH ROW EXECUTE FUNCTION test_failpoint();
CREATE TRIGGER test_failpoint_roles BEFORE INSERT OR UPDATE ON roles
    FOR EACH ROW EXECUTE FUNCTION test_failpoint();
CREATE CONSTRAINT TRIGGER test_failpoint_commit AFTER INSERT OR UPDATE ON contacts
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_failpoint();
CREATE TRIGGER test_failpoint_outbox BEFORE INSERT ON outbox
    FOR EACH ROW EXECUTE FUNCTION test_failpoint_outbox();
"""

# what a rejection's message must never quote: the database's words and names
INTERNALS = re.compile(r"ERROR|SQLSTATE|sqlstate|failpoint|constraint|_key|_pkey|trigger|Key \(|"
                       r"\b[0-9A-Z]{2}[0-9A-Z]{3}\b")


class IsolationBase(B2bTestCase):
    """The world, the failpoints and the one-batch bursts (no tests of its own)."""

    # a database and topics per test: a command that stalled one test (without the fix)
    # does not stall the next
    SHARED = False
    START_DAEMON = False

    def setUp(self):
        super().setUp()
        self.other = harness.unique_name("shop-")
        # tearDown does not run when setUp fails: no daemon outlives the test
        self.addCleanup(lambda: [d.kill() for d in self._daemons if d.alive()])
        d = self.start_daemon()  # migrates
        self.query(FAILPOINTS_SQL)
        world = []
        for shop in (self.shop, self.other):
            world.append(self.command("company.upsert", {
                "company_id": COMPANY, "name": "Company",
                "locations": [{"location_id": l, "name": l} for l in LOCATIONS]}, shop_id=shop))
        world += [self.command("customer.upsert", {"customer_id": c, "email": c + "@example.com"}, shop_id=shop)
                  for c, shop in [("u%d" % i, self.shop) for i in range(1, 9)] + [("o1", self.other)]]
        for r in self.run_cmds(world):
            self.assertApplied(r)
        self.assertEqual(d.stop(), 0)

    # -- failpoints and bursts ---------------------------------------------
    def failpoint(self, customer_id, sqlstate, times=-1, at_commit=False, shop=None):
        seq = "test_fp_" + uuid.uuid4().hex
        self.query("CREATE SEQUENCE %s" % seq)
        self.query("INSERT INTO test_failpoints VALUES (%s, %s, %s, %s, %s, %s)",
                   (shop or self.shop, customer_id, sqlstate, times, seq, at_commit))

    def clear_failpoints(self):
        self.query("DELETE FROM test_failpoints")

    def burst(self, sends, env=None):
        """Sends (command, partition) pairs with no daemon running, then starts one, which
        reads them in one batch: returns their results, its metrics and its log."""
        for cmd, part in sends:
            self.bus.send(cmd, partition=part)
        self.bus.flush()
        d = self.start_daemon(extra_env=dict(env or {}, B2BD_BATCH_LINGER_MS="300"))
        results = self.bus.wait_results([c["command_id"] for c, _ in sends], timeout=60)
        port = int(re.search(r"event=http_listening .*port=(\d+)", d.log()).group(1))
        # a batch is counted once all its workers are done, which can be after its results
        # went out (each worker wakes the relay after its commit): wait until every message
        # sent is counted in some batch, then there must have been one
        wait_until(lambda: scrape(port).total("b2bd_batch_size_messages_sum") >= len(sends), timeout=10,
                   what="every message counted in a batch")
        m = scrape(port)
        self.assertEqual(m.get("b2bd_batch_size_messages_count"), 1.0,
                         "the commands were not read in one batch")
        self.assertEqual(d.stop(), 0)
        return results, m, d.log()

    def assign_cmd(self, customer, loc="loc-1", shop=None):
        return self.command("assign", self.assign(customer, [(loc, "ordering_only")]), shop_id=shop)

    def assert_refused(self, result, codes=("UNPROCESSABLE",)):
        self.assertRejected(result)
        self.assertIn(result["error"]["code"], codes, result)
        msg = result["error"]["message"]
        self.assertTrue(msg, result)
        self.assertIsNone(INTERNALS.search(msg), "the message quotes the database: %r" % msg)
        self.assertIsNone(result["result"])

    def assign_positions(self):
        return self.query("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets WHERE topic = %s",
                          (self.prefix + "commands.assign",))[0][0]

    def customers(self, shop=None):
        return [r[0] for r in self.query("SELECT customer_id FROM customers WHERE shop_id = %s ORDER BY 1",
                                         (shop or self.shop,))]


class IsolationTest(IsolationBase):
    """A command refused inside its savepoint: rejected alone within the batch (the
    batch-level cases are in test_isolation_batch.py)."""

    def test_each_class_rejects_only_its_command(self):
        """One customer.upsert per class of failure (22, 23, 42, 54, XX, P0001, and a
        unique-key race, 23505, that never clears) between good ones, all on one
        partition, with another shop's command on it and on another partition: each
        refused command is rejected, everything else applied."""
        classes = [("22003", ("INVALID",)), ("23514", ("UNPROCESSABLE",)), ("42703", ("UNPROCESSABLE",)),
                   ("23505", ("CONFLICT",)),
                   ("54000", ("UNPROCESSABLE",)), ("XX000", ("UNPROCESSABLE",)),
                   ("P0001", ("UNPROCESSABLE",))]
        sends, refused, good = [], {}, []
        for n, (state, codes) in enumerate(classes):
            bad = "bad-%s" % state.lower()
            self.failpoint(bad, state)
            ok = "good-%d" % n
            for cid in (ok, bad):
                cmd = self.command("customer.upsert", {"customer_id": cid, "email": cid + "@example.com"})
                sends.append((cmd, 0))
                (refused.setdefault(cmd["command_id"], codes) if cid == bad else good.append(cmd["command_id"]))
        tail = self.command("customer.upsert", {"customer_id": "good-last", "email": "last@example.com"})
        sends.append((tail, 0))
        good.append(tail["command_id"])
        for part in (0, 1):
            cmd = self.command("customer.upsert", {"customer_id": "o-%d" % part, "email": "other-%d@example.com" % part},
                               shop_id=self.other)
            sends.append((cmd, part))
            good.append(cmd["command_id"])

        results, m, log = self.burst(sends)
        by_id = {r["command_id"]: r for r in results}
        for cid, codes in refused.items():
            self.assert_refused(by_id[cid], codes)
        for cid in good:
            self.assertApplied(by_id[cid])
        self.assertEqual(set(self.customers()), set(["good-%d" % n for n in range(len(classes))] + ["good-last"]
                                                    + ["u%d" % i for i in range(1, 9)]))
        self.assertEqual(set(self.customers(self.other)), {"o-0", "o-1", "o1"})
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), float(len(classes)))
        self.assertEqual(m.get("b2bd_batch_retries_total"), 0.0, "refused in their savepoints")
        # the log keeps the database's own account
        for state, _ in classes:
            self.assertRegex(log, r"event=command_refused .*sqlstate=%s .*test_failpoint_trigger" % state)

    def test_set_based_run(self):
        """A run of plain assigns that the set-based path takes, with the failing one (a
        54000 on its roles row, as an over-long key does) in the middle: the run falls
        back to one by one, which rejects that assign alone."""
        self.failpoint("u3", "54000")
        cmds = [self.assign_cmd("u%d" % i) for i in (1, 2, 3, 4, 5)]
        other = self.assign_cmd("o1", shop=self.other)
        results, m, log = self.burst([(c, 0) for c in cmds] + [(other, 1)], env={"B2BD_BULK_ASSIGN": "on"})
        self.assertEqual([r["status"] for r in results], ["applied"] * 2 + ["rejected"] + ["applied"] * 3)
        self.assert_refused(results[2])
        self.assertGreaterEqual(m.get("b2bd_apply_bulk_fallbacks_total"), 1.0, "the set-based path was not used")
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), 1.0)
        for i in (1, 2, 4, 5):
            self.assertEqual(self.roles_in_db("u%d" % i), [("loc-1", "ordering_only")])
        self.assertEqual(self.roles_in_db("u3"), [])
        self.assertEqual(self.query("SELECT count(*) FROM contacts WHERE shop_id = %s AND customer_id = 'u3'",
                                    (self.shop,)), [(0,)])

    def test_issue_12_long_cjk_ids(self):
        """The report of issue 12: ids of 255 characters of CJK Extension B (four bytes each
        in UTF-8) in a company.upsert and an assign, whose roles row PostgreSQL could not
        index (54000). The contract ("Every valid identifier fits") says such an id is
        applied like a short one: the assign is applied, and the next command on its
        partition and another shop's are applied."""
        def cjk(start):
            return "".join(chr(0x20000 + start + i) for i in range(255))
        company, loc, cust = cjk(0), cjk(300), cjk(600)
        d = self.start_daemon()
        self.make_company(company, [loc])
        self.make_customer(cust, email="cjk@example.com")
        self.assertEqual(d.stop(), 0)
        long_ids = self.command("assign", self.assign(cust, [(loc, "ordering_only")], company=company))
        after = self.command("assign", self.assign("u1", [(loc, "location_admin")], company=company))
        other = self.assign_cmd("o1", shop=self.other)
        results, m, log = self.burst([(long_ids, 0), (after, 0), (other, 1)])
        self.assertApplied(results[0])
        self.assertApplied(results[1])
        self.assertApplied(results[2])
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), 0.0)
        self.assertEqual(self.roles_in_db(cust, company), [(loc, "ordering_only")])
        self.assertEqual(self.roles_in_db("u1", company), [(loc, "location_admin")])


if __name__ == "__main__":
    unittest.main()

"""A command the database refuses outside its savepoint (at COMMIT), one whose very
rejection is refused, and failures of the surroundings (40001, 40P01, 55P03, 53, 58,
57P01, 40003) and a unique-key race that clear: the
failpoints and one-batch bursts of test_isolation.py."""
import unittest

from test_isolation import IsolationBase


class BatchIsolationTest(IsolationBase):
    def test_failure_at_commit(self):
        """A deferred constraint trigger refuses one assign at COMMIT, outside any
        savepoint: the batch is applied again one message at a time and that assign
        rejected alone. Two failed transactions in all: the batch, and the message alone."""
        self.failpoint("u2", "P0001", at_commit=True)
        cmds = [self.assign_cmd("u1"), self.assign_cmd("u2"), self.assign_cmd("u3"), self.assign_cmd("u4")]
        other = self.assign_cmd("o1", shop=self.other)
        before = self.assign_positions()
        results, m, log = self.burst([(c, 0) for c in cmds] + [(other, 1)])
        self.assertEqual([r["status"] for r in results], ["applied", "rejected", "applied", "applied", "applied"])
        self.assert_refused(results[1])
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), 1.0)
        self.assertEqual(m.get("b2bd_batch_retries_total"), 2.0)
        self.assertEqual(self.roles_in_db("u2"), [])
        for i in (1, 3, 4):
            self.assertEqual(self.roles_in_db("u%d" % i), [("loc-1", "ordering_only")])
        self.assertIn("event=batch_refused", log)
        self.assertRegex(log, r"event=batch_refused .*sqlstate=P0001")
        # the partitions' positions moved past all of them
        self.assertEqual(self.assign_positions() - before, len(cmds) + 1)

    def test_even_its_rejection_refused(self):
        """The database refuses every outbox row that names one command, so neither its
        result nor its rejection can be written: its position moves on without a result
        (logged as an error), and the commands after it are applied."""
        cmds = [self.assign_cmd("u1"), self.assign_cmd("u2"), self.assign_cmd("u3")]
        self.failpoint(cmds[1]["command_id"], "P0001", shop="*outbox*")
        self.bus.send(cmds[1], partition=0)  # alone first: it never gets a result
        results, m, log = self.burst([(cmds[0], 0), (cmds[2], 0)])
        self.assertEqual([r["status"] for r in results], ["applied", "applied"])
        self.assertEqual(self.bus.results_for(cmds[1]["command_id"]), [])
        self.assertRegex(log, r"event=message_skipped .*partition=0 ")
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), 1.0)
        self.assertEqual(self.roles_in_db("u2"), [])
        self.assertEqual(self.roles_in_db("u3"), [("loc-1", "ordering_only")])

    def test_transient_failures_end_applied(self):
        """40001 and 40P01, raised five times each and then no more, are the surroundings':
        retried (in the savepoint, then the batch), never rejected."""
        self.failpoint("u1", "40001", times=5)
        self.failpoint("u2", "40P01", times=5)
        cmds = [self.assign_cmd("u1"), self.command("customer.upsert", {"customer_id": "u2",
                                                                        "email": "u2@example.com",
                                                                        "first_name": "Two"}),
                self.assign_cmd("u3")]
        results, m, log = self.burst([(cmds[0], 0), (cmds[1], 0), (cmds[2], 0)])
        for r in results:
            self.assertApplied(r)
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), 0.0)
        self.assertGreaterEqual(m.get("b2bd_batch_retries_total"), 1.0)
        self.assertEqual(self.roles_in_db("u1"), [("loc-1", "ordering_only")])
        self.assertEqual(self.query("SELECT first_name FROM customers WHERE shop_id = %s AND customer_id = 'u2'",
                                    (self.shop,)), [("Two",)])
        # the failpoints fired as often as asked: the fault cleared, nothing else did it
        self.assertEqual(self.query("SELECT count(*) FROM test_failpoints f, LATERAL"
                                    " (SELECT last_value FROM pg_sequences WHERE sequencename = f.seq) s"
                                    " WHERE s.last_value >= 6"), [(2,)])

    def test_every_surroundings_state_ends_applied(self):
        """The other states of the surroundings (fault_classify): lock not available
        (55P03), lack of resources (53200, 58030), shutdown (57P01), statement completion
        unknown (40003), each raised three times and then no more: retried, never
        rejected; and a unique-key race (23505) that clears after two tries is applied in
        its savepoint."""
        states = [("u1", "55P03"), ("u2", "53200"), ("u3", "58030"), ("u4", "57P01"), ("u5", "40003")]
        for customer, state in states:
            self.failpoint(customer, state, times=3)
        self.failpoint("u6", "23505", times=2)
        cmds = [self.assign_cmd(c) for c, _ in states] + [self.assign_cmd("u6")]
        results, m, log = self.burst([(c, 0) for c in cmds])
        for r in results:
            self.assertApplied(r)
        self.assertEqual(m.get("b2bd_apply_isolated_commands_total"), 0.0)
        for i in range(1, 7):
            self.assertEqual(self.roles_in_db("u%d" % i), [("loc-1", "ordering_only")])
        for _, state in states + [("u6", "23505")]:
            self.assertRegex(log, r"event=retry_command .*sqlstate=%s " % state)
        self.assertNotIn("event=command_refused", log)


if __name__ == "__main__":
    unittest.main()

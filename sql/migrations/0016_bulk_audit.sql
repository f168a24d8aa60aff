-- 0016: the set-based paths carry each command's actor and issued_at themselves, and
-- write their access events with fewer steps (issue 13: imports with an actor ran at a
-- third of the rate of those without).
-- Until now b2bd noted the actor and issued_at of every command of a run in the setting
-- b2bd.audit (0011), one JSON object keyed by command_id, and each inbox row (trigger
-- commands_audit) and each access event (b2bd_audit_actor) parsed that whole object
-- again: time quadratic in the run's length (0.7 ms a parse at 500 commands, two a
-- command). Now:
--   - b2bd_assign_bulk and b2bd_revoke_bulk read "a" (actor) and "at" (issued_at) in
--     each row of p_rows, write commands.actor and commands.issued_at in their inbox
--     INSERT, and give the actor to the access event; b2bd no longer notes a run in
--     b2bd.audit;
--   - the one-by-one path still notes its command (a run of one) in b2bd.audit, read by
--     the 7-argument b2bd_access_event (b2bd_emit_access, b2bd_customer_redact) and by
--     the trigger, which now runs only when the setting holds something and the row
--     lacks an actor or issued_at.
-- And in the bulk functions' last statement (half of their time on a grown table):
--   - the access event is built from two SQL functions that the planner inlines
--     (b2bd_access_of, b2bd_access_text) instead of one function call per row, and
--     b2bd_access_event is defined from the same two;
--   - a customer that b2bd_assign_bulk creates is inserted at access_version 1, not
--     inserted at 0 and then updated;
--   - the runs' access_history rows are written in one INSERT (0011's row trigger, which
--     parsed each event's JSON again, stands aside while b2bd.history is 'written').
-- Each step took about a tenth off the backend's CPU time for 500 new customers
-- (bench/apply_bench new, B2BD_BENCH_ACTOR; see the commit).
-- Functions redefined: b2bd_access_event (7 arguments; now a wrapper), b2bd_audit_actor,
-- b2bd_assign_bulk (0009's but as above), b2bd_revoke_bulk (0015's, likewise); the
-- triggers commands_audit and outbox_access_history (WHEN conditions).
-- Frozen (sql/migrations/README.md): the bodies of the functions this migration
-- created or replaced are gone from here; each function lives in sql/functions/.

ALTER TYPE b2bd_bulk_row ADD ATTRIBUTE actor text, ADD ATTRIBUTE issued_at text;
ALTER TYPE b2bd_revoke_row ADD ATTRIBUTE actor text, ADD ATTRIBUTE issued_at text;

-- The inbox trigger of 0011, called only when b2bd.audit holds something and the row
-- lacks an actor or an issued_at (the set-based paths write both themselves).
DROP TRIGGER commands_audit ON commands;
CREATE TRIGGER commands_audit BEFORE INSERT ON commands FOR EACH ROW
    WHEN ((NEW.actor IS NULL OR NEW.issued_at IS NULL)
          AND coalesce(current_setting('b2bd.audit', true), '') <> '')
    EXECUTE FUNCTION b2bd_commands_audit();

-- access_history (0011's trigger) for every access event but those of the bulk functions,
-- which write their runs' history rows themselves, set-based, while b2bd.history is
-- 'written' (set only inside them: their errors roll it back with their savepoint).
DROP TRIGGER outbox_access_history ON outbox;
CREATE TRIGGER outbox_access_history AFTER INSERT ON outbox
    FOR EACH ROW WHEN (NEW.topic = 'events.access' AND NEW.value IS NOT NULL
                       AND current_setting('b2bd.history', true) IS DISTINCT FROM 'written')
    EXECUTE FUNCTION b2bd_access_history();

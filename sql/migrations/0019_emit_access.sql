-- 0019: b2bd_emit_access, the access event of one customer (every one-by-one command that
-- changes a customer's access), at half its cost (issue 13: single commands'
-- latency). Its 0007 body built the event through b2bd_access_event, a SQL function that
-- the planner cannot inline (it reads tables), so its query was planned again on every
-- call; and 0011's trigger then parsed the event's JSON back to write its access_history
-- row. Measured with log_min_duration_statement over 200 single assigns at 20/s: 0.94 ms
-- per call (median), as much as b2bd_assign itself. Now, as b2bd_assign_bulk does for a
-- run (0016):
--   - the customer's access comes from b2bd_access_of (an inlined set-returning function:
--     planned once per connection, with this function's other statements) and the text
--     from b2bd_access_text, the bulk functions' own builders;
--   - the access_history row is written here, from the same values, with 0011's trigger
--     standing aside (b2bd.history = 'written', rolled back with the command's savepoint
--     on an error such as 0013's B2B13).
--   - its event_id and occurred_at are made here (gen_random_uuid, b2bd_now_text), as
--     for the command's result (0018): b2bd passes the shop, the customer and the command.
-- The event is the same, byte for byte but for event_id and occurred_at;
-- tests/db/test_apply_diff.c compares access events and access_history between this path
-- and the set-based one.

DROP FUNCTION b2bd_emit_access(text, text, uuid, uuid, text);

CREATE FUNCTION b2bd_emit_access(p_shop text, p_customer text, p_caused_by uuid)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_now text := b2bd_now_text();
    v_version bigint;
    v_email text;
    v_companies text;
    v_any_role boolean;
    v_actor text;
BEGIN
    UPDATE customers SET access_version = access_version + 1, updated_at = now()
     WHERE shop_id = p_shop AND customer_id = p_customer
    RETURNING access_version, email INTO v_version, v_email;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % vanished while applying', p_customer;
    END IF;
    SELECT d.companies, d.any_role INTO v_companies, v_any_role FROM b2bd_access_of(p_shop, p_customer) d;
    v_actor := b2bd_audit_actor(p_caused_by::text);
    PERFORM set_config('b2bd.history', 'written', true);
    INSERT INTO outbox (topic, key, value)
    VALUES ('events.access', convert_to(p_shop || '/' || p_customer, 'UTF8'),
            convert_to(b2bd_access_text(gen_random_uuid(), p_shop, p_customer, v_email, v_any_role, v_companies,
                                        v_version, p_caused_by::text, v_actor, v_now), 'UTF8'));
    INSERT INTO access_history AS h (shop_id, customer_id, version, companies, caused_by, actor, occurred_at)
    VALUES (p_shop, p_customer, v_version, v_companies::jsonb, p_caused_by, v_actor,
            v_now::timestamptz)
    ON CONFLICT (shop_id, customer_id, version) DO UPDATE
        SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
            actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at;
    PERFORM set_config('b2bd.history', '', true);
END
$$;

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

ALTER TYPE b2bd_bulk_row ADD ATTRIBUTE actor text, ADD ATTRIBUTE issued_at text;
ALTER TYPE b2bd_revoke_row ADD ATTRIBUTE actor text, ADD ATTRIBUTE issued_at text;

-- A customer's access as its access event shows it: the companies (JSON, by company id,
-- each with its roles by location id) and whether it holds any role. A set-returning SQL
-- function, inlined where it is used in FROM: the bulk functions join it to their rows.
CREATE FUNCTION b2bd_access_of(p_shop text, p_customer text)
RETURNS TABLE (companies text, any_role boolean) LANGUAGE sql STABLE AS $$
    SELECT '[' || coalesce(string_agg(c.doc, ',' ORDER BY c.company_id), '') || ']',
           coalesce(bool_or(c.has_role), false)
      FROM (SELECT k.company_id, count(o.location_id) > 0 AS has_role,
                   '{"company_id":' || to_json(k.company_id)::text
                   || ',"access":' || CASE WHEN count(o.location_id) > 0 THEN '"locations"'
                                           ELSE '"no_access"' END
                   || ',"locations":['
                   || coalesce(string_agg('{"location_id":' || to_json(o.location_id)::text
                                          || ',"role":' || to_json(o.role)::text || '}',
                                          ',' ORDER BY o.location_id)
                                   FILTER (WHERE o.location_id IS NOT NULL), '')
                   || ']}' AS doc
              FROM contacts k
              LEFT JOIN roles o ON o.shop_id = k.shop_id AND o.company_id = k.company_id
                               AND o.customer_id = k.customer_id
             WHERE k.shop_id = p_shop AND k.customer_id = p_customer
             GROUP BY k.company_id) c
$$;

-- The access event's text (CONTRACT.md, "Access event"; 0011's key order), from its parts.
CREATE FUNCTION b2bd_access_text(p_event_id uuid, p_shop text, p_customer text, p_email text,
                                 p_any_role boolean, p_companies text, p_version bigint,
                                 p_caused_by text, p_actor text, p_occurred_at text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"event_id":' || to_json(p_event_id)::text
           || ',"shop_id":' || to_json(p_shop)::text
           || ',"customer_id":' || to_json(p_customer)::text
           || ',"email":' || coalesce(to_json(p_email)::text, 'null')
           || ',"experience":' || CASE WHEN p_any_role THEN '"b2b"' ELSE '"d2c"' END
           || ',"companies":' || p_companies
           || ',"version":' || p_version
           || ',"caused_by":' || to_json(p_caused_by)::text
           || ',"actor":' || coalesce(to_json(p_actor)::text, 'null')
           || ',"occurred_at":' || to_json(p_occurred_at)::text || '}'
$$;

-- The access event of 0011 with its actor given (NULL: "actor": null).
CREATE FUNCTION b2bd_access_event(p_shop text, p_customer text, p_email text,
                                  p_version bigint, p_caused_by text, p_event_id uuid,
                                  p_occurred_at text, p_actor text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT b2bd_access_text(p_event_id, p_shop, p_customer, p_email, d.any_role, d.companies,
                            p_version, p_caused_by, p_actor, p_occurred_at)
      FROM b2bd_access_of(p_shop, p_customer) d
$$;

-- The one-by-one path's: the actor noted for the command in b2bd.audit.
CREATE OR REPLACE FUNCTION b2bd_access_event(p_shop text, p_customer text, p_email text,
                                             p_version bigint, p_caused_by text, p_event_id uuid,
                                             p_occurred_at text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT b2bd_access_event(p_shop, p_customer, p_email, p_version, p_caused_by, p_event_id,
                             p_occurred_at, b2bd_audit_actor(p_caused_by))
$$;

-- The actor noted for a command (NULL when none); the setting is parsed only when set.
CREATE OR REPLACE FUNCTION b2bd_audit_actor(p_command_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.v <> '' THEN s.v::jsonb -> lower(p_command_id) ->> 'a' END
      FROM (SELECT current_setting('b2bd.audit', true) AS v) s
$$;

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

-- p_rows: as in 0009, and in each row "a" (the command's actor) and "at" (its issued_at).
CREATE OR REPLACE FUNCTION b2bd_assign_bulk(p_rows jsonb, p_max_contacts integer)
RETURNS TABLE (i integer, status text, code text, field text)
LANGUAGE plpgsql
-- A run holds 1 to a few hundred rows, each looked up by key: plan every statement once
-- per connection (planning them for each call cost more than running them), and never
-- scan a whole table for a run's rows.
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v b2bd_bulk_row[];
    v_now text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    v_roles_changed integer[];
BEGIN
    -- the rows as given (an array, which the planner sizes small: lookups by key)
    v := ARRAY(SELECT ROW(x.i, x.id, decode(x.h, 'hex'), x.imp, decode(x.k, 'hex'), x.shop, x.co,
                          x.cu, x.em, x.fn, x.ln, x.ph, x.locs, x.roles,
                          NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, x.a, x.at)::b2bd_bulk_row
                 FROM jsonb_to_recordset(p_rows) AS x(i integer, id text, h text, imp text, k text,
                                                      shop text, co text, cu text, em text, fn text,
                                                      ln text, ph text, locs text[], roles text[],
                                                      a text, at text)
                ORDER BY x.i);

    -- the seat counts first: the company rows' locks serialise racing assigns
    PERFORM 1 FROM companies c
     WHERE (c.shop_id, c.company_id) IN (SELECT r.shop, r.company FROM unnest(v) r)
     ORDER BY c.shop_id, c.company_id FOR UPDATE;

    -- every check, read-only, in b2bd_assign's order; then seats among the rows that pass
    SELECT array_agg(ROW(s.i, s.id, s.hash, s.imp, s.k, s.shop, s.co, s.cu, s.em, s.fn, s.ln, s.ph,
                         s.locs, s.roles, s.customer, s.create_customer, s.contact_created,
                         coalesce(s.code, CASE WHEN s.seat THEN NULL ELSE 'LIMIT_REACHED' END),
                         CASE WHEN s.code IS NOT NULL THEN s.field
                              WHEN NOT s.seat THEN 'payload.company_id' END,
                         CASE WHEN s.code IS NOT NULL THEN s.message
                              WHEN NOT s.seat THEN format('the company has %s contacts already', p_max_contacts) END,
                         s.stored, false, s.a, s.at)::b2bd_bulk_row ORDER BY s.i)
      INTO v
      FROM (SELECT t.*,
                   t.code IS NOT NULL OR t.stored IS NOT NULL OR NOT t.contact_created
                   OR t.seats + sum(CASE WHEN t.code IS NULL AND t.stored IS NULL AND t.contact_created
                                         THEN 1 ELSE 0 END)
                                    OVER (PARTITION BY t.shop, t.co ORDER BY t.i) <= p_max_contacts AS seat
              FROM (SELECT x.i, x.id, x.h AS hash, x.imp, x.k AS k,
                           x.shop, x.co, x.cu, x.em, x.fn, x.ln, x.ph, x.locs, x.roles, x.a, x.at,
                           cust.customer, cust.customer IS NOT NULL AND cust.create_customer AS create_customer,
                           NOT EXISTS (SELECT 1 FROM contacts k WHERE k.shop_id = x.shop AND k.company_id = x.co
                                          AND k.customer_id = cust.customer) AS contact_created,
                           co.contact_count AS seats,
                           CASE WHEN inbox.same THEN inbox.result END AS stored,
                           CASE WHEN NOT inbox.same THEN 'IDEMPOTENCY_KEY_REUSED'
                                WHEN inbox.same THEN NULL
                                WHEN co.company_id IS NULL THEN 'NOT_FOUND'
                                WHEN miss.at IS NOT NULL THEN 'NOT_FOUND'
                                ELSE cust.code END AS code,
                           CASE WHEN NOT inbox.same THEN 'command_id'
                                WHEN inbox.same THEN NULL
                                WHEN co.company_id IS NULL THEN 'payload.company_id'
                                WHEN miss.at IS NOT NULL THEN format('payload.locations[%s].location_id', miss.at - 1)
                                ELSE cust.field END AS field,
                           CASE WHEN NOT inbox.same THEN 'command_id was already used by a command with another type, shop_id or payload'
                                WHEN inbox.same THEN NULL
                                WHEN co.company_id IS NULL THEN 'no company with this id in the shop'
                                WHEN miss.at IS NOT NULL THEN 'no location with this id in the company'
                                ELSE cust.message END AS message
                      FROM (SELECT r.i, r.command_id AS id, r.hash AS h, r.import_id AS imp, r.msg_key AS k,
                                   r.shop, r.company AS co, r.customer_in AS cu, r.email AS em,
                                   r.first_name AS fn, r.last_name AS ln, r.phone AS ph, r.locs, r.roles,
                                   r.actor AS a, r.issued_at AS at
                              FROM unnest(v) r) x
                      LEFT JOIN LATERAL (SELECT m.payload_hash = x.h AS same, m.result
                                           FROM commands m WHERE m.command_id = x.id::uuid) inbox ON true
                      LEFT JOIN companies co ON co.shop_id = x.shop AND co.company_id = x.co
                      LEFT JOIN LATERAL (SELECT min(n) AS at FROM generate_subscripts(x.locs, 1) AS n
                                          WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.shop_id = x.shop
                                                               AND l.company_id = x.co
                                                               AND l.location_id = x.locs[n])) miss ON true
                      LEFT JOIN LATERAL (
                          SELECT CASE WHEN f.by_id IS NOT NULL THEN f.by_id
                                      WHEN x.cu IS NOT NULL AND x.em IS NULL THEN NULL
                                      WHEN f.by_email IS NOT NULL AND x.cu IS NULL THEN f.by_email
                                      WHEN f.by_email IS NOT NULL THEN NULL
                                      WHEN f.id_taken THEN NULL
                                      ELSE coalesce(x.cu, lower(x.em)) END AS customer,
                                 f.by_id IS NULL AND f.by_email IS NULL AS create_customer,
                                 CASE WHEN f.by_id IS NOT NULL THEN NULL
                                      WHEN x.cu IS NOT NULL AND x.em IS NULL THEN 'NOT_FOUND'
                                      WHEN f.by_email IS NOT NULL AND x.cu IS NULL THEN NULL
                                      WHEN f.by_email IS NOT NULL THEN 'CONFLICT'
                                      WHEN f.id_taken THEN 'CONFLICT' END AS code,
                                 CASE WHEN f.by_id IS NOT NULL THEN NULL
                                      WHEN x.cu IS NOT NULL AND x.em IS NULL THEN 'payload.customer.id'
                                      WHEN f.by_email IS NOT NULL AND x.cu IS NULL THEN NULL
                                      ELSE 'payload.customer.email' END AS field,
                                 CASE WHEN f.by_id IS NOT NULL THEN NULL
                                      WHEN x.cu IS NOT NULL AND x.em IS NULL THEN 'no customer with this id in the shop'
                                      WHEN f.by_email IS NOT NULL AND x.cu IS NULL THEN NULL
                                      WHEN f.by_email IS NOT NULL THEN 'the email belongs to another customer of the shop'
                                      ELSE 'a customer whose id is this email exists with another email' END AS message
                            FROM (SELECT b.by_id, e.by_email,
                                         x.cu IS NULL AND EXISTS (SELECT 1 FROM customers u WHERE u.shop_id = x.shop
                                                                     AND u.customer_id = lower(x.em)) AS id_taken
                                    FROM (SELECT (SELECT u.customer_id FROM customers u WHERE x.cu IS NOT NULL
                                                     AND u.shop_id = x.shop AND u.customer_id = x.cu) AS by_id
                                          OFFSET 0) b
                                    LEFT JOIN LATERAL (SELECT u.customer_id AS by_email FROM customers u
                                                        WHERE b.by_id IS NULL AND x.em IS NOT NULL
                                                          AND u.shop_id = x.shop AND lower(u.email) = lower(x.em)) e
                                           ON true) f) cust ON true
                    OFFSET 0) t) s;

    -- what a row-by-row reading could not settle goes back to b2bd, which applies the
    -- run one command at a time: two rows that may be about one customer, by any name a
    -- row reads or writes (its id, its email as this database's lower() folds it, the
    -- customer found or to be created). A row rejected at the customer or the seat
    -- counts too: the rows ahead of it may have created that customer or made it a
    -- contact (0009; rows rejected earlier, by their command_id, company or locations,
    -- read no customer).
    IF EXISTS (SELECT 1
                 FROM (SELECT DISTINCT r.i, r.shop, n.name
                         FROM unnest(v) r,
                              unnest(ARRAY[r.customer_in, lower(r.email), r.customer]) AS n(name)
                        WHERE n.name IS NOT NULL AND r.stored IS NULL
                          AND (r.code IS NULL OR r.code = 'LIMIT_REACHED'
                               OR r.field IN ('payload.customer.id', 'payload.customer.email'))) x
                GROUP BY x.shop, x.name HAVING count(*) > 1)
       OR EXISTS (SELECT 1 FROM unnest(v) r GROUP BY r.command_id::uuid HAVING count(*) > 1) THEN
        RAISE EXCEPTION USING ERRCODE = 'B2B02', MESSAGE = 'the run needs the one-by-one path';
    END IF;

    -- a customer created here is changed (it becomes a contact): it starts at the version
    -- of its first access event, not at 0 for the UPDATE below to write a second row version
    INSERT INTO customers (shop_id, customer_id, email, first_name, last_name, phone, access_version)
    SELECT r.shop, r.customer, r.email, r.first_name, r.last_name, r.phone, 1
      FROM unnest(v) r WHERE r.code IS NULL AND r.stored IS NULL AND r.create_customer ORDER BY r.i;

    INSERT INTO contacts (shop_id, company_id, customer_id)
    SELECT r.shop, r.company, r.customer
      FROM unnest(v) r WHERE r.code IS NULL AND r.stored IS NULL AND r.contact_created ORDER BY r.i;

    UPDATE companies c SET contact_count = c.contact_count + n.added
      FROM (SELECT r.shop, r.company, count(*) AS added FROM unnest(v) r
             WHERE r.code IS NULL AND r.stored IS NULL AND r.contact_created
             GROUP BY r.shop, r.company) n
     WHERE c.shop_id = n.shop AND c.company_id = n.company;

    WITH up AS (
        INSERT INTO roles AS o (shop_id, company_id, location_id, customer_id, role)
        SELECT r.shop, r.company, u.location_id, r.customer, u.role
          FROM unnest(v) r, unnest(r.locs, r.roles) AS u(location_id, role)
         WHERE r.code IS NULL AND r.stored IS NULL
         ORDER BY r.i
        ON CONFLICT (shop_id, customer_id, location_id)
        DO UPDATE SET role = EXCLUDED.role WHERE o.role <> EXCLUDED.role
        RETURNING o.shop_id, o.company_id, o.customer_id)
    SELECT array_agg(DISTINCT r.i) INTO v_roles_changed
      FROM up JOIN unnest(v) r ON r.shop = up.shop_id AND r.company = up.company_id
                              AND r.customer = up.customer_id;

    v := ARRAY(SELECT ROW(r.i, r.command_id, r.hash, r.import_id, r.msg_key, r.shop, r.company,
                          r.customer_in, r.email, r.first_name, r.last_name, r.phone, r.locs, r.roles,
                          r.customer, r.create_customer, r.contact_created, r.code, r.field, r.message,
                          r.stored,
                          r.code IS NULL AND r.stored IS NULL
                          AND (r.contact_created OR r.i = ANY (coalesce(v_roles_changed, '{}'))),
                          r.actor, r.issued_at)::b2bd_bulk_row
                 FROM unnest(v) r ORDER BY r.i);

    -- the access events (b2bd_emit_access, for the whole run) with their access_history
    -- rows (0011's trigger stands aside: b2bd.history), the results and the inbox
    PERFORM set_config('b2bd.history', 'written', true);
    WITH bumped AS MATERIALIZED (
        UPDATE customers u SET access_version = u.access_version + 1, updated_at = now()
          FROM unnest(v) r
         WHERE r.changed AND NOT r.create_customer AND u.shop_id = r.shop AND u.customer_id = r.customer
        RETURNING r.i, r.command_id, r.actor, u.shop_id, u.customer_id, u.email, u.access_version),
    changed AS (
        SELECT b.i, b.command_id, b.actor, b.shop_id, b.customer_id, b.email, b.access_version FROM bumped b
        UNION ALL
        SELECT r.i, r.command_id, r.actor, r.shop, r.customer, r.email, 1::bigint
          FROM unnest(v) r WHERE r.changed AND r.create_customer),
    access AS MATERIALIZED (
        SELECT b.i, b.shop_id, b.customer_id, b.access_version, d.companies, b.command_id, b.actor,
               convert_to(b.shop_id || '/' || b.customer_id, 'UTF8') AS key,
               convert_to(b2bd_access_text(gen_random_uuid(), b.shop_id, b.customer_id, b.email, d.any_role,
                                           d.companies, b.access_version, b.command_id, b.actor, v_now),
                          'UTF8') AS value
          FROM changed b CROSS JOIN LATERAL b2bd_access_of(b.shop_id, b.customer_id) d),
    history AS (
        INSERT INTO access_history AS h (shop_id, customer_id, version, companies, caused_by, actor,
                                         occurred_at)
        SELECT a.shop_id, a.customer_id, a.access_version, a.companies::jsonb, a.command_id::uuid, a.actor,
               v_now::timestamptz
          FROM access a
        ON CONFLICT (shop_id, customer_id, version) DO UPDATE
            SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
                actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at),
    results AS MATERIALIZED (
        SELECT r.i, r.msg_key, r.code IS NULL AND r.stored IS NULL AS applied, r.command_id, r.hash,
               r.shop, r.import_id, r.actor, r.issued_at,
               coalesce(r.stored,
                        '{"event_id":' || to_json(gen_random_uuid())::text
                        || ',"command_id":' || to_json(r.command_id)::text
                        || ',"type":"assign","shop_id":' || to_json(r.shop)::text
                        || ',"import_id":' || coalesce(to_json(r.import_id)::text, 'null')
                        || CASE WHEN r.code IS NULL THEN
                               ',"status":"applied","result":{"customer_id":' || to_json(r.customer)::text
                               || ',"customer_created":' || r.create_customer::text
                               || ',"contact_created":' || r.contact_created::text
                               || ',"roles":['
                               || coalesce((SELECT string_agg('{"location_id":' || to_json(o.location_id)::text
                                                              || ',"role":' || to_json(o.role)::text || '}',
                                                              ',' ORDER BY o.location_id)
                                              FROM roles o WHERE o.shop_id = r.shop AND o.company_id = r.company
                                               AND o.customer_id = r.customer), '')
                               || '],"notification_ids":[]},"error":null'
                           ELSE
                               ',"status":"rejected","result":null,"error":{"code":' || to_json(r.code)::text
                               || ',"message":' || to_json(r.message)::text
                               || ',"field":' || coalesce(to_json(r.field)::text, 'null') || '}'
                           END
                        || ',"processed_at":' || to_json(v_now)::text || '}') AS text
          FROM unnest(v) r),
    inbox AS (
        INSERT INTO commands (command_id, shop_id, type, payload_hash, import_id, result, actor, issued_at)
        SELECT s.command_id::uuid, s.shop, 'assign', s.hash, s.import_id, s.text, s.actor, s.issued_at
          FROM results s WHERE s.applied)
    INSERT INTO outbox (topic, key, value)
    SELECT m.topic, m.key, m.value
      FROM (SELECT a.i, 0 AS ord, 'events.access' AS topic, a.key, a.value FROM access a
            UNION ALL
            SELECT s.i, 1, 'results', s.msg_key, convert_to(s.text, 'UTF8') FROM results s) m
     ORDER BY m.i, m.ord;
    PERFORM set_config('b2bd.history', '', true);

    RETURN QUERY SELECT r.i, CASE WHEN r.stored IS NOT NULL THEN 'duplicate'
                                  WHEN r.code IS NOT NULL THEN 'rejected' ELSE 'applied' END,
                        r.code, r.field
                   FROM unnest(v) r ORDER BY r.i;
END
$$;

-- p_rows: as in 0015, and in each row "a" (the command's actor) and "at" (its issued_at).
CREATE OR REPLACE FUNCTION b2bd_revoke_bulk(p_rows jsonb)
RETURNS TABLE (i integer, status text, code text, field text)
LANGUAGE plpgsql
-- as b2bd_assign_bulk: every statement planned once per connection, rows looked up by key
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v b2bd_revoke_row[];
    v_now text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
    v_leaving integer;
    v_left integer;
    v_too_large boolean;
BEGIN
    v := ARRAY(SELECT ROW(x.i, x.id, decode(x.h, 'hex'), x.imp, decode(x.k, 'hex'), x.shop, x.co,
                          x.cu, x.scope, x.locs, NULL, NULL, NULL, NULL, NULL, NULL, false,
                          x.a, x.at)::b2bd_revoke_row
                 FROM jsonb_to_recordset(p_rows) AS x(i integer, id text, h text, imp text, k text,
                                                      shop text, co text, cu text, scope text,
                                                      locs text[], a text, at text)
                ORDER BY x.i);

    -- the contact rows locked first, in key order: revokes of one contact take turns, as
    -- in the one-by-one path, and what the checks below find stays until the end
    PERFORM 1 FROM contacts k
     WHERE (k.shop_id, k.company_id, k.customer_id) IN (SELECT r.shop, r.company, r.customer FROM unnest(v) r)
     ORDER BY k.shop_id, k.company_id, k.customer_id FOR UPDATE;

    -- every check, read-only, in apply_revoke's order
    SELECT array_agg(ROW(t.i, t.command_id, t.hash, t.import_id, t.msg_key, t.shop, t.company,
                         t.customer, t.scope, t.locs,
                         CASE WHEN NOT t.same THEN 'IDEMPOTENCY_KEY_REUSED'
                              WHEN t.same THEN NULL
                              WHEN NOT t.company_known THEN 'NOT_FOUND'
                              WHEN NOT t.customer_known THEN 'NOT_FOUND'
                              WHEN NOT t.contact THEN 'NOT_A_CONTACT'
                              WHEN t.missing IS NOT NULL THEN 'NOT_FOUND' END,
                         CASE WHEN NOT t.same THEN 'command_id'
                              WHEN t.same THEN NULL
                              WHEN NOT t.company_known THEN 'payload.company_id'
                              WHEN NOT t.customer_known OR NOT t.contact THEN 'payload.customer_id'
                              WHEN t.missing IS NOT NULL THEN format('payload.location_ids[%s]', t.missing - 1) END,
                         CASE WHEN NOT t.same THEN 'command_id was already used by a command with another type, shop_id or payload'
                              WHEN t.same THEN NULL
                              WHEN NOT t.company_known THEN 'no company with this id in the shop'
                              WHEN NOT t.customer_known THEN 'no customer with this id in the shop'
                              WHEN NOT t.contact THEN 'the customer is not a contact of the company'
                              WHEN t.missing IS NOT NULL THEN 'no location with this id in the company' END,
                         CASE WHEN t.same THEN t.stored END,
                         NULL, NULL, false, t.actor, t.issued_at)::b2bd_revoke_row ORDER BY t.i)
      INTO v
      FROM (SELECT r.i, r.command_id, r.hash, r.import_id, r.msg_key, r.shop, r.company, r.customer,
                   r.scope, r.locs, r.actor, r.issued_at, inbox.same, inbox.result AS stored,
                   EXISTS (SELECT 1 FROM companies c WHERE c.shop_id = r.shop AND c.company_id = r.company)
                       AS company_known,
                   EXISTS (SELECT 1 FROM customers u WHERE u.shop_id = r.shop AND u.customer_id = r.customer)
                       AS customer_known,
                   EXISTS (SELECT 1 FROM contacts k WHERE k.shop_id = r.shop AND k.company_id = r.company
                              AND k.customer_id = r.customer) AS contact,
                   (SELECT min(n) FROM generate_subscripts(r.locs, 1) AS n
                     WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.shop_id = r.shop
                                          AND l.company_id = r.company AND l.location_id = r.locs[n]))
                       AS missing
              FROM unnest(v) r
              LEFT JOIN LATERAL (SELECT m.payload_hash = r.hash AS same, m.result
                                   FROM commands m WHERE m.command_id = r.command_id::uuid) inbox ON true
            OFFSET 0) t;

    -- two rows about one customer, or one command twice: the one-by-one path
    IF EXISTS (SELECT 1 FROM unnest(v) r WHERE r.code IS NULL AND r.stored IS NULL
                GROUP BY r.shop, r.customer HAVING count(*) > 1)
       OR EXISTS (SELECT 1 FROM unnest(v) r GROUP BY r.command_id::uuid HAVING count(*) > 1) THEN
        RAISE EXCEPTION USING ERRCODE = 'B2B02', MESSAGE = 'the run needs the one-by-one path';
    END IF;

    -- the roles (every scope), each row's removed_roles and not_held
    WITH gone AS (
        DELETE FROM roles o USING unnest(v) r
         WHERE r.code IS NULL AND r.stored IS NULL
           AND o.shop_id = r.shop AND o.customer_id = r.customer AND o.company_id = r.company
           AND (r.scope <> 'locations' OR o.location_id = ANY (r.locs))
        RETURNING r.i, o.location_id, o.role),
    per_row AS (
        SELECT g.i,
               '[' || string_agg('{"location_id":' || to_json(g.location_id)::text
                                 || ',"role":' || to_json(g.role)::text || '}',
                                 ',' ORDER BY g.location_id COLLATE "C") || ']' AS removed,
               array_agg(g.location_id) AS locs
          FROM gone g GROUP BY g.i)
    SELECT array_agg(ROW(r.i, r.command_id, r.hash, r.import_id, r.msg_key, r.shop, r.company,
                         r.customer, r.scope, r.locs, r.code, r.field, r.message, r.stored,
                         coalesce(p.removed, '[]'),
                         '[' || coalesce((SELECT string_agg(to_json(l.id)::text, ',' ORDER BY l.n)
                                            FROM unnest(r.locs) WITH ORDINALITY AS l(id, n)
                                           WHERE NOT (l.id = ANY (coalesce(p.locs, '{}')))), '') || ']',
                         r.code IS NULL AND r.stored IS NULL
                         AND (r.scope = 'company' OR p.i IS NOT NULL),
                         r.actor, r.issued_at)::b2bd_revoke_row ORDER BY r.i)
      INTO v
      FROM unnest(v) r LEFT JOIN per_row p ON p.i = r.i;

    -- scope company: the contacts, and a seat freed for each contact row deleted
    SELECT count(*) INTO v_leaving FROM unnest(v) r
     WHERE r.code IS NULL AND r.stored IS NULL AND r.scope = 'company';
    WITH gone AS (
        DELETE FROM contacts k USING unnest(v) r
         WHERE r.code IS NULL AND r.stored IS NULL AND r.scope = 'company'
           AND k.shop_id = r.shop AND k.company_id = r.company AND k.customer_id = r.customer
        RETURNING k.shop_id, k.company_id),
    freed AS (
        UPDATE companies c SET contact_count = c.contact_count - n.n
          FROM (SELECT g.shop_id, g.company_id, count(*) AS n FROM gone g GROUP BY g.shop_id, g.company_id) n
         WHERE c.shop_id = n.shop_id AND c.company_id = n.company_id
        RETURNING n.n)
    SELECT coalesce(sum(f.n), 0) INTO v_left FROM freed f;
    IF v_left <> v_leaving THEN
        -- a contact the checks saw is gone: the one-by-one path says NOT_A_CONTACT
        RAISE EXCEPTION USING ERRCODE = 'B2B02', MESSAGE = 'the run needs the one-by-one path';
    END IF;

    -- the access events (b2bd_emit_access, for the whole run) with their access_history
    -- rows (0011's trigger stands aside: b2bd.history), the results and the inbox
    PERFORM set_config('b2bd.history', 'written', true);
    WITH bumped AS MATERIALIZED (
        UPDATE customers u SET access_version = u.access_version + 1, updated_at = now()
          FROM unnest(v) r
         WHERE r.changed AND u.shop_id = r.shop AND u.customer_id = r.customer
        RETURNING r.i, r.command_id, r.actor, u.shop_id, u.customer_id, u.email, u.access_version),
    access AS MATERIALIZED (
        SELECT b.i, b.shop_id, b.customer_id, b.access_version, d.companies, b.command_id, b.actor,
               convert_to(b.shop_id || '/' || b.customer_id, 'UTF8') AS key,
               convert_to(b2bd_access_text(gen_random_uuid(), b.shop_id, b.customer_id, b.email, d.any_role,
                                           d.companies, b.access_version, b.command_id, b.actor, v_now),
                          'UTF8') AS value
          FROM bumped b CROSS JOIN LATERAL b2bd_access_of(b.shop_id, b.customer_id) d),
    history AS (
        INSERT INTO access_history AS h (shop_id, customer_id, version, companies, caused_by, actor,
                                         occurred_at)
        SELECT a.shop_id, a.customer_id, a.access_version, a.companies::jsonb, a.command_id::uuid, a.actor,
               v_now::timestamptz
          FROM access a
        ON CONFLICT (shop_id, customer_id, version) DO UPDATE
            SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
                actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at),
    results AS MATERIALIZED (
        SELECT r.i, r.msg_key, r.code IS NULL AND r.stored IS NULL AS applied, r.command_id, r.hash,
               r.shop, r.import_id, r.actor, r.issued_at,
               coalesce(r.stored,
                        '{"event_id":' || to_json(gen_random_uuid())::text
                        || ',"command_id":' || to_json(r.command_id)::text
                        || ',"type":"revoke","shop_id":' || to_json(r.shop)::text
                        || ',"import_id":' || coalesce(to_json(r.import_id)::text, 'null')
                        || CASE WHEN r.code IS NULL THEN
                               ',"status":"applied","result":{"customer_id":' || to_json(r.customer)::text
                               || ',"removed_roles":' || r.removed
                               || ',"not_held":' || r.not_held
                               || ',"contact_removed":' || (r.scope = 'company')::text
                               || ',"reverted_order_ids":[]},"error":null'
                           ELSE
                               ',"status":"rejected","result":null,"error":{"code":' || to_json(r.code)::text
                               || ',"message":' || to_json(r.message)::text
                               || ',"field":' || coalesce(to_json(r.field)::text, 'null') || '}'
                           END
                        || ',"processed_at":' || to_json(v_now)::text || '}') AS text
          FROM unnest(v) r),
    inbox AS (
        INSERT INTO commands (command_id, shop_id, type, payload_hash, import_id, result, actor, issued_at)
        SELECT s.command_id::uuid, s.shop, 'revoke', s.hash, s.import_id, s.text, s.actor, s.issued_at
          FROM results s WHERE s.applied),
    sent AS (
        INSERT INTO outbox (topic, key, value)
        SELECT m.topic, m.key, m.value
          FROM (SELECT a.i, 0 AS ord, 'events.access' AS topic, a.key, a.value FROM access a
                UNION ALL
                SELECT s.i, 1, 'results', s.msg_key, convert_to(s.text, 'UTF8') FROM results s) m
         ORDER BY m.i, m.ord)
    -- an applied result over the message limit (src/apply_limit.c, as 0013 reads it)
    SELECT coalesce(bool_or(s.applied AND coalesce(octet_length(s.msg_key), 0) + octet_length(s.text) + 256
                            > coalesce(nullif(current_setting('b2bd.max_message_bytes', true), '')::bigint,
                                       1048576)), false)
      INTO v_too_large FROM results s;
    PERFORM set_config('b2bd.history', '', true);
    IF v_too_large THEN
        -- the one-by-one path rejects that command with LIMIT_REACHED
        RAISE EXCEPTION USING ERRCODE = 'B2B02', MESSAGE = 'the run needs the one-by-one path';
    END IF;

    RETURN QUERY SELECT r.i, CASE WHEN r.stored IS NOT NULL THEN 'duplicate'
                                  WHEN r.code IS NOT NULL THEN 'rejected' ELSE 'applied' END,
                        r.code, r.field
                   FROM unnest(v) r ORDER BY r.i;
END
$$;

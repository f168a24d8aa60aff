-- 0018: one definition of the result message (issue 13). It was built in C for one
-- command (apply.c, jansson) and by string concatenation in b2bd_assign_bulk (0017) and
-- b2bd_revoke_bulk (0016); the assign result object was also a json_build_object in
-- b2bd_assign. Now:
--   - b2bd_result_text builds every result message (CONTRACT.md, "results"): b2bd's
--     one-by-one path (src/apply.c) writes its inbox row and result with it, and so do
--     both bulk functions;
--   - b2bd_result_fits is the message limit for a result (as 0013's for an access event);
--     b2bd_result_checked raises B2B14 over it, and src/apply_limit.c rejects the command
--     with LIMIT_REACHED;
--   - b2bd_assign_result is the result object of an assign, for b2bd_assign (one command,
--     to which src/apply_assign.c adds what only that path does: migration,
--     notifications) and for b2bd_assign_bulk.
-- b2bd_assign_bulk and b2bd_revoke_bulk are 0017's and 0016's with their results built
-- by these functions; b2bd_assign_bulk now also hands a run with a result over the limit
-- back to the one-by-one path (B2B02), as b2bd_revoke_bulk did.

-- The time a message is written, as b2bd writes it (RFC 3339, UTC, milliseconds).
CREATE FUNCTION b2bd_now_text() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A result message: `applied` with p_result (the result object as JSON text) when p_code
-- is NULL, else `rejected` with the error {code, message, field}. Any argument may be
-- NULL (a command that could not be decoded lacks its type or shop). A single
-- expression: the planner inlines it into the statements that call it.
CREATE FUNCTION b2bd_result_text(p_event_id uuid, p_command_id text, p_type text, p_shop text,
                                 p_import_id text, p_result text, p_code text, p_message text,
                                 p_field text, p_now text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"event_id":' || coalesce(to_json(p_event_id)::text, 'null')
           || ',"command_id":' || coalesce(to_json(p_command_id)::text, 'null')
           || ',"type":' || coalesce(to_json(p_type)::text, 'null')
           || ',"shop_id":' || coalesce(to_json(p_shop)::text, 'null')
           || ',"import_id":' || coalesce(to_json(p_import_id)::text, 'null')
           || CASE WHEN p_code IS NULL THEN
                  ',"status":"applied","result":' || coalesce(p_result, 'null') || ',"error":null'
              ELSE
                  ',"status":"rejected","result":null,"error":{"code":' || to_json(p_code)::text
                  || ',"message":' || coalesce(to_json(p_message)::text, 'null')
                  || ',"field":' || coalesce(to_json(p_field)::text, 'null') || '}'
              END
           || ',"processed_at":' || coalesce(to_json(p_now)::text, 'null') || '}'
$$;

-- Whether a result with this key fits the message limit: as 0013 for access events, key
-- and value with 256 bytes for Kafka's framing, under b2bd.max_message_bytes.
CREATE FUNCTION b2bd_result_fits(p_key bytea, p_text text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(octet_length(p_key), 0) + octet_length(p_text) + 256
           <= coalesce(nullif(current_setting('b2bd.max_message_bytes', true), '')::bigint, 1048576)
$$;

-- p_text, or SQLSTATE B2B14 when it does not fit (src/apply_limit.c).
CREATE FUNCTION b2bd_result_checked(p_key bytea, p_text text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT b2bd_result_fits(p_key, p_text) THEN
        RAISE EXCEPTION USING ERRCODE = 'B2B14',
            MESSAGE = format('the result would be %s bytes, over the message limit', octet_length(p_text));
    END IF;
    RETURN p_text;
END
$$;

-- A customer's roles in a company, as the assign result lists them: [{location_id, role}]
-- by location_id. A set-returning SQL function (one row), so that the planner inlines it
-- as a subquery, in b2bd_assign (planned once per connection) and in a run's statement.
CREATE FUNCTION b2bd_roles_of(p_shop text, p_company text, p_customer text)
RETURNS TABLE (roles text) LANGUAGE sql STABLE AS $$
    SELECT '[' || coalesce(string_agg('{"location_id":' || to_json(o.location_id)::text
                                      || ',"role":' || to_json(o.role)::text || '}',
                                      ',' ORDER BY o.location_id), '') || ']'
      FROM roles o WHERE o.shop_id = p_shop AND o.company_id = p_company AND o.customer_id = p_customer
$$;

-- The result object of an assign (CONTRACT.md): p_roles from b2bd_roles_of. Its
-- notification_ids are empty; the one-by-one path fills them when the command asks.
CREATE FUNCTION b2bd_assign_result(p_customer text, p_created boolean, p_contact_created boolean,
                                   p_roles text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"customer_id":' || to_json(p_customer)::text
           || ',"customer_created":' || p_created::text
           || ',"contact_created":' || p_contact_created::text
           || ',"roles":' || p_roles
           || ',"notification_ids":[]}'
$$;

-- Assigns a customer (by id, or by email, found case-insensitively or created) to a
-- company, with p_roles[i] at p_locations[i]: b2bd_assign_core on one row. Returns
-- {result (b2bd_assign_result), changed}; a rejection raises B2B01 (b2bd_reject), as in
-- 0008.
CREATE OR REPLACE FUNCTION b2bd_assign(p_shop text, p_company text, p_customer_id text, p_email text,
                            p_first_name text, p_last_name text, p_phone text,
                            p_locations text[], p_roles text[], p_max_contacts integer)
RETURNS json LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    r b2bd_bulk_row;
BEGIN
    r := (b2bd_assign_core(ARRAY[ROW(0, NULL, NULL, NULL, NULL, p_shop, p_company, p_customer_id, p_email,
                                     p_first_name, p_last_name, p_phone, coalesce(p_locations, '{}'),
                                     coalesce(p_roles, '{}'), NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                                     NULL, NULL, NULL)::b2bd_bulk_row],
                           p_max_contacts, true))[1];
    IF r.code IS NOT NULL THEN
        PERFORM b2bd_reject(r.code, r.field, r.message);
    END IF;
    RETURN (SELECT json_build_object('result', b2bd_assign_result(r.customer, r.create_customer,
                                                                  r.contact_created, o.roles)::json,
                                     'changed', r.changed)
              FROM b2bd_roles_of(p_shop, p_company, r.customer) o);
END
$$;


-- p_rows: as in 0016.
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
    v_now text := b2bd_now_text();
    v_too_large boolean;
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

    v := b2bd_assign_core(v, p_max_contacts, false);

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
                        b2bd_result_text(gen_random_uuid(), r.command_id, 'assign', r.shop, r.import_id,
                                         b2bd_assign_result(r.customer, r.create_customer, r.contact_created,
                                                            o.roles),
                                         r.code, r.message, r.field, v_now)) AS text
          FROM unnest(v) r CROSS JOIN LATERAL b2bd_roles_of(r.shop, r.company, r.customer) o),
    inbox AS (
        INSERT INTO commands (command_id, shop_id, type, payload_hash, import_id, result, actor, issued_at)
        SELECT s.command_id::uuid, s.shop, 'assign', s.hash, s.import_id, s.text, s.actor, s.issued_at
          FROM results s WHERE s.applied),
    sent AS (
        INSERT INTO outbox (topic, key, value)
        SELECT m.topic, m.key, m.value
          FROM (SELECT a.i, 0 AS ord, 'events.access' AS topic, a.key, a.value FROM access a
                UNION ALL
                SELECT s.i, 1, 'results', s.msg_key, convert_to(s.text, 'UTF8') FROM results s) m
         ORDER BY m.i, m.ord)
    -- an applied result over the message limit
    SELECT coalesce(bool_or(s.applied AND NOT b2bd_result_fits(s.msg_key, s.text)), false)
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
    v_now text := b2bd_now_text();
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
                        b2bd_result_text(gen_random_uuid(), r.command_id, 'revoke', r.shop, r.import_id,
                                         '{"customer_id":' || to_json(r.customer)::text
                                         || ',"removed_roles":' || r.removed
                                         || ',"not_held":' || r.not_held
                                         || ',"contact_removed":' || (r.scope = 'company')::text
                                         || ',"reverted_order_ids":[]}',
                                         r.code, r.message, r.field, v_now)) AS text
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
    SELECT coalesce(bool_or(s.applied AND NOT b2bd_result_fits(s.msg_key, s.text)), false)
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

-- revoke: a run of revokes applied with set-based statements (src/apply_bulk_revoke.c),
-- each exactly as src/apply_revoke.c applies it on its own (the same checks in the same
-- order, the same result, the same access events, a seat freed only for a contact row
-- it deleted), a rejected one changing nothing. Anything it cannot settle row by row
-- (two rows about one customer, a contact that vanished under it, a result or access
-- event over the message limit) raises: b2bd rolls the run back to its savepoint and
-- applies the same commands one by one.

-- p_rows: [{"i", "id", "h" (hash, hex), "imp", "k" (key, hex), "shop", "co", "cu",
-- "scope", "locs": [...] (scope locations only), "a" (actor), "at" (issued_at)}]. Deletes
-- roles and contacts, frees the seats, writes the inbox, the results and the access
-- events, and returns each row's outcome ('applied', 'duplicate' or 'rejected', with
-- code and field) in run order.
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
    -- rows (b2bd_access_history's trigger stands aside: b2bd.history), the results and the inbox
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
    -- an applied result over the message limit (src/apply_limit.c, b2bd_result_fits)
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

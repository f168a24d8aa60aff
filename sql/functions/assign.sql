-- assign: the rules of the assign command, once (b2bd_assign_core), for one command
-- (b2bd_assign, src/apply_assign.c) and for a run of plain assigns (b2bd_assign_bulk,
-- src/apply_bulk.c), and the result object of an assign (b2bd_assign_result).
-- tests/db/test_apply_diff.c compares the two paths on random command sequences.

-- A customer's roles in a company, as the assign result lists them: [{location_id, role}]
-- by location_id. A set-returning SQL function (one row), so that the planner inlines it
-- as a subquery, in b2bd_assign (planned once per connection) and in a run's statement.
CREATE OR REPLACE FUNCTION b2bd_roles_of(p_shop text, p_company text, p_customer text)
RETURNS TABLE (roles text) LANGUAGE sql STABLE AS $$
    SELECT '[' || coalesce(string_agg('{"location_id":' || to_json(o.location_id)::text
                                      || ',"role":' || to_json(o.role)::text || '}',
                                      ',' ORDER BY o.location_id), '') || ']'
      FROM roles o WHERE o.shop_id = p_shop AND o.company_id = p_company AND o.customer_id = p_customer
$$;

-- The result object of an assign (CONTRACT.md): p_roles from b2bd_roles_of, p_suspended
-- from b2bd_suspension_of ("suspended": true only while the contact is suspended in the
-- company, CONTRACT.md "Suspension"). Its notification_ids are empty; the one-by-one path
-- fills them when the command asks.
CREATE OR REPLACE FUNCTION b2bd_assign_result(p_customer text, p_created boolean, p_contact_created boolean,
                                   p_roles text, p_suspended boolean)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"customer_id":' || to_json(p_customer)::text
           || ',"customer_created":' || p_created::text
           || ',"contact_created":' || p_contact_created::text
           || ',"roles":' || p_roles
           || CASE WHEN p_suspended THEN ',"suspended":true' ELSE '' END
           || ',"notification_ids":[]}'
$$;

-- The rules of assign, once: the checks in the order assign has always made them, then the
-- writes of the rows that pass (customers, contacts, seat counts, roles), for a run of
-- rows (b2bd_assign_bulk) or for one (p_one: b2bd_assign). Returns the rows with their
-- outcome (customer, create_customer, contact_created, code/field/message, stored,
-- changed). A run that a row-by-row reading cannot settle raises B2B02; for one
-- row there is nothing to hand back.
CREATE OR REPLACE FUNCTION b2bd_assign_core(p_rows b2bd_bulk_row[], p_max_contacts integer, p_one boolean)
RETURNS b2bd_bulk_row[]
LANGUAGE plpgsql
-- as b2bd_assign_bulk: rows looked up by key. Its statements are planned once per
-- connection (b2bd_assign forces it: planning each call was 1.2 ms of the 1.5 a
-- b2bd_assign took), that plan sized for a few rows and made while the tables may be
-- small: each lookup below is written so that only the index meant for it can serve it
-- (a plan that read all the shop's customers or all the company's contacts for each row
-- made one command cost twice as much, and a run of 500 ten times as much).
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v b2bd_bulk_row[] := p_rows;
    v_roles_changed integer[];
    v_made bigint;
    v_dry boolean := b2bd_dry_run();
BEGIN
    -- the seat counts first: the company rows' locks serialise racing assigns. One row
    -- takes its company's lock with an UPDATE that changes nothing, not FOR UPDATE: b2bd
    -- runs each command of a batch in a savepoint, and a row locked FOR UPDATE and then
    -- updated in a subtransaction hands its lock on to the new row version as a
    -- MultiXact, which every later command of the batch resolves again on each version
    -- it walks (GetMultiXactIdMembers took 13% of the backend's CPU over apply_bench
    -- 1000 500 new with B2BD_BULK_ASSIGN=off, +20% in all). A run locks its companies
    -- in order (two runs may share several).
    IF p_one THEN
        UPDATE companies c SET contact_count = c.contact_count
         WHERE c.shop_id = p_rows[1].shop AND c.company_id = p_rows[1].company;
    ELSE
        PERFORM 1 FROM companies c
         WHERE (c.shop_id, c.company_id) IN (SELECT r.shop, r.company FROM unnest(v) r)
         ORDER BY c.shop_id, c.company_id FOR UPDATE;
    END IF;

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
                   -- a dry run's row takes its seat alone: each dry run is judged without the others
                   OR t.seats + CASE WHEN v_dry THEN 1
                                     ELSE sum(CASE WHEN t.code IS NULL AND t.stored IS NULL AND t.contact_created
                                                   THEN 1 ELSE 0 END)
                                              OVER (PARTITION BY t.shop, t.co ORDER BY t.i) END
                      <= p_max_contacts AS seat
              FROM (SELECT x.i, x.id, x.h AS hash, x.imp, x.k AS k,
                           x.shop, x.co, x.cu, x.em, x.fn, x.ln, x.ph, x.locs, x.roles, x.a, x.at,
                           cust.customer, cust.customer IS NOT NULL AND cust.create_customer AS create_customer,
                           -- OFFSET 0: looked up by key, never hashed (a hashed subplan reads
                           -- all the company's contacts, for one row as for 500)
                           NOT EXISTS (SELECT 1 FROM contacts k WHERE k.shop_id = x.shop AND k.company_id = x.co
                                          AND k.customer_id = cust.customer OFFSET 0) AS contact_created,
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
                                    -- shop_id || '': by customers_email, not by customers_pkey on
                                    -- shop_id alone, which a plan made while customers is small
                                    -- picks, reading all the shop's customers for each row
                                    LEFT JOIN LATERAL (SELECT u.customer_id AS by_email FROM customers u
                                                        WHERE b.by_id IS NULL AND x.em IS NOT NULL
                                                          AND u.shop_id || '' = x.shop AND lower(u.email) = lower(x.em)) e
                                           ON true) f) cust ON true
                    OFFSET 0) t) s;

    -- what a row-by-row reading could not settle goes back to b2bd, which applies the
    -- run one command at a time: two rows that may be about one customer, by any name a
    -- row reads or writes (its id, its email as this database's lower() folds it, the
    -- customer found or to be created). A row rejected at the customer or the seat
    -- counts too: the rows ahead of it may have created that customer or made it a
    -- contact (rows rejected earlier, by their command_id, company or locations,
    -- read no customer).
    IF NOT p_one AND (EXISTS (SELECT 1
                 FROM (SELECT DISTINCT r.i, r.shop, n.name
                         FROM unnest(v) r,
                              unnest(ARRAY[r.customer_in, lower(r.email), r.customer]) AS n(name)
                        WHERE n.name IS NOT NULL AND r.stored IS NULL
                          AND (r.code IS NULL OR r.code = 'LIMIT_REACHED'
                               OR r.field IN ('payload.customer.id', 'payload.customer.email'))) x
                GROUP BY x.shop, x.name HAVING count(*) > 1)
       OR EXISTS (SELECT 1 FROM unnest(v) r GROUP BY r.command_id::uuid HAVING count(*) > 1)) THEN
        RAISE EXCEPTION USING ERRCODE = 'B2B02', MESSAGE = 'the run needs the one-by-one path';
    END IF;

    IF p_one THEN
        -- one command: a writer that committed since the checks created the customer is
        -- a CONFLICT (ON CONFLICT DO NOTHING); the customer starts at
        -- version 0, for b2bd_emit_access to bump
        INSERT INTO customers (shop_id, customer_id, email, first_name, last_name, phone)
        SELECT r.shop, r.customer, r.email, r.first_name, r.last_name, r.phone
          FROM unnest(v) r WHERE r.code IS NULL AND r.stored IS NULL AND r.create_customer
        ON CONFLICT (shop_id, customer_id) DO NOTHING;
        GET DIAGNOSTICS v_made = ROW_COUNT;
        IF v_made < (SELECT count(*) FROM unnest(v) r WHERE r.code IS NULL AND r.stored IS NULL AND r.create_customer) THEN
            PERFORM b2bd_reject('CONFLICT', 'payload.customer.email',
                                'a customer whose id is this email exists with another email');
        END IF;
    ELSE
        -- a run: such a writer makes the INSERT fail and b2bd applies the run one command
        -- at a time (no speculative insertion: ON CONFLICT cost runs more).
        -- The customer is changed (it becomes a contact): it starts at the version of its
        -- first access event, which b2bd_assign_bulk writes
        INSERT INTO customers (shop_id, customer_id, email, first_name, last_name, phone, access_version)
        SELECT r.shop, r.customer, r.email, r.first_name, r.last_name, r.phone, 1
          FROM unnest(v) r WHERE r.code IS NULL AND r.stored IS NULL AND r.create_customer ORDER BY r.i;
    END IF;

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

    RETURN v;
END
$$;

-- Assigns a customer (by id, or by email, found case-insensitively or created) to a
-- company, with p_roles[i] at p_locations[i]: b2bd_assign_core on one row. Returns
-- {result (b2bd_assign_result), changed}; a rejection raises B2B01 (b2bd_reject).
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
                                                                  r.contact_created, o.roles,
                                                                  su.suspended)::json,
                                     'changed', r.changed)
              FROM b2bd_roles_of(p_shop, p_company, r.customer) o,
                   b2bd_suspension_of(p_shop, p_company, r.customer) su);
END
$$;

-- The writes of a run that b2bd_assign_core settled (p_rows, in run order): the access
-- events (b2bd_emit_access's, for the whole run) with their access_history rows, the
-- results and the inbox. Raises B2B02 when an applied result is over the message limit.
-- For a dry run (p_dry, which b2bd_assign_bulk undoes) no inbox or history row; returns
-- its results' texts in run order (else NULL); its outbox rows are dropped (b2bd_dry_run).
CREATE OR REPLACE FUNCTION b2bd_assign_run_write(p_rows b2bd_bulk_row[], p_now text, p_dry boolean)
RETURNS text[]
LANGUAGE plpgsql
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_too_large boolean;
    v_texts text[];
BEGIN
    -- the access events (b2bd_emit_access, for the whole run) with their access_history
    -- rows (b2bd_access_history's trigger stands aside: b2bd.history), the results and the inbox
    PERFORM set_config('b2bd.history', 'written', true);
    WITH bumped AS MATERIALIZED (
        UPDATE customers u SET access_version = u.access_version + 1, updated_at = now()
          FROM unnest(p_rows) r
         WHERE r.changed AND NOT r.create_customer AND u.shop_id = r.shop AND u.customer_id = r.customer
        RETURNING r.i, r.command_id, r.actor, u.shop_id, u.customer_id, u.email, u.access_version),
    changed AS (
        SELECT b.i, b.command_id, b.actor, b.shop_id, b.customer_id, b.email, b.access_version FROM bumped b
        UNION ALL
        SELECT r.i, r.command_id, r.actor, r.shop, r.customer, r.email, 1::bigint
          FROM unnest(p_rows) r WHERE r.changed AND r.create_customer),
    access AS MATERIALIZED (
        SELECT b.i, b.shop_id, b.customer_id, b.access_version, d.companies, b.command_id, b.actor,
               convert_to(b.shop_id || '/' || b.customer_id, 'UTF8') AS key,
               convert_to(b2bd_access_text(gen_random_uuid(), b.shop_id, b.customer_id, b.email, d.any_role,
                                           d.companies, b.access_version, b.command_id, b.actor, p_now),
                          'UTF8') AS value
          FROM changed b CROSS JOIN LATERAL b2bd_access_of(b.shop_id, b.customer_id) d),
    history AS (
        INSERT INTO access_history AS h (shop_id, customer_id, version, companies, caused_by, actor,
                                         occurred_at)
        SELECT a.shop_id, a.customer_id, a.access_version, a.companies::jsonb, a.command_id::uuid, a.actor,
               p_now::timestamptz
          FROM access a WHERE NOT p_dry
        ON CONFLICT (shop_id, customer_id, version) DO UPDATE
            SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
                actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at),
    results AS MATERIALIZED (
        SELECT r.i, r.msg_key, r.code IS NULL AND r.stored IS NULL AS applied, r.command_id, r.hash,
               r.shop, r.import_id, r.actor, r.issued_at,
               coalesce(r.stored,
                        b2bd_result_text(gen_random_uuid(), r.command_id, 'assign', r.shop, r.import_id,
                                         b2bd_assign_result(r.customer, r.create_customer, r.contact_created,
                                                            o.roles, su.suspended),
                                         r.code, r.message, r.field, p_now)) AS text
          FROM unnest(p_rows) r CROSS JOIN LATERAL b2bd_roles_of(r.shop, r.company, r.customer) o
               CROSS JOIN LATERAL b2bd_suspension_of(r.shop, r.company, r.customer) su),
    inbox AS (
        INSERT INTO commands (command_id, shop_id, type, payload_hash, import_id, result, actor, issued_at)
        SELECT s.command_id::uuid, s.shop, 'assign', s.hash, s.import_id, s.text, s.actor, s.issued_at
          FROM results s WHERE s.applied AND NOT p_dry),
    sent AS (
        INSERT INTO outbox (topic, key, value)
        SELECT m.topic, m.key, m.value
          FROM (SELECT a.i, 0 AS ord, 'events.access' AS topic, a.key, a.value FROM access a
                UNION ALL
                SELECT s.i, 1, 'results', s.msg_key, convert_to(s.text, 'UTF8') FROM results s) m
         ORDER BY m.i, m.ord)
    -- an applied result over the message limit; a dry run's results
    SELECT coalesce(bool_or(s.applied AND NOT b2bd_result_fits(s.msg_key, s.text)), false),
           array_agg(s.text ORDER BY s.i) FILTER (WHERE p_dry)
      INTO v_too_large, v_texts FROM results s;
    PERFORM set_config('b2bd.history', '', true);
    IF v_too_large THEN
        -- the one-by-one path rejects that command with LIMIT_REACHED
        RAISE EXCEPTION USING ERRCODE = 'B2B02', MESSAGE = 'the run needs the one-by-one path';
    END IF;
    RETURN v_texts;
END
$$;

-- A run of plain assigns. p_rows: [{"i", "id", "h" (hash, hex), "imp", "k" (key, hex),
-- "shop", "co", "cu", "em", "fn", "ln", "ph", "locs": [...], "roles": [...], "a" (actor),
-- "at" (issued_at)}]. Writes customers, contacts, the seat counts, roles, the inbox, the
-- results and the access events, and returns each row's outcome ('applied', 'duplicate'
-- or 'rejected', with code and field) in run order; raises B2B02 when a row-by-row
-- reading cannot settle the run (b2bd applies it one by one). A run of dry runs (b2bd
-- sets b2bd.dry_run) is judged so, each row without the others, then undone: only its
-- results stay, marked "dry_run".
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
    v_texts text[];
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

    -- a dry run (b2bd_dry_run): settled and written alike, then undone (the block's
    -- rollback; what the block assigned stays), and only its results written
    IF NOT b2bd_dry_run() THEN
        v := b2bd_assign_core(v, p_max_contacts, false);
        PERFORM b2bd_assign_run_write(v, v_now, false);
    ELSE
        BEGIN
            v := b2bd_assign_core(v, p_max_contacts, false);
            v_texts := b2bd_assign_run_write(v, v_now, true);
            RAISE EXCEPTION USING ERRCODE = 'B2B03', MESSAGE = 'a dry run, undone';
        EXCEPTION WHEN SQLSTATE 'B2B03' THEN
            NULL;
        END;
        INSERT INTO outbox (id, topic, key, value)
        SELECT nextval('outbox_id_seq'), 'results', r.msg_key, convert_to(t.text, 'UTF8')
          FROM unnest(v) WITH ORDINALITY AS r
          JOIN unnest(v_texts) WITH ORDINALITY AS t(text, n) ON t.n = r.ordinality
         ORDER BY t.n;
    END IF;

    RETURN QUERY SELECT r.i, CASE WHEN r.stored IS NOT NULL THEN 'duplicate'
                                  WHEN r.code IS NOT NULL THEN 'rejected' ELSE 'applied' END,
                        r.code, r.field
                   FROM unnest(v) r ORDER BY r.i;
END
$$;

-- 0011: audit, shop events, stale upserts and privacy (CONTRACT.md, "Privacy, profiles
-- and audit").
--
-- Audit. b2bd notes the `actor` and `issued_at` of the commands it applies in the
-- transaction-local setting b2bd.audit, a JSON object keyed by command_id
-- ({"<command_id>": {"a": actor, "i": issued_at}}), before their writes. From it:
--   - a trigger fills commands.actor and commands.issued_at (every path that writes
--     the inbox, b2bd_assign_bulk included);
--   - b2bd_access_event (redefined below, same signature) writes "actor" into every
--     access event, after "caused_by".
-- A trigger on the outbox keeps every access event in access_history (the customer's
-- versions with their companies, cause, actor and time), whichever path wrote it.
-- Functions redefined here: b2bd_access_event (from 0007). b2bd_emit_access,
-- b2bd_assign and b2bd_assign_bulk are untouched: they call b2bd_access_event.

ALTER TABLE commands ADD COLUMN actor text, ADD COLUMN issued_at text;
-- the commands of a customer, for exports, are found through their results' keys
CREATE INDEX commands_shop ON commands (shop_id, processed_at);

CREATE TABLE access_history (
    shop_id      text NOT NULL,
    customer_id  text NOT NULL,
    version      bigint NOT NULL,
    companies    jsonb NOT NULL,
    caused_by    uuid NOT NULL,
    actor        text,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (shop_id, customer_id, version)
);

-- The actor noted for a command (NULL when none).
CREATE FUNCTION b2bd_audit_actor(p_command_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('b2bd.audit', true), '')::jsonb -> lower(p_command_id) ->> 'a'
$$;

CREATE FUNCTION b2bd_commands_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := nullif(current_setting('b2bd.audit', true), '')::jsonb -> NEW.command_id::text;
BEGIN
    IF v IS NOT NULL THEN
        NEW.actor := coalesce(NEW.actor, v ->> 'a');
        NEW.issued_at := coalesce(NEW.issued_at, v ->> 'i');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER commands_audit BEFORE INSERT ON commands
    FOR EACH ROW EXECUTE FUNCTION b2bd_commands_audit();

CREATE FUNCTION b2bd_access_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := convert_from(NEW.value, 'UTF8')::jsonb;
BEGIN
    INSERT INTO access_history (shop_id, customer_id, version, companies, caused_by, actor,
                                occurred_at)
    VALUES (v ->> 'shop_id', v ->> 'customer_id', (v ->> 'version')::bigint, v -> 'companies',
            (v ->> 'caused_by')::uuid, v ->> 'actor', (v ->> 'occurred_at')::timestamptz)
    ON CONFLICT (shop_id, customer_id, version) DO UPDATE
        SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
            actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at;
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_access_history AFTER INSERT ON outbox
    FOR EACH ROW WHEN (NEW.topic = 'events.access' AND NEW.value IS NOT NULL)
    EXECUTE FUNCTION b2bd_access_history();

-- The access event of 0007 with "actor" after "caused_by".
CREATE OR REPLACE FUNCTION b2bd_access_event(p_shop text, p_customer text, p_email text,
                                             p_version bigint, p_caused_by text, p_event_id uuid,
                                             p_occurred_at text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"event_id":' || to_json(p_event_id)::text
           || ',"shop_id":' || to_json(p_shop)::text
           || ',"customer_id":' || to_json(p_customer)::text
           || ',"email":' || coalesce(to_json(p_email)::text, 'null')
           || ',"experience":' || CASE WHEN d.any_role THEN '"b2b"' ELSE '"d2c"' END
           || ',"companies":' || d.companies
           || ',"version":' || p_version
           || ',"caused_by":' || to_json(p_caused_by)::text
           || ',"actor":' || coalesce(to_json(b2bd_audit_actor(p_caused_by))::text, 'null')
           || ',"occurred_at":' || to_json(p_occurred_at)::text || '}'
      FROM (SELECT '[' || coalesce(string_agg(c.doc, ',' ORDER BY c.company_id), '') || ']' AS companies,
                   coalesce(bool_or(c.has_role), false) AS any_role
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
                     GROUP BY k.company_id) c) d
$$;

-- Shop events: the version of a shop's settings (shop.settings on events.shops).
ALTER TABLE shops ADD COLUMN settings_version bigint NOT NULL DEFAULT 0;

-- Stale upserts: the newest source_updated_at applied per record ('shop', 'company',
-- 'customer', 'order'; record_id '' for the shop itself).
CREATE TABLE source_versions (
    shop_id            text NOT NULL,
    kind               text NOT NULL,
    record_id          text NOT NULL,
    source_updated_at  timestamptz NOT NULL,
    PRIMARY KEY (shop_id, kind, record_id)
);

-- Erasure keeps notifications and orders without naming the customer.
ALTER TABLE notifications ALTER COLUMN customer_id DROP NOT NULL,
    ALTER COLUMN to_address DROP NOT NULL, ALTER COLUMN subject DROP NOT NULL,
    ALTER COLUMN body_text DROP NOT NULL, ALTER COLUMN body_html DROP NOT NULL;
ALTER TABLE orders ALTER COLUMN customer_id DROP NOT NULL;

-- Why a customer's profile may not be merged (NULL: it may): seed 003, B2B profiles
-- are never merged.
CREATE FUNCTION b2bd_merge_blocker(p_shop text, p_customer text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM contacts WHERE shop_id = p_shop AND customer_id = p_customer)
            THEN format('customer %s is a contact of a company: B2B profiles are never merged', p_customer)
        WHEN EXISTS (SELECT 1 FROM orders WHERE shop_id = p_shop AND customer_id = p_customer
                        AND company_id IS NOT NULL)
            THEN format('customer %s has B2B orders: B2B profiles are never merged', p_customer)
    END
$$;

-- customer.merge: p_merge into p_keep. Returns the result object's JSON.
CREATE FUNCTION b2bd_customer_merge(p_shop text, p_keep text, p_merge text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_keep customers;
    v_merge customers;
    v_why text;
    v_moved text[];
BEGIN
    SELECT * INTO v_keep FROM customers WHERE shop_id = p_shop AND customer_id = p_keep FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM b2bd_reject('NOT_FOUND', 'payload.customer_id', 'no customer with this id in the shop');
    END IF;
    SELECT * INTO v_merge FROM customers WHERE shop_id = p_shop AND customer_id = p_merge FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM b2bd_reject('NOT_FOUND', 'payload.merge_customer_id', 'no customer with this id in the shop');
    END IF;
    v_why := b2bd_merge_blocker(p_shop, p_keep);
    IF v_why IS NOT NULL THEN
        PERFORM b2bd_reject('MERGE_REFUSED', 'payload.customer_id', v_why);
    END IF;
    v_why := b2bd_merge_blocker(p_shop, p_merge);
    IF v_why IS NOT NULL THEN
        PERFORM b2bd_reject('MERGE_REFUSED', 'payload.merge_customer_id', v_why);
    END IF;

    WITH m AS (UPDATE orders SET customer_id = p_keep, updated_at = now()
                WHERE shop_id = p_shop AND customer_id = p_merge RETURNING order_id)
    SELECT coalesce(array_agg(order_id ORDER BY order_id), '{}') INTO v_moved FROM m;
    UPDATE notifications SET customer_id = p_keep, updated_at = now()
     WHERE shop_id = p_shop AND customer_id = p_merge;
    -- tags joined: the first's, then the second's; duplicates (case-insensitive) dropped,
    -- the first spelling kept; at most 250
    UPDATE customers SET updated_at = now(), tags = coalesce((
        SELECT array_agg(t ORDER BY n) FROM (
            SELECT t, n FROM (SELECT DISTINCT ON (lower(u.t)) u.t, u.n
                                FROM unnest(v_keep.tags || v_merge.tags) WITH ORDINALITY AS u(t, n)
                               ORDER BY lower(u.t), u.n) d
             ORDER BY n LIMIT 250) k), '{}')
     WHERE shop_id = p_shop AND customer_id = p_keep;

    DELETE FROM order_migrations WHERE shop_id = p_shop AND customer_id = p_merge;
    DELETE FROM access_history WHERE shop_id = p_shop AND customer_id = p_merge;
    DELETE FROM source_versions WHERE shop_id = p_shop AND kind = 'customer' AND record_id = p_merge;
    DELETE FROM customers WHERE shop_id = p_shop AND customer_id = p_merge;
    IF v_merge.access_version > 0 THEN
        INSERT INTO outbox (topic, key, value)
        VALUES ('events.access', convert_to(p_shop || '/' || p_merge, 'UTF8'), NULL);
    END IF;
    RETURN '{"customer_id":' || to_json(p_keep)::text
           || ',"merged_customer_id":' || to_json(p_merge)::text
           || ',"moved_order_ids":' || to_json(v_moved)::text || '}';
END
$$;

-- The customer a privacy command names, by id or by email (NOT_FOUND when none).
CREATE FUNCTION b2bd_privacy_subject(p_shop text, p_customer text, p_email text)
RETURNS customers LANGUAGE plpgsql AS $$
DECLARE
    v customers;
BEGIN
    IF p_customer IS NOT NULL THEN
        SELECT * INTO v FROM customers WHERE shop_id = p_shop AND customer_id = p_customer FOR UPDATE;
    ELSE
        SELECT * INTO v FROM customers WHERE shop_id = p_shop AND lower(email) = lower(p_email) FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        PERFORM b2bd_reject('NOT_FOUND', CASE WHEN p_customer IS NOT NULL THEN 'payload.customer_id'
                                              ELSE 'payload.email' END,
                            'no customer with this id or email in the shop');
    END IF;
    RETURN v;
END
$$;

-- customer.redact: erases the customer's personal data (stored results are redacted by
-- b2bd itself, from the JSON). Returns {customer_id, email, id_is_email, erased} where
-- customer_id and email are the erased customer's, for b2bd to find its stored results.
CREATE FUNCTION b2bd_customer_redact(p_shop text, p_customer text, p_email text,
                                     p_caused_by text, p_event_id uuid, p_occurred_at text)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    c customers := b2bd_privacy_subject(p_shop, p_customer, p_email);
    v_roles integer;
    v_contacts integer;
    v_notifications integer;
    v_orders integer;
BEGIN
    SELECT count(*) INTO v_roles FROM roles WHERE shop_id = p_shop AND customer_id = c.customer_id;
    -- contacts (their roles cascade), and their seats freed
    WITH d AS (DELETE FROM contacts WHERE shop_id = p_shop AND customer_id = c.customer_id
               RETURNING company_id)
    UPDATE companies k SET contact_count = k.contact_count - 1, updated_at = now()
      FROM d WHERE k.shop_id = p_shop AND k.company_id = d.company_id;
    GET DIAGNOSTICS v_contacts = ROW_COUNT;
    DELETE FROM order_migrations WHERE shop_id = p_shop AND customer_id = c.customer_id;
    -- notifications keep their status; a queued one is never sent
    UPDATE notifications SET customer_id = NULL, to_address = NULL, subject = NULL,
           body_text = NULL, body_html = NULL, last_error = NULL, updated_at = now(),
           next_attempt_at = CASE WHEN status = 'queued' THEN timestamptz '9999-12-31 00:00:00+00'
                                  ELSE next_attempt_at END
     WHERE shop_id = p_shop AND customer_id = c.customer_id;
    GET DIAGNOSTICS v_notifications = ROW_COUNT;
    UPDATE orders SET customer_id = NULL, updated_at = now()
     WHERE shop_id = p_shop AND customer_id = c.customer_id;
    GET DIAGNOSTICS v_orders = ROW_COUNT;
    IF c.access_version > 0 THEN
        -- a final event without access or email, then the tombstone
        INSERT INTO outbox (topic, key, value)
        VALUES ('events.access', convert_to(p_shop || '/' || c.customer_id, 'UTF8'),
                convert_to(b2bd_access_event(p_shop, c.customer_id, NULL, c.access_version + 1,
                                             p_caused_by, p_event_id, p_occurred_at), 'UTF8')),
               ('events.access', convert_to(p_shop || '/' || c.customer_id, 'UTF8'), NULL);
    END IF;
    DELETE FROM access_history WHERE shop_id = p_shop AND customer_id = c.customer_id;
    DELETE FROM source_versions WHERE shop_id = p_shop AND kind = 'customer'
                                  AND record_id = c.customer_id;
    DELETE FROM customers WHERE shop_id = p_shop AND customer_id = c.customer_id;
    RETURN json_build_object('customer_id', c.customer_id, 'email', c.email,
        'id_is_email', lower(c.customer_id) = lower(c.email) OR lower(c.customer_id) = lower(p_email),
        'erased', json_build_object('contacts', v_contacts, 'roles', v_roles,
                                    'notifications', v_notifications, 'orders_unlinked', v_orders));
END
$$;

-- shop.redact: every row of the shop, but the command's own inbox row (written after).
CREATE FUNCTION b2bd_shop_redact(p_shop text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_customers integer;
    v_companies integer;
    v_orders integer;
    v_notifications integer;
    v_commands integer;
BEGIN
    INSERT INTO outbox (topic, key, value)
    SELECT 'events.access', convert_to(p_shop || '/' || customer_id, 'UTF8'), NULL
      FROM customers WHERE shop_id = p_shop AND access_version > 0 ORDER BY customer_id;
    INSERT INTO outbox (topic, key, value) VALUES ('events.shops', convert_to(p_shop, 'UTF8'), NULL);
    DELETE FROM roles WHERE shop_id = p_shop;
    DELETE FROM contacts WHERE shop_id = p_shop;
    DELETE FROM order_migrations WHERE shop_id = p_shop;
    DELETE FROM orders WHERE shop_id = p_shop;
    GET DIAGNOSTICS v_orders = ROW_COUNT;
    DELETE FROM notifications WHERE shop_id = p_shop;
    GET DIAGNOSTICS v_notifications = ROW_COUNT;
    DELETE FROM locations WHERE shop_id = p_shop;
    DELETE FROM companies WHERE shop_id = p_shop;
    GET DIAGNOSTICS v_companies = ROW_COUNT;
    DELETE FROM access_history WHERE shop_id = p_shop;
    DELETE FROM customers WHERE shop_id = p_shop;
    GET DIAGNOSTICS v_customers = ROW_COUNT;
    DELETE FROM templates WHERE shop_id = p_shop;
    DELETE FROM source_versions WHERE shop_id = p_shop;
    DELETE FROM commands WHERE shop_id = p_shop;
    GET DIAGNOSTICS v_commands = ROW_COUNT;
    DELETE FROM shops WHERE shop_id = p_shop;
    RETURN '{"customers":' || v_customers || ',"companies":' || v_companies
           || ',"orders":' || v_orders || ',"notifications":' || v_notifications
           || ',"commands":' || v_commands || '}';
END
$$;

-- RFC 3339 UTC text of a timestamp, as b2bd writes them.
CREATE FUNCTION b2bd_ts(p timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The applied commands that concern a customer: those whose stored result names it
-- anywhere (as customer_id or merged_customer_id), the upserts of its orders, and the
-- causes of its access events.
CREATE FUNCTION b2bd_customer_commands(p_shop text, p_customer text)
RETURNS SETOF commands LANGUAGE sql STABLE AS $$
    SELECT m.* FROM commands m
     WHERE m.shop_id = p_shop
       AND strpos(m.result, to_json(p_customer)::text) > 0
       AND jsonb_path_exists(m.result::jsonb, '$.result.** ? (@.customer_id == $id || @.merged_customer_id == $id)',
                             jsonb_build_object('id', p_customer))
    UNION
    SELECT m.* FROM commands m
     WHERE m.command_id IN (SELECT caused_by FROM access_history
                             WHERE shop_id = p_shop AND customer_id = p_customer)
    UNION
    SELECT m.* FROM commands m
     WHERE m.shop_id = p_shop AND m.type = 'order.upsert'
       AND m.result::jsonb -> 'result' ->> 'order_id' IN
           (SELECT order_id FROM orders WHERE shop_id = p_shop AND customer_id = p_customer)
$$;

-- customer.data_export: everything b2bd holds about the customer (CONTRACT.md), as JSON.
CREATE FUNCTION b2bd_customer_export(p_shop text, p_customer text, p_email text,
                                     p_request text, p_event_id uuid, p_now text)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    c customers := b2bd_privacy_subject(p_shop, p_customer, p_email);
BEGIN
    RETURN json_build_object(
        'event_id', p_event_id, 'type', 'customer.data_export', 'shop_id', p_shop,
        'customer_id', c.customer_id, 'request_command_id', p_request,
        'profile', json_build_object('customer_id', c.customer_id, 'email', c.email,
                                     'first_name', c.first_name, 'last_name', c.last_name,
                                     'phone', c.phone, 'tags', to_json(c.tags)),
        'companies', coalesce((
            SELECT json_agg(json_build_object('company_id', k.company_id, 'name', co.name,
                'locations', coalesce((
                    SELECT json_agg(json_build_object('location_id', r.location_id, 'name', l.name,
                                                      'role', r.role) ORDER BY r.location_id)
                      FROM roles r JOIN locations l ON l.shop_id = r.shop_id AND l.location_id = r.location_id
                     WHERE r.shop_id = p_shop AND r.company_id = k.company_id
                       AND r.customer_id = c.customer_id), '[]'::json)) ORDER BY k.company_id)
              FROM contacts k JOIN companies co ON co.shop_id = k.shop_id AND co.company_id = k.company_id
             WHERE k.shop_id = p_shop AND k.customer_id = c.customer_id), '[]'::json),
        'orders', coalesce((
            SELECT json_agg(json_build_object('order_id', o.order_id, 'status', o.status,
                'company_id', o.company_id, 'location_id', o.location_id,
                'placed_at', b2bd_ts(o.placed_at), 'total', o.total::text, 'currency', o.currency,
                'migrated', o.migrated_by IS NOT NULL) ORDER BY o.order_id)
              FROM orders o WHERE o.shop_id = p_shop AND o.customer_id = c.customer_id), '[]'::json),
        'order_migrations', coalesce((
            SELECT json_agg(json_build_object('company_id', m.company_id, 'location_id', m.location_id,
                                              'command_id', m.command_id) ORDER BY m.company_id)
              FROM order_migrations m WHERE m.shop_id = p_shop AND m.customer_id = c.customer_id), '[]'::json),
        'notifications', coalesce((
            SELECT json_agg(json_build_object('notification_id', n.notification_id, 'to', n.to_address,
                'subject', n.subject, 'text', n.body_text, 'status', n.status, 'attempts', n.attempts,
                'created_at', b2bd_ts(n.created_at), 'sent_at', b2bd_ts(n.sent_at))
                ORDER BY n.created_at, n.notification_id)
              FROM notifications n WHERE n.shop_id = p_shop AND n.customer_id = c.customer_id), '[]'::json),
        'access_history', coalesce((
            SELECT json_agg(json_build_object('version', h.version, 'companies', h.companies,
                'caused_by', h.caused_by, 'actor', h.actor, 'occurred_at', b2bd_ts(h.occurred_at))
                ORDER BY h.version)
              FROM access_history h WHERE h.shop_id = p_shop AND h.customer_id = c.customer_id), '[]'::json),
        'commands', coalesce((
            SELECT json_agg(json_build_object('command_id', m.command_id, 'type', m.type,
                'actor', m.actor, 'issued_at', m.issued_at, 'processed_at', b2bd_ts(m.processed_at))
                ORDER BY m.processed_at, m.command_id)
              FROM b2bd_customer_commands(p_shop, c.customer_id) m), '[]'::json),
        'generated_at', p_now);
END
$$;

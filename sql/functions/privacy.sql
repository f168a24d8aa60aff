-- privacy: the customer a privacy command names, customer.redact, shop.redact and
-- customer.data_request's export (CONTRACT.md, "Privacy, profiles and audit").

-- RFC 3339 UTC text of a timestamp, as b2bd writes them.
CREATE OR REPLACE FUNCTION b2bd_ts(p timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The customer a privacy command names, by id or by email (NOT_FOUND when none).
CREATE OR REPLACE FUNCTION b2bd_privacy_subject(p_shop text, p_customer text, p_email text)
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
CREATE OR REPLACE FUNCTION b2bd_customer_redact(p_shop text, p_customer text, p_email text,
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
CREATE OR REPLACE FUNCTION b2bd_shop_redact(p_shop text) RETURNS text LANGUAGE plpgsql AS $$
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

-- The applied commands that concern a customer: those whose stored result names it
-- anywhere (as customer_id or merged_customer_id), the upserts of its orders, and the
-- causes of its access events.
CREATE OR REPLACE FUNCTION b2bd_customer_commands(p_shop text, p_customer text)
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
CREATE OR REPLACE FUNCTION b2bd_customer_export(p_shop text, p_customer text, p_email text,
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
                       AND r.customer_id = c.customer_id), '[]'::json),
                -- CONTRACT.md, "Suspension": by the company or on its own
                'suspended', k.suspended OR co.suspended) ORDER BY k.company_id)
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

-- access: a customer's access event (CONTRACT.md, "Access event"), built from two SQL
-- functions the planner inlines (b2bd_access_of, b2bd_access_text): one customer at a
-- time by b2bd_emit_access (the one-by-one path), a run at a time by b2bd_assign_bulk and
-- b2bd_revoke_bulk; and the outbox's refusal of an access event over the message limit
-- (b2bd_access_too_large, for the trigger outbox_access_size on the outbox).

-- A customer's access as its access event shows it: the companies (JSON, by company id,
-- each with its roles by location id) and whether it holds any role that counts (one of a
-- company that is not suspended for it). An entry is "access": "suspended" while the
-- company or the contact is suspended, with the roles kept (CONTRACT.md, "Suspension").
-- A set-returning SQL function, inlined where it is used in FROM: the bulk functions join
-- it to their rows.
CREATE OR REPLACE FUNCTION b2bd_access_of(p_shop text, p_customer text)
RETURNS TABLE (companies text, any_role boolean) LANGUAGE sql STABLE AS $$
    SELECT '[' || coalesce(string_agg(c.doc, ',' ORDER BY c.company_id), '') || ']',
           coalesce(bool_or(c.has_role AND NOT c.suspended), false)
      FROM (SELECT k.company_id, count(o.location_id) > 0 AS has_role, s.suspended,
                   '{"company_id":' || to_json(k.company_id)::text
                   || ',"access":' || CASE WHEN s.suspended THEN '"suspended"'
                                           WHEN count(o.location_id) > 0 THEN '"locations"'
                                           ELSE '"no_access"' END
                   || ',"locations":['
                   || coalesce(string_agg('{"location_id":' || to_json(o.location_id)::text
                                          || ',"role":' || to_json(o.role)::text || '}',
                                          ',' ORDER BY o.location_id)
                                   FILTER (WHERE o.location_id IS NOT NULL), '')
                   || ']}' AS doc
              FROM contacts k
              -- the company's suspension by the partial index companies_suspended (0020):
              -- the companies row, which every assign of the company updates (its seat
              -- count, or its lock), is read only for a suspended company (company_id || ''
              -- keeps companies_pkey out of it)
              CROSS JOIN LATERAL (SELECT k.suspended
                                         OR EXISTS (SELECT 1 FROM companies co
                                                     WHERE co.shop_id = k.shop_id AND co.suspended
                                                       AND co.company_id || '' = k.company_id)
                                         AS suspended) s
              LEFT JOIN roles o ON o.shop_id = k.shop_id AND o.company_id = k.company_id
                               AND o.customer_id = k.customer_id
             WHERE k.shop_id = p_shop AND k.customer_id = p_customer
             GROUP BY k.company_id, s.suspended) c
$$;

-- The access event's text (CONTRACT.md, "Access event", its keys in that order), from its parts.
CREATE OR REPLACE FUNCTION b2bd_access_text(p_event_id uuid, p_shop text, p_customer text, p_email text,
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

-- The access event of a customer as it stands, with its actor given (NULL: "actor": null).
CREATE OR REPLACE FUNCTION b2bd_access_event(p_shop text, p_customer text, p_email text,
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

-- The access event of one customer after a one-by-one command changed its access: bumps
-- its access_version, writes the event to the outbox (its event_id and occurred_at made
-- here, as for the result) and its access_history row (with the trigger standing aside).
CREATE OR REPLACE FUNCTION b2bd_emit_access(p_shop text, p_customer text, p_caused_by uuid)
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

-- The outbox's refusal of an access event over b2bd.max_message_bytes (SQLSTATE B2B13:
-- b2bd rolls the command back to its savepoint and rejects it with LIMIT_REACHED; a
-- run hands back); trigger outbox_access_size calls it only for such an event.
CREATE OR REPLACE FUNCTION b2bd_access_too_large() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'B2B13',
        MESSAGE = format('the access event would be %s bytes, over the message limit',
                         octet_length(NEW.value));
END
$$;

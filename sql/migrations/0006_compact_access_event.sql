-- 0006: the access event as compact JSON, its keys in the contract's order, like every
-- other message b2bd writes (json_build_object puts " : " between keys and values).
CREATE OR REPLACE FUNCTION b2bd_emit_access(p_shop text, p_customer text, p_caused_by uuid,
                                            p_event_id uuid, p_occurred_at text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
    v_email text;
    v_companies text;
    v_any_role boolean;
BEGIN
    UPDATE customers SET access_version = access_version + 1, updated_at = now()
     WHERE shop_id = p_shop AND customer_id = p_customer
    RETURNING access_version, email INTO v_version, v_email;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % vanished while applying', p_customer;
    END IF;
    SELECT '[' || coalesce(string_agg(c.doc, ',' ORDER BY c.company_id), '') || ']',
           coalesce(bool_or(c.has_role), false)
      INTO v_companies, v_any_role
      FROM (SELECT k.company_id, count(r.location_id) > 0 AS has_role,
                   '{"company_id":' || to_json(k.company_id)::text
                   || ',"access":' || CASE WHEN count(r.location_id) > 0 THEN '"locations"'
                                           ELSE '"no_access"' END
                   || ',"locations":['
                   || coalesce(string_agg('{"location_id":' || to_json(r.location_id)::text
                                          || ',"role":' || to_json(r.role)::text || '}',
                                          ',' ORDER BY r.location_id)
                                   FILTER (WHERE r.location_id IS NOT NULL), '')
                   || ']}' AS doc
              FROM contacts k
              LEFT JOIN roles r ON r.shop_id = k.shop_id AND r.company_id = k.company_id
                               AND r.customer_id = k.customer_id
             WHERE k.shop_id = p_shop AND k.customer_id = p_customer
             GROUP BY k.company_id) c;
    INSERT INTO outbox (topic, key, value)
    VALUES ('events.access', convert_to(p_shop || '/' || p_customer, 'UTF8'),
            convert_to('{"event_id":' || to_json(p_event_id)::text
                       || ',"shop_id":' || to_json(p_shop)::text
                       || ',"customer_id":' || to_json(p_customer)::text
                       || ',"email":' || coalesce(to_json(v_email)::text, 'null')
                       || ',"experience":' || CASE WHEN v_any_role THEN '"b2b"' ELSE '"d2c"' END
                       || ',"companies":' || v_companies
                       || ',"version":' || v_version
                       || ',"caused_by":' || to_json(p_caused_by)::text
                       || ',"occurred_at":' || to_json(p_occurred_at)::text || '}', 'UTF8'));
END
$$;

-- 0004: the hot path of a bulk import runs next to the data: the rules of `assign`
-- (customer, contact and seat, roles) and the access event are functions, so that a
-- command costs one round trip each instead of a dozen. b2bd calls them inside the
-- command's savepoint; a rejection is raised with SQLSTATE B2B01, the contract's code
-- in DETAIL, the field in HINT, and rolled back with the savepoint.

CREATE FUNCTION b2bd_reject(p_code text, p_field text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'B2B01', MESSAGE = p_message, DETAIL = p_code,
        HINT = coalesce(p_field, '');
END
$$;

-- Assigns a customer (by id, or by email, found case-insensitively or created) to a
-- company, with p_roles[i] at p_locations[i]. Returns {customer_id, customer_created,
-- contact_created, roles (all the customer's roles in the company), changed}.
CREATE FUNCTION b2bd_assign(p_shop text, p_company text, p_customer_id text, p_email text,
                            p_first_name text, p_last_name text, p_phone text,
                            p_locations text[], p_roles text[], p_max_contacts integer)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    v_missing integer;
    v_customer text;
    v_customer_created boolean := false;
    v_contact_created boolean;
    v_roles_changed integer;
    v_roles json;
BEGIN
    PERFORM 1 FROM companies WHERE shop_id = p_shop AND company_id = p_company;
    IF NOT FOUND THEN
        PERFORM b2bd_reject('NOT_FOUND', 'payload.company_id', 'no company with this id in the shop');
    END IF;
    SELECT i INTO v_missing FROM generate_subscripts(p_locations, 1) AS i
     WHERE NOT EXISTS (SELECT 1 FROM locations l WHERE l.shop_id = p_shop
                          AND l.company_id = p_company AND l.location_id = p_locations[i])
     ORDER BY i LIMIT 1;
    IF v_missing IS NOT NULL THEN
        PERFORM b2bd_reject('NOT_FOUND', format('payload.locations[%s].location_id', v_missing - 1),
                            'no location with this id in the company');
    END IF;

    IF p_customer_id IS NOT NULL THEN
        SELECT customer_id INTO v_customer FROM customers
         WHERE shop_id = p_shop AND customer_id = p_customer_id;
        IF v_customer IS NULL AND p_email IS NULL THEN
            PERFORM b2bd_reject('NOT_FOUND', 'payload.customer.id', 'no customer with this id in the shop');
        END IF;
    END IF;
    IF v_customer IS NULL THEN
        SELECT customer_id INTO v_customer FROM customers
         WHERE shop_id = p_shop AND lower(email) = lower(p_email);
        IF v_customer IS NOT NULL AND p_customer_id IS NOT NULL THEN
            -- the id is new, but the email is another customer's
            PERFORM b2bd_reject('CONFLICT', 'payload.customer.email',
                                'the email belongs to another customer of the shop');
        END IF;
    END IF;
    IF v_customer IS NULL THEN
        INSERT INTO customers (shop_id, customer_id, email, first_name, last_name, phone)
        VALUES (p_shop, coalesce(p_customer_id, lower(p_email)), p_email, p_first_name,
                p_last_name, p_phone)
        ON CONFLICT (shop_id, customer_id) DO NOTHING
        RETURNING customer_id INTO v_customer;
        IF v_customer IS NULL THEN
            PERFORM b2bd_reject('CONFLICT', 'payload.customer.email',
                                'a customer whose id is this email exists with another email');
        END IF;
        v_customer_created := true;
    END IF;

    INSERT INTO contacts (shop_id, company_id, customer_id) VALUES (p_shop, p_company, v_customer)
    ON CONFLICT DO NOTHING;
    v_contact_created := FOUND;
    IF v_contact_created THEN
        -- the company row's lock serialises racing assigns, so the limit holds
        UPDATE companies SET contact_count = contact_count + 1
         WHERE shop_id = p_shop AND company_id = p_company AND contact_count < p_max_contacts;
        IF NOT FOUND THEN
            PERFORM b2bd_reject('LIMIT_REACHED', 'payload.company_id',
                                format('the company has %s contacts already', p_max_contacts));
        END IF;
    END IF;

    INSERT INTO roles AS r (shop_id, company_id, location_id, customer_id, role)
    SELECT p_shop, p_company, u.location_id, v_customer, u.role
      FROM unnest(p_locations, p_roles) AS u(location_id, role)
    ON CONFLICT (shop_id, company_id, customer_id, location_id)
    DO UPDATE SET role = EXCLUDED.role WHERE r.role <> EXCLUDED.role;
    GET DIAGNOSTICS v_roles_changed = ROW_COUNT;

    SELECT coalesce(json_agg(json_build_object('location_id', location_id, 'role', role)
                             ORDER BY location_id), '[]'::json)
      INTO v_roles FROM roles
     WHERE shop_id = p_shop AND company_id = p_company AND customer_id = v_customer;
    RETURN json_build_object('customer_id', v_customer, 'customer_created', v_customer_created,
                             'contact_created', v_contact_created, 'roles', v_roles,
                             'changed', v_contact_created OR v_roles_changed > 0);
END
$$;

-- Publishes the whole access of a customer, with its next version, through the outbox
-- (CONTRACT.md, "Access event").
CREATE FUNCTION b2bd_emit_access(p_shop text, p_customer text, p_caused_by uuid,
                                 p_event_id uuid, p_occurred_at text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_version bigint;
    v_email text;
    v_companies json;
    v_any_role boolean;
BEGIN
    UPDATE customers SET access_version = access_version + 1, updated_at = now()
     WHERE shop_id = p_shop AND customer_id = p_customer
    RETURNING access_version, email INTO v_version, v_email;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'customer % vanished while applying', p_customer;
    END IF;
    SELECT coalesce(json_agg(c.doc ORDER BY c.company_id), '[]'::json), coalesce(bool_or(c.has_role), false)
      INTO v_companies, v_any_role
      FROM (SELECT k.company_id, count(r.location_id) > 0 AS has_role,
                   json_build_object(
                       'company_id', k.company_id,
                       'access', CASE WHEN count(r.location_id) > 0 THEN 'locations' ELSE 'no_access' END,
                       'locations', coalesce(json_agg(json_build_object('location_id', r.location_id, 'role', r.role)
                                                      ORDER BY r.location_id)
                                             FILTER (WHERE r.location_id IS NOT NULL), '[]'::json)) AS doc
              FROM contacts k
              LEFT JOIN roles r ON r.shop_id = k.shop_id AND r.company_id = k.company_id
                               AND r.customer_id = k.customer_id
             WHERE k.shop_id = p_shop AND k.customer_id = p_customer
             GROUP BY k.company_id) c;
    INSERT INTO outbox (topic, key, value)
    VALUES ('events.access', convert_to(p_shop || '/' || p_customer, 'UTF8'),
            convert_to(json_build_object(
                'event_id', p_event_id, 'shop_id', p_shop, 'customer_id', p_customer,
                'email', v_email, 'experience', CASE WHEN v_any_role THEN 'b2b' ELSE 'd2c' END,
                'companies', v_companies, 'version', v_version, 'caused_by', p_caused_by,
                'occurred_at', p_occurred_at)::text, 'UTF8'));
END
$$;

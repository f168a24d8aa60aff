-- suspension: suspend and resume of a company or of one contact (CONTRACT.md,
-- "Suspension"; src/apply_suspend.c). The columns are 0020's: companies.suspended (the
-- company's) and contacts.suspended (the contact's own), independent; a contact is
-- suspended in a company while either holds. The access event shows such an entry as
-- "access": "suspended" (b2bd_access_of, access.sql).

-- Whether the customer is a contact of the company suspended there (by the company or on
-- its own); false for no contact. A set-returning function of one row, so that the
-- planner inlines it where it is joined (a scalar SQL function with a subquery is not
-- inlined: it was run, and planned, for every command). The company's suspension by the
-- partial index companies_suspended (0020): the companies row, which every assign of the
-- company updates, is read only for a suspended company.
CREATE OR REPLACE FUNCTION b2bd_suspension_of(p_shop text, p_company text, p_customer text)
RETURNS TABLE (suspended boolean) LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM contacts k
                    WHERE k.shop_id = p_shop AND k.company_id = p_company AND k.customer_id = p_customer
                      AND (k.suspended OR EXISTS (SELECT 1 FROM companies co
                                                   WHERE co.shop_id = p_shop AND co.suspended
                                                     AND co.company_id || '' = p_company)))
$$;

-- The same as a value (the notifier's statements, src/apply_notify.c).
CREATE OR REPLACE FUNCTION b2bd_suspended_in(p_shop text, p_company text, p_customer text)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT s.suspended FROM b2bd_suspension_of(p_shop, p_company, p_customer) s
$$;

-- Suspends (p_suspend) or resumes a company (p_customer NULL) or one contact of it, for
-- the command p_caused_by. Returns {changed, customers_affected}: whether the suspension
-- changed, and the number of access events written (one per contact whose entry changed:
-- a contact suspended on its own keeps a suspended entry whatever its company does, and
-- a contact of a suspended company whatever its own suspension). A rejection raises B2B01
-- (NOT_FOUND, NOT_A_CONTACT).
--
-- Set-based, for a company of 10,000 contacts as for one: the company row is locked
-- first (as assign and a contact's removal lock it, so they take turns with this), then
-- one statement bumps the access_version of every customer whose entry changes (their
-- row locks: a command of another company that changed one of them has committed, and
-- waits for this one otherwise), then one statement, whose snapshot is taken after those
-- locks, builds their events from what they hold now and writes them with their
-- access_history rows (the outbox's history trigger standing aside, b2bd.history).
CREATE OR REPLACE FUNCTION b2bd_suspend(p_shop text, p_company text, p_customer text,
                                        p_suspend boolean, p_caused_by uuid)
RETURNS json LANGUAGE plpgsql AS $$
DECLARE
    v_now text := b2bd_now_text();
    v_actor text := b2bd_audit_actor(p_caused_by::text);
    v_company boolean;
    v_own boolean;
    v_n bigint;
BEGIN
    -- the company's lock (an UPDATE that changes nothing, as b2bd_assign_core takes it)
    UPDATE companies c SET contact_count = c.contact_count
     WHERE c.shop_id = p_shop AND c.company_id = p_company
    RETURNING c.suspended INTO v_company;
    IF NOT FOUND THEN
        PERFORM b2bd_reject('NOT_FOUND', 'payload.company_id', 'no company with this id in the shop');
    END IF;

    IF p_customer IS NULL THEN
        IF v_company = p_suspend THEN
            RETURN json_build_object('changed', false, 'customers_affected', 0);
        END IF;
        UPDATE companies c SET suspended = p_suspend
         WHERE c.shop_id = p_shop AND c.company_id = p_company;
        -- every contact not suspended on its own changes its entry
        UPDATE customers u SET access_version = u.access_version + 1, updated_at = now()
          FROM contacts k
         WHERE k.shop_id = p_shop AND k.company_id = p_company AND NOT k.suspended
           AND u.shop_id = k.shop_id AND u.customer_id = k.customer_id;
    ELSE
        -- the contact's row, locked with an UPDATE that changes nothing (not FOR UPDATE,
        -- for the reason b2bd_assign_core gives)
        UPDATE contacts k SET suspended = k.suspended
         WHERE k.shop_id = p_shop AND k.company_id = p_company AND k.customer_id = p_customer
        RETURNING k.suspended INTO v_own;
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM customers u WHERE u.shop_id = p_shop AND u.customer_id = p_customer) THEN
                PERFORM b2bd_reject('NOT_FOUND', 'payload.customer_id', 'no customer with this id in the shop');
            END IF;
            PERFORM b2bd_reject('NOT_A_CONTACT', 'payload.customer_id',
                                'the customer is not a contact of the company');
        END IF;
        IF v_own = p_suspend THEN
            RETURN json_build_object('changed', false, 'customers_affected', 0);
        END IF;
        UPDATE contacts k SET suspended = p_suspend
         WHERE k.shop_id = p_shop AND k.company_id = p_company AND k.customer_id = p_customer;
        -- its entry changes unless the company is suspended
        IF v_company THEN
            RETURN json_build_object('changed', true, 'customers_affected', 0);
        END IF;
        UPDATE customers u SET access_version = u.access_version + 1, updated_at = now()
         WHERE u.shop_id = p_shop AND u.customer_id = p_customer;
    END IF;

    PERFORM set_config('b2bd.history', 'written', true);
    WITH access AS MATERIALIZED (
        SELECT u.customer_id, u.access_version, d.companies,
               convert_to(b2bd_access_text(gen_random_uuid(), p_shop, u.customer_id, u.email, d.any_role,
                                           d.companies, u.access_version, p_caused_by::text, v_actor, v_now),
                          'UTF8') AS value
          FROM contacts k
          JOIN customers u ON u.shop_id = k.shop_id AND u.customer_id = k.customer_id
          CROSS JOIN LATERAL b2bd_access_of(p_shop, u.customer_id) d
         -- the customers bumped above: the same contacts, as the company's lock keeps
         -- them (an assign, a contact's suspension or removal takes that lock first)
         WHERE k.shop_id = p_shop AND k.company_id = p_company
           AND CASE WHEN p_customer IS NULL THEN NOT k.suspended ELSE k.customer_id = p_customer END),
    history AS (
        INSERT INTO access_history AS h (shop_id, customer_id, version, companies, caused_by, actor, occurred_at)
        SELECT p_shop, a.customer_id, a.access_version, a.companies::jsonb, p_caused_by, v_actor,
               v_now::timestamptz
          FROM access a
        ON CONFLICT (shop_id, customer_id, version) DO UPDATE
            SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
                actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at),
    sent AS (
        INSERT INTO outbox (topic, key, value)
        SELECT 'events.access', convert_to(p_shop || '/' || a.customer_id, 'UTF8'), a.value
          FROM access a ORDER BY a.customer_id)
    SELECT count(*) INTO v_n FROM access;
    PERFORM set_config('b2bd.history', '', true);
    RETURN json_build_object('changed', true, 'customers_affected', v_n);
END
$$;

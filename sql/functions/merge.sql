-- merge: customer.merge, a D2C profile merged into another (B2B profiles never are).

-- Why a customer's profile may not be merged (NULL: it may): seed 003, B2B profiles
-- are never merged.
CREATE OR REPLACE FUNCTION b2bd_merge_blocker(p_shop text, p_customer text) RETURNS text
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
CREATE OR REPLACE FUNCTION b2bd_customer_merge(p_shop text, p_keep text, p_merge text) RETURNS text
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

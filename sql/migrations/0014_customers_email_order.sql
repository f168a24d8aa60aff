-- 0014: customers_email with the email first (issue 13, imports of new customers).
-- A generic plan made while a shop had no customers, such as the one PostgreSQL caches
-- for the contacts -> customers foreign-key check, chose customers_email (shop_id,
-- lower(email)) for "shop_id = $1 AND customer_id = $2": both indexes start with the
-- shop, and an empty table makes them cost the same. The check then read every customer
-- of the shop and filtered on customer_id, 0.77 ms per contact at 5,000 customers, and
-- more as an import of new customers grew the table (EXPLAIN ANALYZE EXECUTE of the
-- check as a generic plan; bench/apply_bench 10000 500 new: 137 commands/s before, 715
-- after, on the same loaded machine). With lower(email) first, only a lookup by email
-- can use this index, and the check takes customers_pkey whatever the statistics say.
DROP INDEX customers_email;
CREATE UNIQUE INDEX customers_email ON customers (lower(email), shop_id);

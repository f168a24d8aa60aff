-- 0008: every valid identifier fits (CONTRACT.md, "Limits and failures"). An id is 1 to
-- 255 characters, up to 1,020 bytes in UTF-8, and a btree index entry holds at most
-- 2,704 bytes. roles' primary key had three ids besides the shop (3,124 bytes with
-- 255 four-byte characters in each): PostgreSQL refused such a role (SQLSTATE 54000).
-- A location belongs to one company for good (company.upsert refuses to move it, and
-- nothing deletes locations), so (shop, customer, location) identifies a role as well:
-- the key becomes that, at most 64 + 2 x 1,020 bytes. Every other index holds the shop
-- and at most two ids. roles_customer (shop, customer) is the new key's prefix: dropped.
-- b2bd_assign and b2bd_assign_bulk name the key in ON CONFLICT: redefined below, as in
-- 0004 and 0007 but for that clause.
-- Frozen (sql/migrations/README.md): the bodies of the functions this migration
-- created or replaced are gone from here; each function lives in sql/functions/.
ALTER TABLE roles DROP CONSTRAINT roles_pkey,
    ADD CONSTRAINT roles_pkey PRIMARY KEY (shop_id, customer_id, location_id);
DROP INDEX roles_customer;

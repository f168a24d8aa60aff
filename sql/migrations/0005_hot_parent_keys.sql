-- 0005: no foreign keys from contacts to companies, nor from roles to locations.
-- A bulk import adds thousands of contacts of one company, each in its own savepoint of
-- one transaction; each foreign-key check took a share lock on the same company (and
-- location) row in another subtransaction, and the row's multixact grew with every one:
-- measured, the batch of 500 ran at 788 commands/s with them and 1,270 without
-- (bench/apply_bench). b2bd checks these parents itself before writing (b2bd_assign,
-- revoke, migrate), and nothing deletes companies or locations.
ALTER TABLE contacts DROP CONSTRAINT contacts_shop_id_company_id_fkey;
ALTER TABLE roles DROP CONSTRAINT roles_shop_id_location_id_fkey;

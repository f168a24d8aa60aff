-- 0007: a run of plain assigns (no migration, no email) applied with set-based statements.
-- b2bd hands over consecutive assigns of one batch whose customers (ids and emails) are
-- all different, as a JSON array; this function applies each exactly as b2bd_assign
-- would on its own (same checks in the same order, same result, same events), a
-- rejected one changing nothing, in a handful of statements for the whole run instead of
-- a subtransaction and five round trips per command. Anything it cannot settle row by
-- row (a concurrent writer, two rows about one customer) raises an error: b2bd rolls
-- the run back to its savepoint and applies the same commands one by one.
-- Frozen (sql/migrations/README.md): the bodies of the functions this migration
-- created or replaced are gone from here; each function lives in sql/functions/.

-- A customer's contacts are read by (shop, customer) for every access event. With the
-- company in this index too, an index-only scan of it is always the cheapest plan: a
-- plan cached while the table was small took contacts_pkey instead, whose leading
-- (shop, company) columns made each lookup read every contact of the shop.
DROP INDEX contacts_customer;
CREATE INDEX contacts_customer ON contacts (shop_id, customer_id, company_id);

CREATE TYPE b2bd_bulk_row AS (
    i                integer,  -- the row's place in the run
    command_id       text,     -- lower case, as in the result
    hash             bytea,
    import_id        text,
    msg_key          bytea,    -- the command message's key: the result's key
    shop             text,
    company          text,
    customer_in      text,     -- payload.customer.id
    email            text,
    first_name       text,
    last_name        text,
    phone            text,
    locs             text[],
    roles            text[],
    customer         text,     -- resolved or to be created
    create_customer  boolean,
    contact_created  boolean,
    code             text,     -- a rejection: the contract's code, field and message
    field            text,
    message          text,
    stored           text,     -- a duplicate: the stored result message
    changed          boolean
);

-- 0011: audit, shop events, stale upserts and privacy (CONTRACT.md, "Privacy, profiles
-- and audit").
--
-- Audit. b2bd notes the `actor` and `issued_at` of the commands it applies in the
-- transaction-local setting b2bd.audit, a JSON object keyed by command_id
-- ({"<command_id>": {"a": actor, "i": issued_at}}), before their writes. From it:
--   - a trigger fills commands.actor and commands.issued_at (every path that writes
--     the inbox, b2bd_assign_bulk included);
--   - b2bd_access_event (redefined below, same signature) writes "actor" into every
--     access event, after "caused_by".
-- A trigger on the outbox keeps every access event in access_history (the customer's
-- versions with their companies, cause, actor and time), whichever path wrote it.
-- Functions redefined here: b2bd_access_event (from 0007). b2bd_emit_access,
-- b2bd_assign and b2bd_assign_bulk are untouched: they call b2bd_access_event.
-- Frozen (sql/migrations/README.md): the bodies of the functions this migration
-- created or replaced are gone from here; each function lives in sql/functions/.

ALTER TABLE commands ADD COLUMN actor text, ADD COLUMN issued_at text;
-- the commands of a customer, for exports, are found through their results' keys
CREATE INDEX commands_shop ON commands (shop_id, processed_at);

CREATE TABLE access_history (
    shop_id      text NOT NULL,
    customer_id  text NOT NULL,
    version      bigint NOT NULL,
    companies    jsonb NOT NULL,
    caused_by    uuid NOT NULL,
    actor        text,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (shop_id, customer_id, version)
);

-- A placeholder for the trigger below: the body is in sql/functions/audit.sql.
CREATE FUNCTION b2bd_commands_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER commands_audit BEFORE INSERT ON commands
    FOR EACH ROW EXECUTE FUNCTION b2bd_commands_audit();

-- A placeholder for the trigger below: the body is in sql/functions/audit.sql.
CREATE FUNCTION b2bd_access_history() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER outbox_access_history AFTER INSERT ON outbox
    FOR EACH ROW WHEN (NEW.topic = 'events.access' AND NEW.value IS NOT NULL)
    EXECUTE FUNCTION b2bd_access_history();

-- Shop events: the version of a shop's settings (shop.settings on events.shops).
ALTER TABLE shops ADD COLUMN settings_version bigint NOT NULL DEFAULT 0;

-- Stale upserts: the newest source_updated_at applied per record ('shop', 'company',
-- 'customer', 'order'; record_id '' for the shop itself).
CREATE TABLE source_versions (
    shop_id            text NOT NULL,
    kind               text NOT NULL,
    record_id          text NOT NULL,
    source_updated_at  timestamptz NOT NULL,
    PRIMARY KEY (shop_id, kind, record_id)
);

-- Erasure keeps notifications and orders without naming the customer.
ALTER TABLE notifications ALTER COLUMN customer_id DROP NOT NULL,
    ALTER COLUMN to_address DROP NOT NULL, ALTER COLUMN subject DROP NOT NULL,
    ALTER COLUMN body_text DROP NOT NULL, ALTER COLUMN body_html DROP NOT NULL;
ALTER TABLE orders ALTER COLUMN customer_id DROP NOT NULL;

-- 0013: no access event over max_message_bytes (CONTRACT.md, "Limits and failures").
-- Access events are built in SQL (b2bd_access_event, for b2bd_emit_access and
-- b2bd_assign_bulk); rather than change those functions, the outbox refuses an access
-- event whose key and value, with 256 bytes of room for Kafka's framing, are over the
-- limit: the insert raises SQLSTATE B2B13, b2bd rolls the command back to its savepoint
-- and rejects it with LIMIT_REACHED (src/apply_limit.c). A bulk run that meets it is
-- handed back to the one-by-one path, like any other error of b2bd_assign_bulk.
-- The limit is the transaction's setting b2bd.max_message_bytes, which b2bd sets with
-- each BEGIN of a batch (default 1 MiB when unset). Results are checked in C, before
-- they are written (a stored result sent again is never refused here).
-- Frozen (sql/migrations/README.md): the bodies of the functions this migration
-- created or replaced are gone from here; each function lives in sql/functions/.

-- A placeholder for the trigger below: the body is in sql/functions/access.sql.
CREATE FUNCTION b2bd_access_too_large() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;

-- WHEN keeps the trigger function out of every event that fits: the condition alone is
-- evaluated for each outbox row.
CREATE TRIGGER outbox_access_size BEFORE INSERT ON outbox FOR EACH ROW
    WHEN (NEW.topic = 'events.access'
          AND coalesce(octet_length(NEW.key), 0) + coalesce(octet_length(NEW.value), 0) + 256
              > coalesce(nullif(current_setting('b2bd.max_message_bytes', true), '')::bigint, 1048576))
    EXECUTE FUNCTION b2bd_access_too_large();

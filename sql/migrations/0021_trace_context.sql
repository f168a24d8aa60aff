-- W3C Trace Context (CONTRACT "Trace context and dry runs"): every message a command
-- causes carries its trace. b2bd sets the transaction-local setting b2bd.trace to the
-- command's trace headers (a JSON array of [name, value] pairs, src/trace.c) before the
-- command's writes, outside its savepoint; the outbox rows written meanwhile take them
-- as their default, so that no function that writes outbox rows needs to know of it.
-- An email keeps the trace of the command that queued it, for its notification event,
-- across restarts and retries.
ALTER TABLE outbox ALTER COLUMN headers
    SET DEFAULT nullif(current_setting('b2bd.trace', true), '')::jsonb;
ALTER TABLE notifications ADD COLUMN trace jsonb
    DEFAULT nullif(current_setting('b2bd.trace', true), '')::jsonb;

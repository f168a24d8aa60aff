-- dry_run: what a dry run changes in the rules (CONTRACT "Trace context and dry runs").
-- b2bd sets b2bd.dry_run to 'on' for a dry run's writes (src/apply.c), outside its
-- savepoint, and undoes them; meanwhile b2bd_result_text marks its result
-- ("dry_run": true), b2bd_assign_core judges each row's seat alone, b2bd_assign_bulk undoes
-- its run itself, and the outbox rows the rule functions write take no id and are dropped
-- (sql/migrations/0022_dry_run.sql).

-- Whether the writes now are a dry run's.
CREATE OR REPLACE FUNCTION b2bd_dry_run() RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('b2bd.dry_run', true), '') = 'on'
$$;

-- Trigger outbox_dry_run: an outbox row written without an id during a dry run is
-- dropped (its size was checked by outbox_access_size, which fires first).
CREATE OR REPLACE FUNCTION b2bd_outbox_dry_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;

-- Dry runs (CONTRACT "Trace context and dry runs"): a dry run is judged as it would be
-- now and then undone; only its result is published. b2bd sets the transaction-local
-- setting b2bd.dry_run to 'on' for a dry run's writes, outside its savepoint (src/apply.c),
-- and undoes them by rolling back (a savepoint in C, a block in b2bd_assign_bulk). What
-- the rule functions write to the outbox meanwhile (access events, a run's results) would
-- take an id from outbox_id_seq that the rollback does not give back: while b2bd.dry_run
-- is 'on' the id's default is NULL, and the trigger below drops such a row (after
-- outbox_access_size, which fires first by name, has checked its size, so that a dry run
-- is refused LIMIT_REACHED as the real command would be). The rows b2bd itself writes
-- (results, dead letters) name their id (nextval), dry run or not.
CREATE FUNCTION b2bd_outbox_dry_run() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL; -- a placeholder: the body is in sql/functions/dry_run.sql
END
$$;
ALTER TABLE outbox ALTER COLUMN id
    SET DEFAULT CASE WHEN current_setting('b2bd.dry_run', true) = 'on' THEN NULL
                     ELSE nextval('outbox_id_seq'::regclass) END;
CREATE TRIGGER outbox_dry_run BEFORE INSERT ON outbox FOR EACH ROW
    WHEN (NEW.id IS NULL)
    EXECUTE FUNCTION b2bd_outbox_dry_run();

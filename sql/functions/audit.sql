-- audit: the actor and issued_at of the commands (CONTRACT.md, "Privacy, profiles and
-- audit"). The one-by-one path notes its command in the transaction-local setting
-- b2bd.audit ({"<command_id>": {"a": actor, "i": issued_at}}); the set-based runs write
-- commands.actor and issued_at themselves. access_history keeps every access event:
-- written by the trigger below unless the writer did it itself (b2bd.history = 'written').
-- The triggers that call them (commands_audit, outbox_access_history) are in the migrations.

-- The actor noted for a command (NULL when none); the setting is parsed only when set.
CREATE OR REPLACE FUNCTION b2bd_audit_actor(p_command_id text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN s.v <> '' THEN s.v::jsonb -> lower(p_command_id) ->> 'a' END
      FROM (SELECT current_setting('b2bd.audit', true) AS v) s
$$;

-- Trigger commands_audit: fills commands.actor and issued_at from b2bd.audit.
CREATE OR REPLACE FUNCTION b2bd_commands_audit() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := nullif(current_setting('b2bd.audit', true), '')::jsonb -> NEW.command_id::text;
BEGIN
    IF v IS NOT NULL THEN
        NEW.actor := coalesce(NEW.actor, v ->> 'a');
        NEW.issued_at := coalesce(NEW.issued_at, v ->> 'i');
    END IF;
    RETURN NEW;
END
$$;

-- Trigger outbox_access_history: an access event's access_history row, from its JSON.
CREATE OR REPLACE FUNCTION b2bd_access_history() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v jsonb := convert_from(NEW.value, 'UTF8')::jsonb;
BEGIN
    INSERT INTO access_history (shop_id, customer_id, version, companies, caused_by, actor,
                                occurred_at)
    VALUES (v ->> 'shop_id', v ->> 'customer_id', (v ->> 'version')::bigint, v -> 'companies',
            (v ->> 'caused_by')::uuid, v ->> 'actor', (v ->> 'occurred_at')::timestamptz)
    ON CONFLICT (shop_id, customer_id, version) DO UPDATE
        SET companies = EXCLUDED.companies, caused_by = EXCLUDED.caused_by,
            actor = EXCLUDED.actor, occurred_at = EXCLUDED.occurred_at;
    RETURN NULL;
END
$$;

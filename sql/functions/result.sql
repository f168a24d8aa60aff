-- result: rejections and result messages. b2bd_reject raises a command's rejection
-- (SQLSTATE B2B01: the contract's code in DETAIL, the field in HINT); b2bd_result_text
-- builds every result message (CONTRACT.md, "results"), for the one-by-one path
-- (src/apply.c) and the set-based runs alike; b2bd_result_fits and b2bd_result_checked are
-- the message limit for a result (B2B14: src/apply_limit.c rejects with LIMIT_REACHED).

-- Raises a command's rejection: SQLSTATE B2B01, the contract's code in DETAIL, the field
-- in HINT; rolled back with the command's savepoint.
CREATE OR REPLACE FUNCTION b2bd_reject(p_code text, p_field text, p_message text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'B2B01', MESSAGE = p_message, DETAIL = p_code,
        HINT = coalesce(p_field, '');
END
$$;

-- The time a message is written, as b2bd writes it (RFC 3339, UTC, milliseconds).
CREATE OR REPLACE FUNCTION b2bd_now_text() RETURNS text LANGUAGE sql VOLATILE AS $$
    SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A result message: `applied` with p_result (the result object as JSON text) when p_code
-- is NULL, else `rejected` with the error {code, message, field}; a dry run's
-- (b2bd_dry_run, sql/functions/dry_run.sql) has "dry_run": true beside its status. Any argument may be
-- NULL (a command that could not be decoded lacks its type or shop). A single
-- expression: the planner inlines it into the statements that call it.
CREATE OR REPLACE FUNCTION b2bd_result_text(p_event_id uuid, p_command_id text, p_type text, p_shop text,
                                 p_import_id text, p_result text, p_code text, p_message text,
                                 p_field text, p_now text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT '{"event_id":' || coalesce(to_json(p_event_id)::text, 'null')
           || ',"command_id":' || coalesce(to_json(p_command_id)::text, 'null')
           || ',"type":' || coalesce(to_json(p_type)::text, 'null')
           || ',"shop_id":' || coalesce(to_json(p_shop)::text, 'null')
           || ',"import_id":' || coalesce(to_json(p_import_id)::text, 'null')
           || CASE WHEN b2bd_dry_run() THEN ',"dry_run":true' ELSE '' END
           || CASE WHEN p_code IS NULL THEN
                  ',"status":"applied","result":' || coalesce(p_result, 'null') || ',"error":null'
              ELSE
                  ',"status":"rejected","result":null,"error":{"code":' || to_json(p_code)::text
                  || ',"message":' || coalesce(to_json(p_message)::text, 'null')
                  || ',"field":' || coalesce(to_json(p_field)::text, 'null') || '}'
              END
           || ',"processed_at":' || coalesce(to_json(p_now)::text, 'null') || '}'
$$;

-- Whether a result with this key fits the message limit: as outbox_access_size for access events, key
-- and value with 256 bytes for Kafka's framing, under b2bd.max_message_bytes.
CREATE OR REPLACE FUNCTION b2bd_result_fits(p_key bytea, p_text text) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(octet_length(p_key), 0) + octet_length(p_text) + 256
           <= coalesce(nullif(current_setting('b2bd.max_message_bytes', true), '')::bigint, 1048576)
$$;

-- p_text, or SQLSTATE B2B14 when it does not fit (src/apply_limit.c).
CREATE OR REPLACE FUNCTION b2bd_result_checked(p_key bytea, p_text text) RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT b2bd_result_fits(p_key, p_text) THEN
        RAISE EXCEPTION USING ERRCODE = 'B2B14',
            MESSAGE = format('the result would be %s bytes, over the message limit', octet_length(p_text));
    END IF;
    RETURN p_text;
END
$$;

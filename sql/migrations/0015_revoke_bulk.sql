-- 0015: a run of revokes applied with set-based statements (issue 13: removing every
-- contact of a location is thousands of revokes). b2bd hands over consecutive revokes of
-- one batch, without remove_migrated_orders, whose customers are all different, as a
-- JSON array; this function applies each exactly as src/apply_revoke.c would on its own
-- (the same checks in the same order, the same result, the same access events, a seat
-- freed only for a contact row it deleted), a rejected one changing nothing, in a
-- handful of statements for the whole run. Anything it cannot settle row by row (two
-- rows about one customer, a contact that vanished under it, a result over the
-- message limit, an access event over it: B2B13 from 0013's trigger) raises: b2bd rolls
-- the run back to its savepoint and applies the same commands one by one.
-- Frozen (sql/migrations/README.md): the bodies of the functions this migration
-- created or replaced are gone from here; each function lives in sql/functions/.

CREATE TYPE b2bd_revoke_row AS (
    i           integer,  -- the row's place in the run
    command_id  text,     -- lower case, as in the result
    hash        bytea,
    import_id   text,
    msg_key     bytea,    -- the command message's key: the result's key
    shop        text,
    company     text,
    customer    text,
    scope       text,     -- locations, all_locations or company
    locs        text[],   -- scope locations: payload.location_ids, in order
    code        text,     -- a rejection: the contract's code, field and message
    field       text,
    message     text,
    stored      text,     -- a duplicate: the stored result message
    removed     text,     -- applied: removed_roles as JSON, by location id (byte order)
    not_held    text,     -- applied: not_held as JSON, in the order listed
    changed     boolean   -- applied and the customer's access changed: an access event
);

-- 0001: the first schema: tenants, companies, customers, contacts, roles, orders,
-- the command inbox (idempotency), the outbox, and consumed positions.

CREATE TABLE shops (
    shop_id      text PRIMARY KEY,
    name         text NOT NULL,
    account_url  text,
    from_email   text,
    staff_email  text,
    b2b_only     boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE companies (
    shop_id        text NOT NULL,
    company_id     text NOT NULL,
    name           text NOT NULL,
    contact_count  integer NOT NULL DEFAULT 0 CHECK (contact_count >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, company_id)
);

-- Location ids are unique within a shop (the upstream system's own ids).
CREATE TABLE locations (
    shop_id      text NOT NULL,
    location_id  text NOT NULL,
    company_id   text NOT NULL,
    name         text,
    PRIMARY KEY (shop_id, location_id),
    FOREIGN KEY (shop_id, company_id) REFERENCES companies (shop_id, company_id)
);
CREATE INDEX locations_company ON locations (shop_id, company_id);

CREATE TABLE customers (
    shop_id         text NOT NULL,
    customer_id     text NOT NULL,
    email           text,
    first_name      text,
    last_name       text,
    phone           text,
    tags            text[] NOT NULL DEFAULT '{}',
    access_version  bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, customer_id)
);
-- An email identifies at most one customer per shop, compared case-insensitively.
CREATE UNIQUE INDEX customers_email ON customers (shop_id, lower(email));

CREATE TABLE contacts (
    shop_id      text NOT NULL,
    company_id   text NOT NULL,
    customer_id  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, company_id, customer_id),
    FOREIGN KEY (shop_id, company_id) REFERENCES companies (shop_id, company_id),
    FOREIGN KEY (shop_id, customer_id) REFERENCES customers (shop_id, customer_id)
);
CREATE INDEX contacts_customer ON contacts (shop_id, customer_id);

CREATE TABLE roles (
    shop_id      text NOT NULL,
    company_id   text NOT NULL,
    location_id  text NOT NULL,
    customer_id  text NOT NULL,
    role         text NOT NULL CHECK (role IN ('ordering_only', 'location_admin')),
    PRIMARY KEY (shop_id, company_id, customer_id, location_id),
    FOREIGN KEY (shop_id, company_id, customer_id)
        REFERENCES contacts (shop_id, company_id, customer_id) ON DELETE CASCADE,
    FOREIGN KEY (shop_id, location_id) REFERENCES locations (shop_id, location_id)
);
CREATE INDEX roles_customer ON roles (shop_id, customer_id);
CREATE INDEX roles_location ON roles (shop_id, location_id);

CREATE TABLE orders (
    shop_id      text NOT NULL,
    order_id     text NOT NULL,
    customer_id  text NOT NULL,
    status       text NOT NULL CHECK (status IN ('open', 'closed', 'cancelled', 'deleted')),
    company_id   text,
    location_id  text,
    placed_at    timestamptz,
    total        numeric,
    currency     text,
    -- set when the order came into its company by migration (not placed as B2B)
    migrated_by  uuid,
    migrated_at  timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, order_id),
    CHECK ((company_id IS NULL) = (location_id IS NULL))
);
CREATE INDEX orders_customer ON orders (shop_id, customer_id);

-- The inbox: one row per applied command (rejected commands record nothing).
CREATE TABLE commands (
    command_id    uuid PRIMARY KEY,
    shop_id       text NOT NULL,
    type          text NOT NULL,
    payload_hash  bytea NOT NULL,
    import_id     text,
    result        text NOT NULL,   -- the whole result message as published
    processed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commands_import ON commands (import_id) WHERE import_id IS NOT NULL;

-- The outbox: every message b2bd publishes, written in the transaction that caused it.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,      -- the name after the prefix: results, events.access, dlq, ...
    key         bytea,
    value       bytea,
    headers     jsonb,              -- [[name, value], ...] for dead letters
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Exactly-once consumption: the next offset to apply per consumed partition, advanced
-- in the same transaction as the commands it covers.
CREATE TABLE consumer_offsets (
    group_id     text NOT NULL,
    topic        text NOT NULL,
    partition    integer NOT NULL,
    next_offset  bigint NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Outbox rows that Kafka refused for good (too large, invalid): moved here by the relay
-- so that they do not hold up the rest; kept for an operator to inspect and replay.
CREATE TABLE outbox_parked (
    id          bigint PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea,
    value       bytea,
    headers     jsonb,
    created_at  timestamptz NOT NULL,
    parked_at   timestamptz NOT NULL DEFAULT now(),
    error       text NOT NULL
);

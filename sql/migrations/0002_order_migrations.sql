-- 0002: where a customer's order history went, per company.
-- A row binds the customer's history in a company to one location: later migrations must
-- name the same location. It is removed only when `revoke` with remove_migrated_orders
-- reverts the orders (CONTRACT.md, "Migration binding").
CREATE TABLE order_migrations (
    shop_id      text NOT NULL,
    company_id   text NOT NULL,
    customer_id  text NOT NULL,
    location_id  text NOT NULL,
    command_id   uuid NOT NULL,   -- the command that bound it
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shop_id, company_id, customer_id),
    FOREIGN KEY (shop_id, company_id) REFERENCES companies (shop_id, company_id),
    FOREIGN KEY (shop_id, location_id) REFERENCES locations (shop_id, location_id)
);
CREATE INDEX orders_customer_company ON orders (shop_id, customer_id, company_id);

-- 0003: the B2B access email: shop templates and the notification queue, which is also
-- the customer's email timeline (queued, sent, failed with the reason).

CREATE TABLE templates (
    shop_id     text PRIMARY KEY,
    version     integer NOT NULL,
    subject     text NOT NULL,
    text        text NOT NULL,
    html        text NOT NULL,
    command_id  uuid NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    notification_id   uuid PRIMARY KEY,
    shop_id           text NOT NULL,
    customer_id       text NOT NULL,
    company_id        text NOT NULL,
    location_id       text,
    recipient         text NOT NULL CHECK (recipient IN ('customer', 'staff')),
    to_address        text NOT NULL,
    from_address      text,
    -- the email as rendered when it was queued (version 0: the default template)
    template_version  integer NOT NULL,
    subject           text NOT NULL,
    body_text         text NOT NULL,
    body_html         text NOT NULL,
    status            text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'sent', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_error        text,
    message_id        text NOT NULL,
    resend_of         uuid,
    command_id        uuid NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    sent_at           timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'queued';
CREATE INDEX notifications_customer ON notifications (shop_id, customer_id, created_at);

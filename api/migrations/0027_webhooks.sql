-- Merchant webhooks: subscriptions to event types, one delivery per (subscription,
-- event), and every attempt kept so merchants can see what happened.

CREATE TABLE webhook_subscriptions (
    id           uuid PRIMARY KEY,
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    city_id      text NOT NULL REFERENCES cities (id),
    url          text NOT NULL CHECK (url ~ '^https://' AND length(url) <= 2000),
    event_types  text[] NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 50),
    active       boolean NOT NULL DEFAULT true,
    created_by   uuid REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_merchant ON webhook_subscriptions (merchant_id) WHERE active;

CREATE TABLE webhook_deliveries (
    id                uuid PRIMARY KEY,
    subscription_id   uuid NOT NULL REFERENCES webhook_subscriptions (id),
    event_id          uuid NOT NULL,
    event_type        text NOT NULL,
    body              jsonb NOT NULL,
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          integer NOT NULL DEFAULT 0,
    last_status_code  integer,
    last_error        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    finished_at       timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (created_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
    id           uuid PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries (id),
    attempt      integer NOT NULL CHECK (attempt > 0),
    at           timestamptz NOT NULL DEFAULT now(),
    status_code  integer,
    error        text,
    duration_ms  integer NOT NULL,
    UNIQUE (delivery_id, attempt)
);

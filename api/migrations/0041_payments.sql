-- Payment intents (Stripe-like lifecycle), their transition log, refunds,
-- webhook dedupe, commission rates per merchant category, and the sandbox
-- provider's own books (so a simulated timeout can be reconciled honestly).
-- depends: 0040_ledger

CREATE TABLE payment_intents (
    id                  uuid PRIMARY KEY,
    city_id             text REFERENCES cities (id),
    customer_id         uuid,
    order_id            uuid,
    purpose             text NOT NULL CHECK (purpose IN ('payment', 'deposit', 'topup')),
    provider            text NOT NULL,
    provider_ref        text,
    capture_method      text NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    currency            char(3) NOT NULL,
    amount_minor        bigint NOT NULL CHECK (amount_minor > 0),
    amount_captured     bigint NOT NULL DEFAULT 0 CHECK (amount_captured >= 0 AND amount_captured <= amount_minor),
    amount_refunded     bigint NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0 AND amount_refunded <= amount_captured),
    status              text NOT NULL CHECK (status IN ('requires_payment_method', 'requires_action', 'processing',
                                                        'requires_capture', 'succeeded', 'canceled')),
    payment_method      text,
    pending_operation   jsonb,            -- what was in flight at the provider when it stopped answering
    settlement          jsonb,            -- the legs credited at capture, reversed pro rata by refunds
    last_error          text,
    action_url          text,
    authorized_at       timestamptz,
    expires_at          timestamptz,      -- authorization expiry (per provider, 7 days by default)
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_intents_customer ON payment_intents (customer_id, id);
CREATE INDEX payment_intents_order ON payment_intents (order_id);
CREATE INDEX payment_intents_open ON payment_intents (status, updated_at)
    WHERE status IN ('processing', 'requires_capture', 'requires_action');
CREATE UNIQUE INDEX payment_intents_provider_ref ON payment_intents (provider, provider_ref);

CREATE TABLE payment_intent_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intent_id    uuid NOT NULL REFERENCES payment_intents (id),
    from_status  text,
    to_status    text NOT NULL,
    actor        text NOT NULL,          -- 'user:<id>', 'webhook:<provider>', 'reconcile', 'system'
    reason       text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_intent_transitions_intent ON payment_intent_transitions (intent_id, id);

CREATE TABLE payment_refunds (
    id             uuid PRIMARY KEY,
    intent_id      uuid NOT NULL REFERENCES payment_intents (id),
    request_key    text NOT NULL,        -- the caller's idempotency key: one refund per key
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    currency       char(3) NOT NULL,
    bearer         text NOT NULL CHECK (bearer IN ('proportional', 'merchant', 'platform')),
    status         text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    reason         text,
    provider_ref   text,
    failure_reason text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (intent_id, request_key)
);
CREATE INDEX payment_refunds_intent ON payment_refunds (intent_id);
CREATE INDEX payment_refunds_pending ON payment_refunds (created_at) WHERE status = 'pending';

CREATE TABLE payment_webhook_events (
    provider     text NOT NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE merchant_category_commissions (
    category        text PRIMARY KEY,
    commission_bp   integer NOT NULL CHECK (commission_bp BETWEEN 0 AND 10000)
);
INSERT INTO merchant_category_commissions (category, commission_bp) VALUES
    ('default', 1000), ('grocery', 800), ('restaurant', 1500), ('pharmacy', 600), ('services', 1200);

CREATE TABLE sandbox_gateway_charges (
    intent_id       uuid PRIMARY KEY,
    provider_ref    text NOT NULL UNIQUE,
    amount_minor    bigint NOT NULL,
    currency        char(3) NOT NULL,
    state           text NOT NULL,
    captured_minor  bigint NOT NULL DEFAULT 0,
    refunded_minor  bigint NOT NULL DEFAULT 0,
    decline_code    text
);
CREATE TABLE sandbox_gateway_refunds (
    refund_key    text PRIMARY KEY,
    provider_ref  text NOT NULL,
    amount_minor  bigint NOT NULL
);

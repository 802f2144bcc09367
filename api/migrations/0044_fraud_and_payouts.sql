-- Fraud assessments made before each authorization, and payouts: settlement
-- batches per merchant or courier, with holds (open disputes) that block them.
-- depends: 0041_payments

CREATE TABLE payment_fraud_assessments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    intent_id   uuid NOT NULL REFERENCES payment_intents (id),
    scorer      text NOT NULL,             -- 'rules' until the serving scorer answers
    score       double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    decision    text NOT NULL CHECK (decision IN ('approve', 'step_up', 'review')),
    reasons     text[] NOT NULL,
    decided_by  text,                      -- a reviewer's 'user:<id>' for a manual decision
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_fraud_assessments_intent ON payment_fraud_assessments (intent_id, id);

CREATE TABLE payout_holds (
    id           uuid PRIMARY KEY,
    party_kind   text NOT NULL CHECK (party_kind IN ('merchant', 'courier')),
    party_id     uuid NOT NULL,
    reason       text NOT NULL,            -- e.g. 'dispute:<id>'
    opened_at    timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz
);
CREATE INDEX payout_holds_open ON payout_holds (party_kind, party_id) WHERE released_at IS NULL;

CREATE TABLE payout_batches (
    id          uuid PRIMARY KEY,
    currency    char(3) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payouts (
    id             uuid PRIMARY KEY,
    batch_id       uuid NOT NULL REFERENCES payout_batches (id),
    party_kind     text NOT NULL CHECK (party_kind IN ('merchant', 'courier')),
    party_id       uuid NOT NULL,
    currency       char(3) NOT NULL,
    amount_minor   bigint NOT NULL CHECK (amount_minor > 0),
    entry_id       uuid NOT NULL REFERENCES ledger_entries (id),
    status         text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'paid', 'failed')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (batch_id, party_kind, party_id)
);
CREATE INDEX payouts_party ON payouts (party_kind, party_id, created_at);

-- Payout runs: one batch per (currency, period end), so re-running a period
-- returns the batch already made; and disputes, whose open state holds the
-- disputed party's payouts (a payout_holds row) until they are resolved.
-- depends: 0044_fraud_and_payouts

ALTER TABLE payout_batches
    ADD COLUMN period_end       timestamptz NOT NULL,   -- ledger entries before this are settled
    ADD COLUMN min_payout_minor bigint NOT NULL CHECK (min_payout_minor >= 0),
    ADD CONSTRAINT payout_batches_period UNIQUE (currency, period_end);

ALTER TABLE payouts ADD CONSTRAINT payouts_entry UNIQUE (entry_id);

-- The dispute lifecycle as data: (from, to). Anything else is a 409.
CREATE TABLE payment_dispute_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO payment_dispute_transitions VALUES ('open', 'resolved');

CREATE TABLE payment_disputes (
    id            uuid PRIMARY KEY,
    intent_id     uuid REFERENCES payment_intents (id),
    party_kind    text NOT NULL CHECK (party_kind IN ('merchant', 'courier')),
    party_id      uuid NOT NULL,
    status        text NOT NULL CHECK (status IN ('open', 'resolved')),
    reason        text NOT NULL,
    resolution    text,
    hold_id       uuid NOT NULL REFERENCES payout_holds (id),
    opened_by     text NOT NULL,
    resolved_by   text,
    opened_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at   timestamptz,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX payment_disputes_party ON payment_disputes (party_kind, party_id, opened_at);

CREATE TABLE payment_dispute_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dispute_id   uuid NOT NULL REFERENCES payment_disputes (id),
    from_status  text,
    to_status    text NOT NULL,
    actor        text NOT NULL,
    note         text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_dispute_history_dispute ON payment_dispute_history (dispute_id, id);

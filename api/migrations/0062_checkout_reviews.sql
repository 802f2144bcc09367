-- A person's verdict on a checkout held for review: the fraud label training reads, and what
-- lets the same cart through (cleared) or keeps it out (fraud) when the customer retries.

ALTER TABLE checkout_fraud_assessments
    ADD COLUMN fingerprint  text,                      -- the checkout body's request fingerprint
    ADD COLUMN fraud_label  boolean,                   -- the reviewer's verdict: true = fraud
    ADD COLUMN reviewed_by  uuid REFERENCES users (id),
    ADD COLUMN reviewed_at  timestamptz,
    ADD CHECK ((fraud_label IS NULL) = (reviewed_at IS NULL));
CREATE INDEX checkout_fraud_assessments_fingerprint ON checkout_fraud_assessments (customer_id, fingerprint)
    WHERE reviewed_at IS NOT NULL;

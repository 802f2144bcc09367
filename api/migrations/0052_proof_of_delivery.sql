-- Proof of delivery: where the courier was when they said "delivered", and for some merchant
-- categories a code the customer shows (the OTP-style handover couriers ask for). The code is
-- derived from the delivery id under the server pepper, so nothing secret is stored.

CREATE TABLE delivery_proof_rules (
    category  text PRIMARY KEY CHECK (category ~ '^[a-z_]{2,40}$'),
    proof     text NOT NULL CHECK (proof IN ('location', 'code'))
);
INSERT INTO delivery_proof_rules VALUES
    ('pharmacy', 'code'), ('electronics', 'code'), ('jewellery', 'code'), ('alcohol', 'code');

ALTER TABLE deliveries
    ADD COLUMN proof_required  text NOT NULL DEFAULT 'location' CHECK (proof_required IN ('location', 'code')),
    ADD COLUMN proof_failures  integer NOT NULL DEFAULT 0 CHECK (proof_failures >= 0),
    ADD COLUMN proof           jsonb;                 -- {"kind", "lat", "lng", "distance_m"} once delivered

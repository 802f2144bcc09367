-- Real-time scoring at checkout: the fraud assessment of every checkout attempt (kept even
-- when the checkout is refused, so held and stepped-up attempts become labels), the decision
-- and reasons on the order, the ETA promise on each merchant order, and the match the
-- customer ordered from (joins order.created to match.served impressions for training).

CREATE TABLE checkout_fraud_assessments (
    id            uuid PRIMARY KEY,
    city_id       text NOT NULL REFERENCES cities (id),
    customer_id   uuid NOT NULL REFERENCES users (id),
    order_id      uuid REFERENCES orders (id),          -- NULL when the checkout was refused
    scorer        text NOT NULL,                        -- 'nearx-fraud@<version>' or 'rules'
    degraded      text,                                 -- why the model did not answer (rules did)
    score         double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    decision      text NOT NULL CHECK (decision IN ('approve', 'step_up', 'review')),
    outcome       text NOT NULL CHECK (outcome IN ('placed', 'step_up_required', 'held_for_review')),
    reasons       text[] NOT NULL,
    inputs        jsonb NOT NULL,                       -- what the scorer was given (for audits and labels)
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_fraud_assessments_customer ON checkout_fraud_assessments (customer_id, at);
CREATE INDEX checkout_fraud_assessments_review ON checkout_fraud_assessments (city_id, at)
    WHERE outcome = 'held_for_review';

ALTER TABLE orders
    ADD COLUMN session_id      uuid,                    -- the sign-in session (device) that checked out
    ADD COLUMN match_id        uuid,                    -- the match.served the customer ordered from
    ADD COLUMN fraud_decision  text CHECK (fraud_decision IN ('approve', 'step_up', 'review')),
    ADD COLUMN fraud_score     double precision CHECK (fraud_score BETWEEN 0 AND 1),
    ADD COLUMN fraud_reasons   text[],
    ADD COLUMN fraud_scorer    text;
CREATE INDEX orders_session_created ON orders (session_id, created_at);

ALTER TABLE merchant_orders
    ADD COLUMN eta_p50_s          integer CHECK (eta_p50_s >= 0),
    ADD COLUMN eta_p90_s          integer CHECK (eta_p90_s >= eta_p50_s),
    ADD COLUMN eta_model          text,                 -- 'nearx-eta@<version>', NULL for the heuristic
    ADD COLUMN eta_degraded       text,                 -- why the heuristic answered
    ADD COLUMN eta_promised_at    timestamptz;

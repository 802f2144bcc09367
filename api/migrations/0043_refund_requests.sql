-- Refunds the marketplace requests inside its own transaction are 'requested'
-- (reserved against the capture, not yet sent to the provider); the
-- dispatcher in `nearx payments reconcile` sends them.
-- depends: 0041_payments

ALTER TABLE payment_refunds DROP CONSTRAINT payment_refunds_status_check;
ALTER TABLE payment_refunds ADD CONSTRAINT payment_refunds_status_check
    CHECK (status IN ('requested', 'pending', 'succeeded', 'failed'));
CREATE INDEX payment_refunds_requested ON payment_refunds (created_at) WHERE status = 'requested';

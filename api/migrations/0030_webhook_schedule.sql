-- Webhook retries on a persistent schedule: a failed attempt sets when the next
-- one is due and lets the row go, instead of the sender sleeping on its lock.

ALTER TABLE webhook_deliveries ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();

DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- The customer's ETA, stored on the delivery: set on assignment, refreshed after pickup and on every
-- reroute, cleared when the delivery goes back to dispatch. Each change emits delivery.eta_updated.
-- depends: 0054_sos

ALTER TABLE deliveries
    ADD COLUMN eta_at          timestamptz,      -- predicted hand-over time at the door
    ADD COLUMN eta_updated_at  timestamptz;

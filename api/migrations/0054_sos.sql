-- SOS: a courier in trouble raises it with their position; support sees it first (the outbox event
-- carries priority 'critical'), and the courier's deliveries freeze (no transition, no rerouting,
-- no stall release) until an admin resolves it.

CREATE TABLE sos_incidents (
    id           uuid PRIMARY KEY,
    city_id      text NOT NULL REFERENCES cities (id),
    raised_by    uuid NOT NULL REFERENCES users (id),
    courier_id   uuid REFERENCES couriers (id),
    lat          double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng          double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    note         text CHECK (length(note) <= 1000),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    raised_at    timestamptz NOT NULL,
    resolved_at  timestamptz,
    resolved_by  uuid REFERENCES users (id),
    resolution   text,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE INDEX sos_open ON sos_incidents (city_id, raised_at) WHERE status = 'open';

ALTER TABLE deliveries ADD COLUMN frozen_by uuid REFERENCES sos_incidents (id);   -- NULL = not frozen

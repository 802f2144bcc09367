-- Rerouting: problems on a delivery, reported by its courier or detected by the platform (a route
-- deviation, a courier gone silent with the goods), each a row support can see until resolved.
-- Route deviation is tracked per delivery as the closest the courier has come to the current target
-- (pickup, then drop-off) and how many fixes in a row they have been moving away beyond a threshold.
-- depends: 0055_delivery_eta

CREATE TABLE delivery_problems (
    id            uuid PRIMARY KEY,
    delivery_id   uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    city_id       text NOT NULL REFERENCES cities (id),
    courier_id    uuid REFERENCES couriers (id),
    kind          text NOT NULL CHECK (kind IN (
        'vehicle_breakdown', 'cannot_reach_pickup', 'merchant_closed', 'unsafe_area', 'other',
        'route_deviation', 'courier_silent')),
    reported_by   text NOT NULL CHECK (reported_by IN ('courier', 'system')),
    status_at     text NOT NULL,                     -- the delivery's status when it happened
    note          text CHECK (length(note) <= 1000),
    rerouted      boolean NOT NULL,                  -- true: the delivery went back to dispatch
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    reported_at   timestamptz NOT NULL,
    resolved_at   timestamptz
);
CREATE INDEX delivery_problems_open ON delivery_problems (city_id, reported_at) WHERE status = 'open';
CREATE INDEX delivery_problems_delivery ON delivery_problems (delivery_id, kind);

ALTER TABLE deliveries
    ADD COLUMN target_best_m     double precision,   -- closest approach to the current target so far
    ADD COLUMN deviation_fixes   integer NOT NULL DEFAULT 0 CHECK (deviation_fixes >= 0);

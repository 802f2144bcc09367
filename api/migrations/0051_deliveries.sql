-- Deliveries: one per merchant order that needs a courier; the delivery state machine as data;
-- every transition recorded; offers to couriers with a response deadline; emissions on completion.

CREATE TABLE deliveries (
    id                 uuid PRIMARY KEY,
    merchant_order_id  uuid NOT NULL UNIQUE REFERENCES merchant_orders (id),
    city_id            text NOT NULL REFERENCES cities (id),
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN (
        'pending', 'offered', 'assigned', 'at_pickup', 'picked_up', 'delivered', 'cancelled')),
    courier_id         uuid REFERENCES couriers (id),
    emergency          boolean NOT NULL DEFAULT false,
    pickup_lat         double precision NOT NULL CHECK (pickup_lat BETWEEN -90 AND 90),
    pickup_lng         double precision NOT NULL CHECK (pickup_lng BETWEEN -180 AND 180),
    dropoff_lat        double precision NOT NULL CHECK (dropoff_lat BETWEEN -90 AND 90),
    dropoff_lng        double precision NOT NULL CHECK (dropoff_lng BETWEEN -180 AND 180),
    ready_at           timestamptz NOT NULL,
    size               smallint NOT NULL DEFAULT 1 CHECK (size BETWEEN 1 AND 8),
    declines           integer NOT NULL DEFAULT 0 CHECK (declines >= 0),   -- offers declined or expired
    assigned_from_lat  double precision,                                   -- courier position at acceptance
    assigned_from_lng  double precision,
    mode               text,                                               -- set when delivered
    distance_m         double precision CHECK (distance_m >= 0),
    kg_co2e            double precision CHECK (kg_co2e >= 0),
    baseline_kg_co2e   double precision CHECK (baseline_kg_co2e >= 0),     -- petrol car, same legs
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (status IN ('pending', 'offered', 'cancelled') OR courier_id IS NOT NULL)
);
CREATE INDEX deliveries_city_open ON deliveries (city_id, emergency DESC, ready_at) WHERE status = 'pending';
CREATE INDEX deliveries_courier ON deliveries (courier_id, status);

CREATE TABLE delivery_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    actor        text NOT NULL CHECK (actor IN ('system', 'courier', 'admin')),
    PRIMARY KEY (from_status, to_status, actor)
);
INSERT INTO delivery_transitions VALUES
    ('pending', 'offered', 'system'),
    ('offered', 'pending', 'system'),          -- declined or expired: back to the next round
    ('offered', 'assigned', 'courier'),
    ('assigned', 'at_pickup', 'courier'),
    ('at_pickup', 'picked_up', 'courier'),
    ('picked_up', 'delivered', 'courier'),
    ('assigned', 'pending', 'system'),         -- rerouting: the courier went offline or stalled
    ('at_pickup', 'pending', 'system'),
    ('pending', 'cancelled', 'admin'), ('offered', 'cancelled', 'admin'),
    ('assigned', 'cancelled', 'admin'), ('at_pickup', 'cancelled', 'admin');

CREATE TABLE delivery_history (
    id           uuid PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    city_id      text NOT NULL REFERENCES cities (id),
    from_status  text,
    to_status    text NOT NULL,
    actor        text NOT NULL,
    actor_id     uuid REFERENCES users (id),
    reason       text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delivery_history_delivery ON delivery_history (delivery_id, at);

CREATE TABLE delivery_offers (
    id            uuid PRIMARY KEY,
    delivery_id   uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    courier_id    uuid NOT NULL REFERENCES couriers (id),
    city_id       text NOT NULL REFERENCES cities (id),
    round_id      uuid NOT NULL,
    bundle_id     uuid,                                   -- two offers stacked on one trip share it
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'accepted', 'declined', 'expired', 'withdrawn')),
    cost_s        double precision NOT NULL,
    dropoff_eta_s double precision NOT NULL,
    offered_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    responded_at  timestamptz,
    reason        text,
    CHECK (expires_at > offered_at)
);
-- at most one live offer per delivery
CREATE UNIQUE INDEX delivery_offers_live ON delivery_offers (delivery_id) WHERE status = 'pending';
CREATE INDEX delivery_offers_courier ON delivery_offers (courier_id, status, offered_at);
CREATE INDEX delivery_offers_expiry ON delivery_offers (expires_at) WHERE status = 'pending';

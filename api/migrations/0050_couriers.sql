-- Couriers: onboarding and approval, vehicle and capacity, shift state, the latest position
-- (a small, hot table) and the GPS track (append-only, partitioned by UTC day).

CREATE TABLE couriers (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL UNIQUE REFERENCES users (id),
    city_id       text NOT NULL REFERENCES cities (id),          -- home city
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    shift         text NOT NULL DEFAULT 'offline' CHECK (shift IN ('offline', 'online', 'on_break')),
    mode          text NOT NULL
                  CHECK (mode IN ('foot', 'bicycle', 'e_bike', 'ev_scooter', 'motorbike', 'car')),
    vehicle_plate text CHECK (vehicle_plate ~ '^[A-Za-z0-9 -]{2,20}$'),
    bag_slots     smallint NOT NULL CHECK (bag_slots BETWEEN 1 AND 8),
    max_weight_g  integer NOT NULL CHECK (max_weight_g BETWEEN 500 AND 200000),
    documents     jsonb NOT NULL,                                -- [{"kind", "url"}]; object storage later
    idle_since    timestamptz,                                   -- online without work since (fairness)
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (jsonb_typeof(documents) = 'array'),
    CHECK (shift = 'offline' OR status = 'approved')
);
CREATE INDEX couriers_city_status ON couriers (city_id, status, id);
CREATE INDEX couriers_city_online ON couriers (city_id) WHERE shift = 'online';

-- Both state machines as data: (machine, from, to). 'approval' is the admin workflow,
-- 'shift' is the courier's own offline/online/on_break switch.
CREATE TABLE courier_transitions (
    machine      text NOT NULL CHECK (machine IN ('approval', 'shift')),
    from_state   text NOT NULL,
    to_state     text NOT NULL,
    PRIMARY KEY (machine, from_state, to_state)
);
INSERT INTO courier_transitions VALUES
    ('approval', 'pending', 'approved'), ('approval', 'pending', 'rejected'),
    ('approval', 'rejected', 'pending'), ('approval', 'approved', 'suspended'),
    ('approval', 'suspended', 'approved'),
    ('shift', 'offline', 'online'), ('shift', 'online', 'offline'), ('shift', 'online', 'on_break'),
    ('shift', 'on_break', 'online'), ('shift', 'on_break', 'offline');

CREATE TABLE courier_history (
    id          uuid PRIMARY KEY,
    courier_id  uuid NOT NULL REFERENCES couriers (id) ON DELETE CASCADE,
    city_id     text NOT NULL REFERENCES cities (id),
    machine     text NOT NULL CHECK (machine IN ('approval', 'shift')),
    from_state  text,                                            -- NULL for the application itself
    to_state    text NOT NULL,
    actor_id    uuid REFERENCES users (id),                      -- NULL when the system moved it
    reason      text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX courier_history_courier ON courier_history (courier_id, at);

-- The latest usable fix per courier: one row each, updated in place (fillfactor leaves room
-- for HOT updates), read by every dispatch round through its H3 columns.
CREATE TABLE courier_positions (
    courier_id  uuid PRIMARY KEY REFERENCES couriers (id) ON DELETE CASCADE,
    city_id     text NOT NULL REFERENCES cities (id),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng         double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    accuracy_m  real NOT NULL CHECK (accuracy_m >= 0),
    speed_mps   real CHECK (speed_mps >= 0),
    fixed_at    timestamptz NOT NULL,
    h3_r7       text NOT NULL,
    h3_r9       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);
CREATE INDEX courier_positions_city_r7 ON courier_positions (city_id, h3_r7);

-- Every fix received, usable or not (flags say why not): proof of route and analytics.
-- Declarative partitions by UTC day, created on demand by the ingestion path.
CREATE TABLE courier_track (
    courier_id   uuid NOT NULL,
    fixed_at     timestamptz NOT NULL,
    city_id      text NOT NULL,
    lat          double precision NOT NULL,
    lng          double precision NOT NULL,
    accuracy_m   real NOT NULL,
    speed_mps    real,
    flags        text[] NOT NULL DEFAULT '{}',                   -- empty = used
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (courier_id, fixed_at)                           -- a re-sent fix is the same fix
) PARTITION BY RANGE (fixed_at);

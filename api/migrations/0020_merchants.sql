-- Merchants and service providers: the onboarding application, its approval
-- workflow, where they are, when they are open, and who works for them.

CREATE TABLE merchants (
    id                 uuid PRIMARY KEY,
    city_id            text NOT NULL REFERENCES cities (id),   -- resolved from the point, never sent
    kind               text NOT NULL CHECK (kind IN ('merchant', 'provider')),
    category           text NOT NULL CHECK (category ~ '^[a-z_]{2,40}$'),
    name               text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    owner_user_id      uuid NOT NULL REFERENCES users (id),
    status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'approved', 'rejected', 'suspended')),
    lat                double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng                double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    h3_r7              text NOT NULL,
    h3_r9              text NOT NULL,
    delivery_radius_m  integer NOT NULL DEFAULT 3000 CHECK (delivery_radius_m BETWEEN 100 AND 50000),
    prep_time_min      integer NOT NULL DEFAULT 15 CHECK (prep_time_min BETWEEN 0 AND 720),
    paused             boolean NOT NULL DEFAULT false,         -- the busy switch: visible, not selling
    documents          jsonb NOT NULL DEFAULT '[]',            -- object-storage keys of business documents
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchants_city_status ON merchants (city_id, status, id);
CREATE INDEX merchants_h3_r7 ON merchants (h3_r7) WHERE status = 'approved';
CREATE INDEX merchants_h3_r9 ON merchants (h3_r9) WHERE status = 'approved';

-- The approval workflow as data: every allowed move, and who may make it.
CREATE TABLE merchant_status_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO merchant_status_transitions VALUES
    ('pending', 'approved'), ('pending', 'rejected'), ('rejected', 'pending'),
    ('approved', 'suspended'), ('suspended', 'approved');

CREATE TABLE merchant_status_history (
    id           uuid PRIMARY KEY,
    merchant_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    city_id      text NOT NULL REFERENCES cities (id),
    from_status  text,                                        -- NULL for the application itself
    to_status    text NOT NULL,
    actor_id     uuid REFERENCES users (id),
    reason       text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX merchant_status_history_merchant ON merchant_status_history (merchant_id, at);

CREATE TABLE merchant_staff (
    merchant_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id),
    role         text NOT NULL CHECK (role IN ('owner', 'manager', 'staff')),
    added_at     timestamptz NOT NULL DEFAULT now(),
    added_by     uuid REFERENCES users (id),
    PRIMARY KEY (merchant_id, user_id)
);
CREATE INDEX merchant_staff_user ON merchant_staff (user_id);

-- Weekly opening hours in the city's local time (weekday 0 = Monday, ISO order).
CREATE TABLE merchant_hours (
    merchant_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    opens        time NOT NULL,
    closes       time NOT NULL,
    CHECK (opens < closes),
    PRIMARY KEY (merchant_id, weekday, opens)
);

CREATE TABLE merchant_holidays (
    merchant_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    day          date NOT NULL,                               -- a local date in the city's timezone
    reason       text,
    PRIMARY KEY (merchant_id, day)
);

-- Scheduling: provider calendars (weekly availability, exceptions, buffers,
-- travel time, policy windows), bookings that hold then confirm a slot, and a
-- database-enforced guarantee that a provider is never double-booked.

CREATE TABLE provider_calendars (
    provider_id            uuid PRIMARY KEY REFERENCES merchants (id),
    buffer_min             integer NOT NULL DEFAULT 0 CHECK (buffer_min BETWEEN 0 AND 240),     -- after a job
    travel_min             integer NOT NULL DEFAULT 0 CHECK (travel_min BETWEEN 0 AND 240),     -- before a job
    slot_step_min          integer NOT NULL DEFAULT 30 CHECK (slot_step_min BETWEEN 5 AND 240),
    free_cancel_hours      integer NOT NULL DEFAULT 24 CHECK (free_cancel_hours BETWEEN 0 AND 720),
    min_reschedule_hours   integer NOT NULL DEFAULT 2 CHECK (min_reschedule_hours BETWEEN 0 AND 720),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- Weekly availability in the city's local time (weekday 0 = Monday).
CREATE TABLE provider_availability (
    provider_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    starts       time NOT NULL,
    ends         time NOT NULL,
    CHECK (starts < ends),
    PRIMARY KEY (provider_id, weekday, starts)
);

-- A local date off (whole day when starts/ends are NULL, else that window) or with extra hours.
CREATE TABLE provider_exceptions (
    id           uuid PRIMARY KEY,
    provider_id  uuid NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    day          date NOT NULL,
    starts       time,
    ends         time,
    available    boolean NOT NULL,
    reason       text,
    CHECK ((starts IS NULL) = (ends IS NULL) AND (starts IS NULL OR starts < ends)),
    CHECK (available = false OR starts IS NOT NULL)
);
CREATE INDEX provider_exceptions_day ON provider_exceptions (provider_id, day);

CREATE TABLE bookings (
    id                      uuid PRIMARY KEY,
    provider_id             uuid NOT NULL REFERENCES merchants (id),
    service_id              uuid NOT NULL REFERENCES service_listings (id),
    customer_id             uuid NOT NULL REFERENCES users (id),
    city_id                 text NOT NULL REFERENCES cities (id),
    starts_at               timestamptz NOT NULL,
    ends_at                 timestamptz NOT NULL,
    blocked_from            timestamptz NOT NULL,   -- starts_at minus travel time
    blocked_until           timestamptz NOT NULL,   -- ends_at plus buffer
    status                  text NOT NULL CHECK (status IN ('held', 'confirmed', 'released', 'cancelled', 'completed')),
    hold_expires_at         timestamptz NOT NULL,
    price_minor             bigint NOT NULL CHECK (price_minor >= 0),
    deposit_minor           bigint NOT NULL CHECK (deposit_minor >= 0),
    currency                char(3) NOT NULL,
    deposit_status          text CHECK (deposit_status IN ('requested', 'succeeded', 'failed')),
    deposit_reference       text,
    linked_order_id         uuid REFERENCES merchant_orders (id),      -- try-before-buy home trial
    trial_outcome           text CHECK (trial_outcome IN ('kept', 'returned')),
    cancelled_by            text,
    cancellation_fee_minor  bigint NOT NULL DEFAULT 0 CHECK (cancellation_fee_minor >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (starts_at < ends_at AND blocked_from <= starts_at AND blocked_until >= ends_at)
);
CREATE INDEX bookings_provider_active ON bookings (provider_id, blocked_from) WHERE status IN ('held', 'confirmed');
CREATE INDEX bookings_customer ON bookings (customer_id, starts_at);
CREATE INDEX bookings_hold_expiry ON bookings (hold_expires_at) WHERE status = 'held';

-- No double booking, enforced here whatever the application does. The embedded
-- PostgreSQL has no btree_gist (so no exclusion constraint on provider + range):
-- the trigger serialises writers per provider by locking the provider's row,
-- then refuses any overlap with a confirmed booking or an unexpired hold.
CREATE FUNCTION bookings_no_overlap() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status NOT IN ('held', 'confirmed') THEN
        RETURN NEW;
    END IF;
    PERFORM 1 FROM merchants WHERE id = NEW.provider_id FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.provider_id = NEW.provider_id AND b.id <> NEW.id
          AND (b.status = 'confirmed' OR (b.status = 'held' AND b.hold_expires_at > clock_timestamp()))
          AND b.blocked_from < NEW.blocked_until AND NEW.blocked_from < b.blocked_until
    ) THEN
        RAISE EXCEPTION 'provider % is already booked at that time', NEW.provider_id
            USING ERRCODE = 'exclusion_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER bookings_no_overlap
    BEFORE INSERT OR UPDATE OF starts_at, ends_at, blocked_from, blocked_until, status ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_no_overlap();

CREATE TABLE booking_status_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    actor_kind   text NOT NULL CHECK (actor_kind IN ('customer', 'provider', 'admin', 'system')),
    PRIMARY KEY (from_status, to_status, actor_kind)
);
INSERT INTO booking_status_transitions (from_status, to_status, actor_kind)
SELECT f, t, a FROM (VALUES
    ('held', 'confirmed', '{customer}'),
    ('held', 'released', '{customer,system}'),
    ('confirmed', 'confirmed', '{customer,provider,admin}'),     -- a reschedule
    ('confirmed', 'cancelled', '{customer,provider,admin}'),
    ('confirmed', 'completed', '{provider,admin}')
) AS moves (f, t, actors), unnest(actors::text[]) AS a;

CREATE TABLE booking_status_history (
    id           uuid PRIMARY KEY,
    booking_id   uuid NOT NULL REFERENCES bookings (id),
    city_id      text NOT NULL REFERENCES cities (id),
    from_status  text,
    to_status    text NOT NULL,
    actor_kind   text NOT NULL,
    actor_id     uuid REFERENCES users (id),
    reason       text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX booking_status_history_booking ON booking_status_history (booking_id, at);

-- Emergency bookings (urgent repairs): flagged and audited like emergency orders,
-- first in the provider's queue, and, where the provider's calendar allows,
-- able to take a slot that only an unconfirmed normal hold is blocking.

ALTER TABLE bookings
    ADD COLUMN emergency         boolean NOT NULL DEFAULT false,
    ADD COLUMN emergency_reason  text,
    ADD CONSTRAINT bookings_emergency_reason CHECK (NOT emergency OR emergency_reason IS NOT NULL);

CREATE INDEX bookings_provider_queue ON bookings (provider_id, emergency DESC, starts_at)
    WHERE status IN ('held', 'confirmed');

ALTER TABLE provider_calendars
    ADD COLUMN emergency_preempts_holds boolean NOT NULL DEFAULT false;

CREATE TABLE booking_emergency_audit (
    id           uuid PRIMARY KEY,
    booking_id   uuid NOT NULL REFERENCES bookings (id),
    provider_id  uuid NOT NULL REFERENCES merchants (id),
    city_id      text NOT NULL REFERENCES cities (id),
    customer_id  uuid NOT NULL REFERENCES users (id),
    reason       text NOT NULL,
    preempted    uuid[] NOT NULL,      -- normal holds released to make room, if any
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX booking_emergency_audit_provider ON booking_emergency_audit (provider_id, at);

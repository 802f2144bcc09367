-- The demo city that `nearx up` and `nearx demo seed` put into the live database through the
-- platform's own services: which simulated entity became which platform row. A second run finds
-- every entity here and adds nothing; each entity is seeded in one transaction with its row
-- here, so a run stopped half-way resumes where it stopped.

CREATE TABLE demo_entities (
    city_id      text NOT NULL REFERENCES cities (id),
    source_id    text NOT NULL,   -- the simulator's id (kat-m-000001), or a role such as 'admin'
    kind         text NOT NULL CHECK (kind IN ('admin', 'merchant', 'provider', 'courier', 'customer')),
    platform_id  uuid NOT NULL,   -- the merchant, courier profile or user it became
    seeded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (city_id, source_id)
);

-- Safety and insurance: customers can raise SOS on their delivery too; every delivery records the
-- goods-in-transit cover it travels under (policy, insured value in minor units + currency); an SOS
-- incident opens a claim per covered delivery, handed to the insurer after commit (pending -> filed).
-- depends: 0056_delivery_problems

ALTER TABLE sos_incidents
    ADD COLUMN raised_as    text NOT NULL DEFAULT 'courier' CHECK (raised_as IN ('courier', 'customer')),
    ADD COLUMN delivery_id  uuid REFERENCES deliveries (id);          -- a customer's SOS is about one

CREATE TABLE insurance_policies (
    city_id                 text PRIMARY KEY REFERENCES cities (id),
    policy_id               text NOT NULL,
    insurer                 text NOT NULL,
    per_delivery_limit_minor bigint NOT NULL CHECK (per_delivery_limit_minor > 0),
    currency                char(3) NOT NULL
);
-- sandbox cover for every city: goods in transit up to 50,000.00 in the city's currency
INSERT INTO insurance_policies (city_id, policy_id, insurer, per_delivery_limit_minor, currency)
SELECT id, 'sandbox-transit-' || id, 'sandbox', 5000000, currency FROM cities;

ALTER TABLE deliveries
    ADD COLUMN coverage_policy_id   text,
    ADD COLUMN insured_value_minor  bigint CHECK (insured_value_minor >= 0),
    ADD COLUMN insured_currency     char(3),
    ADD CONSTRAINT deliveries_coverage_whole CHECK (
        (coverage_policy_id IS NULL) = (insured_value_minor IS NULL)
        AND (insured_value_minor IS NULL) = (insured_currency IS NULL));

CREATE TABLE insurance_claims (
    id                 uuid PRIMARY KEY,
    delivery_id        uuid NOT NULL REFERENCES deliveries (id),
    city_id            text NOT NULL REFERENCES cities (id),
    incident_id        uuid NOT NULL REFERENCES sos_incidents (id),
    policy_id          text NOT NULL,
    claimed_minor      bigint NOT NULL CHECK (claimed_minor >= 0),
    currency           char(3) NOT NULL,
    reason             text NOT NULL,
    status             text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'filed')),
    insurer_reference  text,
    created_at         timestamptz NOT NULL,
    filed_at           timestamptz,
    UNIQUE (incident_id, delivery_id),
    CHECK ((status = 'filed') = (insurer_reference IS NOT NULL))
);
CREATE INDEX insurance_claims_pending ON insurance_claims (created_at) WHERE status = 'pending';

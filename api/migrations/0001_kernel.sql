-- Kernel tables shared by every bounded context: cities (reference data), the
-- transactional outbox, and idempotency records for retried writes.

CREATE TABLE cities (
    id          text PRIMARY KEY,            -- a stable slug: partitions and shards use it
    name        text NOT NULL,
    country     char(2) NOT NULL,            -- ISO 3166-1 alpha-2
    currency    char(3) NOT NULL,            -- ISO 4217; money in this city is in this currency
    timezone    text NOT NULL,               -- IANA zone, for opening hours and local days
    min_lat     double precision NOT NULL,
    min_lng     double precision NOT NULL,
    max_lat     double precision NOT NULL,
    max_lng     double precision NOT NULL,
    boundary    jsonb NOT NULL,              -- GeoJSON Polygon, [lng, lat] order
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (min_lat < max_lat AND min_lng < max_lng)
);

INSERT INTO cities (id, name, country, currency, timezone, min_lat, min_lng, max_lat, max_lng, boundary) VALUES
('kathmandu', 'Kathmandu Valley', 'NP', 'NPR', 'Asia/Kathmandu', 27.60, 85.20, 27.80, 85.52,
 '{"type": "Polygon", "coordinates": [[[85.20, 27.66], [85.26, 27.60], [85.44, 27.60], [85.52, 27.66], [85.52, 27.76], [85.44, 27.80], [85.26, 27.80], [85.20, 27.74], [85.20, 27.66]]]}'),
('pune', 'Pune', 'IN', 'INR', 'Asia/Kolkata', 18.40, 73.72, 18.66, 74.02,
 '{"type": "Polygon", "coordinates": [[[73.72, 18.46], [73.78, 18.40], [73.96, 18.40], [74.02, 18.46], [74.02, 18.60], [73.96, 18.66], [73.78, 18.66], [73.72, 18.60], [73.72, 18.46]]]}');

CREATE TABLE outbox (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),  -- <entity>.<verb>
    schema_version  integer NOT NULL DEFAULT 1 CHECK (schema_version > 0),
    aggregate_type  text NOT NULL,
    aggregate_id    uuid NOT NULL,
    city_id         text REFERENCES cities (id),
    payload         jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (position) WHERE published_at IS NULL;
CREATE INDEX outbox_aggregate ON outbox (aggregate_type, aggregate_id, position);

CREATE TABLE idempotency_keys (
    scope            text NOT NULL,          -- operation and caller, e.g. 'orders.create:<user id>'
    key              text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash     text NOT NULL,          -- a retry with another body is refused
    response_status  integer,
    response_body    jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Event delivery: the relay's wake-up signal, the default PostgreSQL bus (an
-- append-only stream written by the single active relay), consumer offsets,
-- and the ids each consumer processed (so redelivery changes nothing).

CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('nearx_outbox', '');   -- delivered at commit, folded per transaction
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- seq is assigned by the one relay holding the relay lock, batch after batch,
-- so it is gapless and commit-ordered: consumers may keep a high-water mark here
-- (unlike outbox.position, whose identity values can commit out of order).
CREATE TABLE event_stream (
    seq             bigint PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    event_type      text NOT NULL,
    schema_version  integer NOT NULL,
    aggregate_type  text NOT NULL,
    aggregate_id    uuid NOT NULL,
    city_id         text,
    payload         jsonb NOT NULL,
    occurred_at     timestamptz NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE event_consumer_offsets (
    consumer    text PRIMARY KEY,
    seq         bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Metadata of stored objects (the bytes live in the object store).

CREATE TABLE stored_objects (
    key           text PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES users (id),
    purpose       text NOT NULL CHECK (purpose IN ('document', 'media')),
    content_type  text NOT NULL,
    size_bytes    integer NOT NULL CHECK (size_bytes > 0),
    sha256        char(64) NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stored_objects_owner ON stored_objects (owner_id, created_at);

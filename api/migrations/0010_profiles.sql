-- User profiles: preferences, consent history and addresses.
-- display_name, locale, phone and email stay on users (0002); this adds what
-- only the profile service reads and writes.

-- One row per user, created on first write (absent = defaults).
CREATE TABLE profiles (
    user_id              uuid PRIMARY KEY REFERENCES users (id),
    eco_first            boolean NOT NULL DEFAULT false,
    price_sensitivity    text NOT NULL DEFAULT 'medium' CHECK (price_sensitivity IN ('low', 'medium', 'high')),
    dietary_tags         text[] NOT NULL DEFAULT '{}',   -- values of nearx.dietary.DietaryTag
    allergens            text[] NOT NULL DEFAULT '{}',   -- values of nearx.dietary.Allergen (EU 14)
    favourite_merchants  uuid[] NOT NULL DEFAULT '{}',   -- merchant ids; no FK: merchants live in another context
    deleted_at           timestamptz,                    -- when the account was erased (users.status = 'deleted')
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Consent is evidence (GDPR Art. 7(1), CCPA opt-outs): every grant and withdrawal
-- is a row that is never updated or deleted; the current state is the latest row.
CREATE TABLE consent_events (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users (id),
    purpose      text NOT NULL CHECK (purpose IN ('marketing', 'analytics')),
    granted      boolean NOT NULL,
    recorded_at  timestamptz NOT NULL,
    source       text NOT NULL CHECK (source IN ('user', 'account_deletion'))
);
CREATE INDEX consent_events_user ON consent_events (user_id, purpose, recorded_at DESC, id DESC);

-- Delivery addresses. They belong to a user (global), not to a city, so the key is the
-- address id; city_id is the city the point resolved to. Account erasure keeps the row
-- (orders may point at it) but drops the label and line and coarsens the point to its
-- H3 resolution-7 cell centre.
CREATE TABLE addresses (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id),
    city_id     text NOT NULL REFERENCES cities (id),
    label       text CHECK (label IS NULL OR length(label) BETWEEN 1 AND 40),
    line        text CHECK (line IS NULL OR length(line) BETWEEN 1 AND 300),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lng         double precision NOT NULL CHECK (lng BETWEEN -180 AND 180),
    h3_r7       text,                                  -- one column per resolution in settings.h3_resolutions
    h3_r9       text,
    erased_at   timestamptz,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX addresses_user ON addresses (user_id, id);
CREATE INDEX addresses_h3_r7 ON addresses (h3_r7);
CREATE INDEX addresses_h3_r9 ON addresses (h3_r9);

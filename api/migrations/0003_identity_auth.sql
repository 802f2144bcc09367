-- Sign-in state: sessions with rotating refresh tokens, one-time codes, and the
-- security audit trail. Secrets are never stored in the clear: codes and
-- tokens are stored as keyed or plain SHA-256 digests (hex).

-- A session is one sign-in on one device; its refresh tokens form one family,
-- so reuse of a rotated token can revoke the whole family at once.
CREATE TABLE auth_sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method         text NOT NULL CHECK (method IN ('otp', 'oidc')),
    mfa            boolean NOT NULL DEFAULT false,   -- a second factor was verified in this session
    ip             text,
    user_agent     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoke_reason  text
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id, created_at DESC);

CREATE TABLE refresh_tokens (
    id           uuid PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES auth_sessions (id) ON DELETE CASCADE,
    token_hash   text NOT NULL UNIQUE,              -- SHA-256 of a 256-bit random token
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    rotated_at   timestamptz,                       -- set once it was exchanged; a second use is reuse
    replaced_by  uuid REFERENCES refresh_tokens (id)
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- One-time sign-in codes. Verification first reserves an attempt (attempts + 1
-- under attempts < max_attempts), then compares, so concurrent guesses can never
-- exceed the limit.
CREATE TABLE otp_challenges (
    id            uuid PRIMARY KEY,
    channel       text NOT NULL CHECK (channel IN ('sms', 'email')),
    destination   text NOT NULL,                    -- E.164 phone or lower-cased email
    code_hash     text NOT NULL,                    -- HMAC-SHA256(pepper, destination, code)
    ip            text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer NOT NULL CHECK (max_attempts > 0),
    consumed_at   timestamptz,
    CHECK (attempts <= max_attempts)
);
-- The latest code per destination, and the sliding-window rate limits.
CREATE INDEX otp_challenges_destination ON otp_challenges (destination, created_at DESC);
CREATE INDEX otp_challenges_ip ON otp_challenges (ip, created_at DESC);

-- TOTP second factor: the secret is encrypted (Fernet, key derived from the pepper).
CREATE TABLE totp_factors (
    user_id           uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_encrypted  text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    confirmed_at      timestamptz,
    last_used_step    bigint                         -- refuses a replay of the same 30-second code
);

CREATE TABLE recovery_codes (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash   text NOT NULL UNIQUE,              -- HMAC-SHA256(pepper, code)
    created_at  timestamptz NOT NULL DEFAULT now(),
    used_at     timestamptz
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- The half-way state between the first factor and the second: a short-lived,
-- attempt-limited ticket that only the TOTP step can redeem.
CREATE TABLE mfa_challenges (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash    text NOT NULL UNIQUE,
    method        text NOT NULL CHECK (method IN ('otp', 'oidc')),
    ip            text,
    user_agent    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts  integer NOT NULL CHECK (max_attempts > 0),
    consumed_at   timestamptz,
    CHECK (attempts <= max_attempts)
);

-- OpenID Connect: server-side state of an authorization-code + PKCE flow, and
-- the link between a provider's subject and our user.
CREATE TABLE oidc_flows (
    state          text PRIMARY KEY,                -- 256-bit random, also the lookup key
    provider       text NOT NULL,
    nonce          text NOT NULL,
    code_verifier  text NOT NULL,
    redirect_uri   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    consumed_at    timestamptz
);

CREATE TABLE oidc_identities (
    provider    text NOT NULL,
    subject     text NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_login  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX oidc_identities_user ON oidc_identities (user_id);

-- The security audit trail: append-only, kept when a user is deleted.
CREATE TABLE security_events (
    id           uuid PRIMARY KEY,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_id     uuid REFERENCES users (id) ON DELETE SET NULL,   -- who did it, when not the user
    event        text NOT NULL CHECK (event ~ '^[a-z_]+\.[a-z_]+$'),
    ip           text,
    user_agent   text,
    detail       jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX security_events_user ON security_events (user_id, occurred_at DESC);
CREATE INDEX security_events_time ON security_events (occurred_at);

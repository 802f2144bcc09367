-- Users and their platform roles. Merchant-scoped staff roles live with merchants.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    phone         text UNIQUE,                -- E.164
    email         text UNIQUE,                -- lower-cased by the application
    display_name  text,
    locale        text NOT NULL DEFAULT 'en',
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'deleted')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_roles (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('customer', 'merchant', 'provider', 'courier', 'support', 'admin')),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    granted_by  uuid REFERENCES users (id),
    PRIMARY KEY (user_id, role)
);

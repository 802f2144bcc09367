-- NEARX wallets: one per user and currency, with the KYC tier that sets its limits.
-- The money itself lives in the ledger (customer_wallet and wallet_hold accounts).
-- depends: 0040_ledger

CREATE TABLE wallets (
    user_id     uuid NOT NULL,
    currency    char(3) NOT NULL,
    kyc_tier    smallint NOT NULL DEFAULT 0 CHECK (kyc_tier BETWEEN 0 AND 2),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, currency)
);

-- Stock per variant at the merchant's location, and reservations that hold it
-- for an order until the merchant accepts (committed) or it expires (released).
-- The CHECKs are the last line of defence: stock can never go negative or be
-- over-reserved, whatever the application does.

CREATE TABLE inventory (
    variant_id   uuid PRIMARY KEY REFERENCES product_variants (id) ON DELETE CASCADE,
    merchant_id  uuid NOT NULL REFERENCES merchants (id),   -- the location (one per merchant today)
    city_id      text NOT NULL REFERENCES cities (id),
    on_hand      integer NOT NULL CHECK (on_hand >= 0),
    reserved     integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (reserved <= on_hand)
);
CREATE INDEX inventory_merchant ON inventory (merchant_id);

CREATE TABLE inventory_reservations (
    id           uuid PRIMARY KEY,
    variant_id   uuid NOT NULL REFERENCES inventory (variant_id),
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    city_id      text NOT NULL REFERENCES cities (id),
    order_id     uuid NOT NULL,                  -- the merchant (child) order holding the stock
    quantity     integer NOT NULL CHECK (quantity > 0),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'committed', 'released')),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz
);
CREATE INDEX inventory_reservations_expiry ON inventory_reservations (expires_at) WHERE status = 'active';
CREATE INDEX inventory_reservations_order ON inventory_reservations (order_id);

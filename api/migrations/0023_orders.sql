-- Orders: one parent per checkout, one child per merchant; the order state
-- machine as data; every transition recorded; refunds; emergency audit.

CREATE TABLE delivery_fee_rules (
    city_id       text PRIMARY KEY REFERENCES cities (id),
    base_minor    bigint NOT NULL CHECK (base_minor >= 0),
    per_km_minor  bigint NOT NULL CHECK (per_km_minor >= 0)
);
INSERT INTO delivery_fee_rules VALUES ('kathmandu', 5000, 2000), ('pune', 3000, 1000);

CREATE TABLE promotions (
    city_id             text NOT NULL REFERENCES cities (id),
    code                text NOT NULL CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    percent_bp          integer NOT NULL CHECK (percent_bp BETWEEN 1 AND 10000),
    max_discount_minor  bigint CHECK (max_discount_minor > 0),   -- per merchant order
    valid_until         timestamptz,
    active              boolean NOT NULL DEFAULT true,
    PRIMARY KEY (city_id, code)
);

CREATE TABLE orders (
    id                  uuid PRIMARY KEY,
    customer_id         uuid NOT NULL REFERENCES users (id),
    city_id             text NOT NULL REFERENCES cities (id),
    currency            char(3) NOT NULL,
    delivery_lat        double precision NOT NULL,
    delivery_lng        double precision NOT NULL,
    items_minor         bigint NOT NULL CHECK (items_minor >= 0),
    delivery_fee_minor  bigint NOT NULL CHECK (delivery_fee_minor >= 0),
    tax_minor           bigint NOT NULL CHECK (tax_minor >= 0),
    discount_minor      bigint NOT NULL CHECK (discount_minor >= 0),
    total_minor         bigint NOT NULL CHECK (total_minor >= 0),
    promo_code          text,
    emergency           boolean NOT NULL DEFAULT false,
    emergency_reason    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (total_minor = items_minor + delivery_fee_minor + tax_minor - discount_minor),
    CHECK (NOT emergency OR emergency_reason IS NOT NULL)
);
CREATE INDEX orders_customer ON orders (customer_id, id);
CREATE INDEX orders_city_created ON orders (city_id, created_at);

CREATE TABLE merchant_orders (
    id                      uuid PRIMARY KEY,
    parent_id               uuid NOT NULL REFERENCES orders (id),
    merchant_id             uuid NOT NULL REFERENCES merchants (id),
    customer_id             uuid NOT NULL REFERENCES users (id),
    city_id                 text NOT NULL REFERENCES cities (id),
    currency                char(3) NOT NULL,
    status                  text NOT NULL DEFAULT 'placed' CHECK (status IN (
        'placed', 'accepted', 'rejected', 'preparing', 'ready_for_pickup', 'picked_up', 'delivered',
        'cancelled', 'refunded', 'partially_refunded')),
    items_minor             bigint NOT NULL CHECK (items_minor >= 0),
    delivery_fee_minor      bigint NOT NULL CHECK (delivery_fee_minor >= 0),
    tax_minor               bigint NOT NULL CHECK (tax_minor >= 0),
    discount_minor          bigint NOT NULL CHECK (discount_minor >= 0),
    total_minor             bigint NOT NULL CHECK (total_minor >= 0),
    distance_m              integer NOT NULL CHECK (distance_m >= 0),
    emergency               boolean NOT NULL DEFAULT false,
    accept_by               timestamptz NOT NULL,
    cancelled_by            text CHECK (cancelled_by IN ('customer', 'merchant', 'courier', 'admin', 'system')),
    cancellation_fee_minor  bigint NOT NULL DEFAULT 0 CHECK (cancellation_fee_minor >= 0),
    refunded_minor          bigint NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK (total_minor = items_minor + delivery_fee_minor + tax_minor - discount_minor),
    CHECK (refunded_minor <= total_minor)
);
CREATE INDEX merchant_orders_parent ON merchant_orders (parent_id);
-- the merchant's queue: emergencies first, then oldest first
CREATE INDEX merchant_orders_queue ON merchant_orders (merchant_id, status, emergency DESC, created_at);
CREATE INDEX merchant_orders_overdue ON merchant_orders (accept_by) WHERE status = 'placed';

ALTER TABLE inventory_reservations
    ADD CONSTRAINT inventory_reservations_order_fk FOREIGN KEY (order_id) REFERENCES merchant_orders (id);

CREATE TABLE order_items (
    id                 uuid PRIMARY KEY,
    order_id           uuid NOT NULL REFERENCES merchant_orders (id),
    city_id            text NOT NULL REFERENCES cities (id),
    product_id         uuid NOT NULL REFERENCES products (id),
    variant_id         uuid NOT NULL REFERENCES product_variants (id),
    name               text NOT NULL,
    sku                text NOT NULL,
    quantity           integer NOT NULL CHECK (quantity > 0),
    unit_price_minor   bigint NOT NULL CHECK (unit_price_minor >= 0),
    tax_class          text NOT NULL,
    tax_rate_bp        integer NOT NULL,
    line_minor         bigint NOT NULL CHECK (line_minor >= 0),     -- unit price x quantity, before tax
    tax_minor          bigint NOT NULL CHECK (tax_minor >= 0),
    refunded_quantity  integer NOT NULL DEFAULT 0,
    refunded_minor     bigint NOT NULL DEFAULT 0,
    CHECK (refunded_quantity BETWEEN 0 AND quantity),
    CHECK (refunded_minor BETWEEN 0 AND line_minor + tax_minor)
);
CREATE INDEX order_items_order ON order_items (order_id);

-- The order state machine as data: (from, to, who may make the move).
CREATE TABLE order_status_transitions (
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    actor_kind   text NOT NULL CHECK (actor_kind IN ('customer', 'merchant', 'courier', 'admin', 'system')),
    PRIMARY KEY (from_status, to_status, actor_kind)
);
INSERT INTO order_status_transitions (from_status, to_status, actor_kind)
SELECT f, t, a FROM (VALUES
    ('placed', 'accepted', '{merchant,admin}'),
    ('placed', 'rejected', '{merchant,admin}'),
    ('placed', 'cancelled', '{customer,merchant,admin,system}'),
    ('accepted', 'preparing', '{merchant,admin}'),
    ('accepted', 'cancelled', '{customer,merchant,admin}'),
    ('preparing', 'ready_for_pickup', '{merchant,admin}'),
    ('preparing', 'cancelled', '{merchant,admin}'),
    ('ready_for_pickup', 'picked_up', '{courier,merchant,admin}'),
    ('picked_up', 'delivered', '{courier,admin}'),
    ('delivered', 'partially_refunded', '{merchant,admin}'),
    ('delivered', 'refunded', '{merchant,admin}'),
    ('partially_refunded', 'partially_refunded', '{merchant,admin}'),
    ('partially_refunded', 'refunded', '{merchant,admin}')
) AS moves (f, t, actors), unnest(actors::text[]) AS a;

CREATE TABLE order_status_history (
    id           uuid PRIMARY KEY,
    order_id     uuid NOT NULL REFERENCES merchant_orders (id),
    city_id      text NOT NULL REFERENCES cities (id),
    from_status  text,                                   -- NULL when the order is placed
    to_status    text NOT NULL,
    actor_kind   text NOT NULL,
    actor_id     uuid REFERENCES users (id),
    reason       text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order ON order_status_history (order_id, at);

CREATE TABLE order_refunds (
    id                 uuid PRIMARY KEY,
    order_id           uuid NOT NULL REFERENCES merchant_orders (id),
    city_id            text NOT NULL REFERENCES cities (id),
    amount_minor       bigint NOT NULL CHECK (amount_minor > 0),
    currency           char(3) NOT NULL,
    reason             text NOT NULL,
    items              jsonb NOT NULL,                -- [{item_id, quantity, amount_minor}], [] = whole order
    status             text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'succeeded', 'failed')),
    payment_reference  text,                          -- set by the payments implementation
    requested_by       uuid REFERENCES users (id),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_refunds_order ON order_refunds (order_id);

CREATE TABLE order_emergency_audit (
    id           uuid PRIMARY KEY,
    parent_id    uuid NOT NULL REFERENCES orders (id),
    city_id      text NOT NULL REFERENCES cities (id),
    customer_id  uuid NOT NULL REFERENCES users (id),
    reason       text NOT NULL,
    merchant_ids uuid[] NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);

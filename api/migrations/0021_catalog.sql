-- The catalog: products with variants, tax classes, allergen and dietary labels,
-- try-before-buy and AR metadata; service listings of providers.

-- Tax rates per city and class, in basis points of the tax-exclusive price.
CREATE TABLE tax_rates (
    city_id    text NOT NULL REFERENCES cities (id),
    tax_class  text NOT NULL CHECK (tax_class IN ('standard', 'reduced', 'zero', 'exempt')),
    rate_bp    integer NOT NULL CHECK (rate_bp BETWEEN 0 AND 10000),
    PRIMARY KEY (city_id, tax_class)
);
INSERT INTO tax_rates VALUES
    ('kathmandu', 'standard', 1300), ('kathmandu', 'reduced', 500), ('kathmandu', 'zero', 0), ('kathmandu', 'exempt', 0),
    ('pune', 'standard', 1800), ('pune', 'reduced', 500), ('pune', 'zero', 0), ('pune', 'exempt', 0);

CREATE TABLE products (
    id              uuid PRIMARY KEY,
    merchant_id     uuid NOT NULL REFERENCES merchants (id),
    city_id         text NOT NULL REFERENCES cities (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description     text NOT NULL DEFAULT '',
    category        text NOT NULL CHECK (category ~ '^[a-z_]{2,40}$'),
    tax_class       text NOT NULL DEFAULT 'standard'
                    CHECK (tax_class IN ('standard', 'reduced', 'zero', 'exempt')),
    -- the controlled vocabularies of nearx.dietary (EU 14 allergens; dietary tags)
    allergens       text[] NOT NULL DEFAULT '{}' CHECK (allergens <@ ARRAY[
        'gluten', 'crustaceans', 'eggs', 'fish', 'peanuts', 'soybeans', 'milk', 'tree_nuts', 'celery',
        'mustard', 'sesame', 'sulphites', 'lupin', 'molluscs']::text[]),
    dietary_tags    text[] NOT NULL DEFAULT '{}' CHECK (dietary_tags <@ ARRAY[
        'vegetarian', 'vegan', 'eggetarian', 'jain', 'halal', 'kosher', 'pescatarian', 'gluten_free',
        'lactose_free', 'no_beef', 'no_pork']::text[]),
    images          text[] NOT NULL DEFAULT '{}',
    try_before_buy  boolean NOT NULL DEFAULT false,
    ar_model_url    text,
    ar_format       text CHECK (ar_format IN ('glb', 'gltf', 'usdz')),
    ar_scale        double precision CHECK (ar_scale > 0),
    CHECK ((ar_model_url IS NULL) = (ar_format IS NULL)),
    active          boolean NOT NULL DEFAULT true,
    search          tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, name), 'A')
        || setweight(to_tsvector('simple'::regconfig, replace(category, '_', ' ')), 'B')
        || setweight(to_tsvector('simple'::regconfig, description), 'C')
    ) STORED,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_merchant ON products (merchant_id, id);
CREATE INDEX products_search ON products USING gin (search);
CREATE INDEX products_city_category ON products (city_id, category) WHERE active;

CREATE TABLE product_variants (
    id           uuid PRIMARY KEY,
    product_id   uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    merchant_id  uuid NOT NULL REFERENCES merchants (id),
    city_id      text NOT NULL REFERENCES cities (id),
    sku          text NOT NULL CHECK (length(sku) BETWEEN 1 AND 64),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_minor  bigint NOT NULL CHECK (price_minor >= 0),
    currency     char(3) NOT NULL,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, sku)
);
CREATE INDEX product_variants_product ON product_variants (product_id);

CREATE TABLE service_listings (
    id               uuid PRIMARY KEY,
    merchant_id      uuid NOT NULL REFERENCES merchants (id),
    city_id          text NOT NULL REFERENCES cities (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description      text NOT NULL DEFAULT '',
    duration_min     integer NOT NULL CHECK (duration_min BETWEEN 5 AND 1440),
    price_minor      bigint NOT NULL CHECK (price_minor >= 0),
    deposit_minor    bigint NOT NULL DEFAULT 0 CHECK (deposit_minor >= 0),
    currency         char(3) NOT NULL,
    required_skills  text[] NOT NULL DEFAULT '{}',
    active           boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (deposit_minor <= price_minor)
);
CREATE INDEX service_listings_merchant ON service_listings (merchant_id, id);

-- The retail demo schema ("Zava" style): stores, customers, catalogue, orders, inventory,
-- product embeddings, all owned by pgmcp_owner. Installed by `pg-mcp seed` after
-- `pg-mcp migrate` (pg-mcp's own objects); never by migrate itself. Idempotent, so a database
-- set up by an older pg-mcp (when migrate created this schema) upgrades in place.
CREATE EXTENSION IF NOT EXISTS vector;

-- The demo database is pg-mcp's own, so it is hardened for the application role as a whole:
-- nobody but the owner may create anything in it, not even temporary tables. (`pg-mcp
-- migrate` leaves these database-wide privileges of a user's own database alone; `pg-mcp
-- doctor` reports them.)
DO $$
BEGIN
  EXECUTE format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pgmcp_owner', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS retail AUTHORIZATION pgmcp_owner;
SET LOCAL ROLE pgmcp_owner;

CREATE TABLE IF NOT EXISTS retail.stores (
    store_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_name   text        NOT NULL UNIQUE,
    city         text        NOT NULL,
    region       text        NOT NULL,
    is_online    boolean     NOT NULL DEFAULT false,
    rls_user_id  uuid        NOT NULL UNIQUE,
    opened_on    date        NOT NULL
);
COMMENT ON TABLE retail.stores IS 'Physical and online stores; rls_user_id is the store manager''s row-level-security id';

CREATE TABLE IF NOT EXISTS retail.categories (
    category_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category_name text NOT NULL UNIQUE
);
COMMENT ON TABLE retail.categories IS 'Top-level product categories';

CREATE TABLE IF NOT EXISTS retail.product_types (
    type_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    category_id integer NOT NULL REFERENCES retail.categories (category_id),
    type_name   text    NOT NULL,
    UNIQUE (category_id, type_name)
);
COMMENT ON TABLE retail.product_types IS 'Product types within a category';

CREATE TABLE IF NOT EXISTS retail.products (
    product_id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku                  text          NOT NULL UNIQUE,
    product_name         text          NOT NULL,
    category_id          integer       NOT NULL REFERENCES retail.categories (category_id),
    type_id              integer       NOT NULL REFERENCES retail.product_types (type_id),
    cost                 numeric(10,2) NOT NULL CHECK (cost >= 0),
    base_price           numeric(10,2) NOT NULL CHECK (base_price >= 0),
    gross_margin_percent numeric(5,2)  GENERATED ALWAYS AS
        (CASE WHEN base_price > 0 THEN round((base_price - cost) / base_price * 100, 2) END) STORED,
    product_description  text          NOT NULL,
    discontinued         boolean       NOT NULL DEFAULT false
);
COMMENT ON TABLE retail.products IS 'Product catalogue, shared by all stores';

CREATE TABLE IF NOT EXISTS retail.customers (
    customer_id      integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    first_name       text        NOT NULL,
    last_name        text        NOT NULL,
    email            text        NOT NULL UNIQUE,
    phone            text,
    primary_store_id integer     NOT NULL REFERENCES retail.stores (store_id),
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE retail.customers IS 'Customers, each attached to a primary store (row-level security by store)';

CREATE TABLE IF NOT EXISTS retail.orders (
    order_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES retail.customers (customer_id),
    store_id    integer NOT NULL REFERENCES retail.stores (store_id),
    order_date  date    NOT NULL
);
COMMENT ON TABLE retail.orders IS 'Customer orders (row-level security by store)';

CREATE TABLE IF NOT EXISTS retail.order_items (
    order_item_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id         bigint        NOT NULL REFERENCES retail.orders (order_id),
    store_id         integer       NOT NULL REFERENCES retail.stores (store_id),
    product_id       integer       NOT NULL REFERENCES retail.products (product_id),
    quantity         integer       NOT NULL CHECK (quantity > 0),
    unit_price       numeric(10,2) NOT NULL,
    discount_percent integer       NOT NULL DEFAULT 0 CHECK (discount_percent BETWEEN 0 AND 100),
    total_amount     numeric(12,2) NOT NULL
);
COMMENT ON TABLE retail.order_items IS 'Order lines; store_id is denormalised from orders for row-level security';

CREATE TABLE IF NOT EXISTS retail.inventory (
    store_id    integer NOT NULL REFERENCES retail.stores (store_id),
    product_id  integer NOT NULL REFERENCES retail.products (product_id),
    stock_level integer NOT NULL CHECK (stock_level >= 0),
    PRIMARY KEY (store_id, product_id)
);
COMMENT ON TABLE retail.inventory IS 'Stock per store and product (row-level security by store)';

-- One row per (product, model): changing the embeddings model needs no schema change.
-- The column is an untyped vector; each model gets its own HNSW expression index with
-- its dimension (created by `pg-mcp embed`).
CREATE TABLE IF NOT EXISTS retail.product_description_embeddings (
    product_id  integer     NOT NULL REFERENCES retail.products (product_id) ON DELETE CASCADE,
    model       text        NOT NULL,
    dimensions  integer     NOT NULL CHECK (dimensions > 0),
    embedding   vector      NOT NULL,
    source_hash text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_id, model),
    CHECK (vector_dims(embedding) = dimensions)
);
COMMENT ON TABLE retail.product_description_embeddings IS 'Product description embeddings per model, for semantic search';

-- Indexes for the common joins and filters.
CREATE INDEX IF NOT EXISTS customers_primary_store_id_idx ON retail.customers (primary_store_id);
CREATE INDEX IF NOT EXISTS orders_store_id_order_date_idx ON retail.orders (store_id, order_date);
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON retail.orders (customer_id);
CREATE INDEX IF NOT EXISTS orders_order_date_idx ON retail.orders (order_date);
CREATE INDEX IF NOT EXISTS order_items_order_id_idx ON retail.order_items (order_id);
CREATE INDEX IF NOT EXISTS order_items_product_id_idx ON retail.order_items (product_id);
CREATE INDEX IF NOT EXISTS order_items_store_id_idx ON retail.order_items (store_id);
CREATE INDEX IF NOT EXISTS products_category_id_idx ON retail.products (category_id);
CREATE INDEX IF NOT EXISTS products_type_id_idx ON retail.products (type_id);
CREATE INDEX IF NOT EXISTS product_types_category_id_idx ON retail.product_types (category_id);
CREATE INDEX IF NOT EXISTS inventory_product_id_idx ON retail.inventory (product_id);

RESET ROLE;

//! `pg-mcp seed` loads the same rows for the same options and keeps the data consistent.
//!
//! Needs `PG_MCP_TEST_ADMIN_URL` (a superuser URL); fails when unset (common::require). Runs in a throwaway
//! database with pg-mcp's migrations and the demo schema installed, so the shared test database is left untouched.

use std::str::FromStr as _;

use crate::common::require;
use pg_mcp_demo::{
    HEAD_OFFICE_RLS_USER_ID, SEATTLE_RLS_USER_ID, STORES, SeedOptions, SeedReport, run,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

const TEST_DB: &str = "pgmcp_seed_test";
const SCALE: f64 = 0.05;

/// (table, ORDER BY key) for the checksums.
const TABLES: &[(&str, &str)] = &[
    ("stores", "store_id"),
    ("categories", "category_id"),
    ("product_types", "type_id"),
    ("products", "product_id"),
    ("customers", "customer_id"),
    ("orders", "order_id"),
    ("order_items", "order_item_id"),
    ("inventory", "store_id, product_id"),
];

async fn checksums(pool: &PgPool) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (table, key) in TABLES {
        let sql =
            format!("SELECT md5(string_agg(t::text, ',' ORDER BY {key})) FROM retail.{table} t");
        let sum: Option<String> = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        out.push((*table, sum.unwrap_or_default()));
    }
    out
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn check_counts(pool: &PgPool, r: &SeedReport) {
    let expect = [
        ("SELECT count(*) FROM retail.stores", r.stores),
        ("SELECT count(*) FROM retail.categories", r.categories),
        ("SELECT count(*) FROM retail.product_types", r.product_types),
        ("SELECT count(*) FROM retail.products", r.products),
        ("SELECT count(*) FROM retail.customers", r.customers),
        ("SELECT count(*) FROM retail.orders", r.orders),
        ("SELECT count(*) FROM retail.order_items", r.order_items),
        ("SELECT count(*) FROM retail.inventory", r.inventory),
    ];
    for (sql, n) in expect {
        assert_eq!(count(pool, sql).await, n as i64, "{sql}");
    }
    // Volume rules: fixed stores and catalogue, scaled customers and orders.
    assert!(r.stores >= 8);
    assert_eq!(r.stores, STORES.len());
    assert_eq!(r.categories, 10);
    assert!((40..=60).contains(&r.product_types));
    assert_eq!(r.products, 500);
    assert_eq!(r.customers, (10_000.0 * SCALE).round() as usize);
    assert_eq!(r.orders, (100_000.0 * SCALE).round() as usize);
    assert!(r.order_items >= r.orders && r.order_items <= 5 * r.orders);
    assert!(
        (2 * r.orders..=3 * r.orders).contains(&r.order_items),
        "about 2.5 items per order"
    );
    assert_eq!(r.inventory, r.stores * r.products);
}

async fn check_consistency(pool: &PgPool) {
    let seattle: String = sqlx::query_scalar(
        "SELECT rls_user_id::text FROM retail.stores WHERE store_name = 'Zava Seattle' AND city = 'Seattle'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(seattle, SEATTLE_RLS_USER_ID);
    assert_eq!(
        count(pool, "SELECT count(*) FROM retail.stores WHERE is_online").await,
        1
    );
    let head_office = format!(
        "SELECT count(*) FROM retail.stores WHERE rls_user_id = '{HEAD_OFFICE_RLS_USER_ID}'"
    );
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(head_office))
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no store belongs to head office");

    let zero = [
        // Denormalised store id matches the order.
        "SELECT count(*) FROM retail.order_items i JOIN retail.orders o USING (order_id) \
         WHERE i.store_id <> o.store_id",
        // Line prices and totals.
        "SELECT count(*) FROM retail.order_items i JOIN retail.products p USING (product_id) \
         WHERE i.unit_price <> p.base_price \
            OR i.discount_percent NOT IN (0, 5, 10, 15, 20) \
            OR i.total_amount <> round(i.quantity * i.unit_price * (100 - i.discount_percent) / 100.0, 2)",
        "SELECT count(*) FROM retail.products WHERE cost >= base_price OR cost <= 0",
        "SELECT count(*) FROM retail.orders WHERE order_date NOT BETWEEN '2024-01-01' AND '2025-12-31'",
        // Nobody orders before signing up.
        "SELECT count(*) FROM retail.orders o JOIN retail.customers c USING (customer_id) \
         WHERE c.created_at::date > o.order_date",
        "SELECT count(*) FROM retail.inventory WHERE stock_level NOT BETWEEN 0 AND 300",
        "SELECT count(*) FROM retail.orders o WHERE NOT EXISTS \
         (SELECT 1 FROM retail.order_items i WHERE i.order_id = o.order_id)",
    ];
    for sql in zero {
        assert_eq!(count(pool, sql).await, 0, "{sql}");
    }
    // Most orders come from the customer's own store.
    let own: f64 = sqlx::query_scalar(
        "SELECT avg((o.store_id = c.primary_store_id)::int)::float8 \
         FROM retail.orders o JOIN retail.customers c USING (customer_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(own > 0.6, "own-store share {own}");

    // Identity sequences continue after the explicit ids.
    let mut tx = pool.begin().await.unwrap();
    let next: i32 = sqlx::query_scalar(
        "INSERT INTO retail.categories (category_name) VALUES ('Sequence Probe') RETURNING category_id",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(next, 11);
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn seeding_is_deterministic_and_consistent() {
    let url = require::dependency(
        "seed_determinism::seeding_is_deterministic_and_consistent",
        &require::DATABASE,
        std::env::var("PG_MCP_TEST_ADMIN_URL").ok(),
    );
    let admin_opts = PgConnectOptions::from_str(&url).unwrap();
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin_opts.clone())
        .await
        .unwrap();
    let drop_db = format!("DROP DATABASE IF EXISTS {TEST_DB} WITH (FORCE)");
    sqlx::raw_sql(AssertSqlSafe(drop_db.clone()))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {TEST_DB}")))
        .execute(&admin)
        .await
        .unwrap();

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(admin_opts.database(TEST_DB))
        .await
        .unwrap();
    let lock = crate::common::migration_lock().await;
    pg_mcp::db::migrations::apply(&pool).await.unwrap();
    pg_mcp_demo::install_schema(&pool).await.unwrap();
    lock.close().await;

    let opts = SeedOptions {
        scale: SCALE,
        seed: 42,
    };
    let first = run(&pool, &opts).await.unwrap();
    let sums_first = checksums(&pool).await;
    check_counts(&pool, &first).await;
    check_consistency(&pool).await;

    // Re-seeding replaces everything with the very same rows.
    let second = run(&pool, &opts).await.unwrap();
    assert_eq!(
        SeedReport {
            elapsed: first.elapsed,
            ..second
        },
        first
    );
    assert_eq!(checksums(&pool).await, sums_first);

    // Another seed changes the generated tables but not stores or the catalogue.
    let other = run(&pool, &SeedOptions { seed: 7, ..opts }).await.unwrap();
    check_counts(&pool, &other).await;
    check_consistency(&pool).await;
    let sums_other = checksums(&pool).await;
    for ((table, a), (_, b)) in sums_first.iter().zip(&sums_other) {
        let fixed = matches!(
            *table,
            "stores" | "categories" | "product_types" | "products"
        );
        assert_eq!(fixed, a == b, "{table}: fixed={fixed}");
    }

    pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(drop_db))
        .execute(&admin)
        .await
        .unwrap();
}

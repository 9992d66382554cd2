//! The retail ("Zava") demo: its schema and policies (`migrations/`) and deterministic sample
//! data (`pg-mcp seed --scale N`).
//!
//! The demo is a database like any user's. It knows pg-mcp only through the SQL functions
//! that `pg-mcp migrate` installs (`pgmcp.tenant_id()`, in the demo's policies), so the server
//! has nothing retail in its core, and the demo shows how a user's own schema plugs in.
//!
//! Everything is derived from `SeedOptions::seed` with a fixed PRNG and fixed date anchors,
//! so the same seed and scale always load byte-identical rows. Stores and the product
//! catalogue never vary (embeddings and docs can rely on them); customers, orders, order
//! items and stock levels depend on the seed, and customers and orders grow with the scale.
//! Rows are streamed with `COPY ... FROM STDIN` in ~1 MiB chunks inside one transaction.

mod catalog;

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use chrono::{DateTime, Datelike as _, NaiveDate};
use sqlx::{PgConnection, PgPool};

use catalog::{CATEGORIES, FIRST_NAMES, LAST_NAMES, PRODUCTS_PER_TYPE};

/// Head office sees every store.
pub const HEAD_OFFICE_RLS_USER_ID: &str = "00000000-0000-0000-0000-000000000000";
/// Manager of the Seattle store, the usual tenant in tests and docs.
pub const SEATTLE_RLS_USER_ID: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";

/// A store and its manager's row-level-security id. `STORES[i]` gets `store_id = i + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpec {
    pub name: &'static str,
    pub city: &'static str,
    pub region: &'static str,
    pub is_online: bool,
    pub rls_user_id: &'static str,
    /// ISO date.
    pub opened_on: &'static str,
}

const fn store(
    name: &'static str,
    city: &'static str,
    region: &'static str,
    is_online: bool,
    rls_user_id: &'static str,
    opened_on: &'static str,
) -> StoreSpec {
    StoreSpec {
        name,
        city,
        region,
        is_online,
        rls_user_id,
        opened_on,
    }
}

/// The fixed store list; ids follow this order (Seattle is store 1).
#[rustfmt::skip]
pub const STORES: &[StoreSpec] = &[
    store("Zava Seattle", "Seattle", "Seattle Metro", false, SEATTLE_RLS_USER_ID, "2012-04-14"),
    store("Zava Bellevue", "Bellevue", "Eastside", false, "305e8c20-9d60-47e1-ab30-3525e8128e98", "2014-09-06"),
    store("Zava Tacoma", "Tacoma", "South Sound", false, "c67cd9be-68d6-4456-b0f7-c4f78ffb2818", "2015-05-02"),
    store("Zava Spokane", "Spokane", "Eastern Washington", false, "76f15a3b-6927-4c49-a138-929b40c4041b", "2016-03-19"),
    store("Zava Everett", "Everett", "North Sound", false, "23dab58d-3e00-41f6-a5dd-72096fcfd01f", "2017-08-26"),
    store("Zava Redmond", "Redmond", "Eastside", false, "e54c5035-8161-42f5-aa80-2bdac494d370", "2018-10-13"),
    store("Zava Kirkland", "Kirkland", "Eastside", false, "55128282-9b71-4b23-8d2e-537cc843de5d", "2019-06-08"),
    store("Zava Online", "Online", "Online", true, "600e73a3-11c8-4be7-9e6a-0387f6bb8532", "2020-03-16"),
];

/// Share of customers whose primary store is `STORES[i]`: Seattle and online are biggest.
const CUSTOMER_STORE_WEIGHTS: [u64; 8] = [22, 12, 10, 9, 9, 9, 9, 20];
/// Share of in-person orders per store (the online store's entry is unused).
const ORDER_STORE_WEIGHTS: [u64; 8] = [24, 15, 12, 10, 10, 11, 11, 0];
/// Telephone area code per store (the online store draws from all of them).
const AREA_CODES: [u32; 8] = [206, 425, 253, 509, 425, 425, 425, 0];
const ONLINE_STORE: usize = 7;

/// Customers and orders at scale 1.0.
const BASE_CUSTOMERS: f64 = 10_000.0;
const BASE_ORDERS: f64 = 100_000.0;
/// Orders span 2024-01-01 ..= 2025-12-31, never relative to today.
const ORDER_DAYS: usize = 731;
/// The catalogue uses its own fixed seed so product text and prices never change.
const CATALOG_SEED: u64 = 0x5A5A_CA7A_1065;
/// COPY data is sent whenever the buffer passes this size.
const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedOptions {
    /// Multiplies the number of customers and orders; stores and catalogue are fixed.
    pub scale: f64,
    pub seed: u64,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            scale: 1.0,
            seed: 42,
        }
    }
}

/// Rows loaded per table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub stores: usize,
    pub categories: usize,
    pub product_types: usize,
    pub products: usize,
    pub customers: usize,
    pub orders: usize,
    pub order_items: usize,
    pub inventory: usize,
    pub elapsed: Duration,
}

/// Where the demo's migration history lives: pg-mcp's private schema, apart from pg-mcp's own
/// history, so neither ever touches the other's.
pub const MIGRATIONS_TABLE: &str = "pgmcp_private._demo_migrations";

/// Installs or upgrades the demo's schema, policies and grants (`migrations/`), idempotently.
/// Needs pg-mcp's own objects first (`pg-mcp migrate`): the policies call `pgmcp.tenant_id()`.
pub async fn install_schema(pool: &PgPool) -> anyhow::Result<()> {
    let core: Option<String> = sqlx::query_scalar("SELECT to_regproc('pgmcp.tenant_id')::text")
        .fetch_one(pool)
        .await
        .context("checking for pg-mcp's own objects")?;
    if core.is_none() {
        bail!("pg-mcp's own objects are missing (pgmcp.tenant_id): run `pg-mcp migrate` first");
    }
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
        .run(pool)
        .await
        .context("installing the retail demo schema")?;
    Ok(())
}

/// Replaces all retail data (including embeddings) with freshly generated rows.
///
/// Needs a superuser or BYPASSRLS role: the tables FORCE row-level security, and COPY into
/// a table with active row-level security is refused.
pub async fn run(pool: &PgPool, opts: &SeedOptions) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    if !opts.scale.is_finite() || opts.scale < 0.0 || opts.scale > 1000.0 {
        bail!("scale must be between 0 and 1000, got {}", opts.scale);
    }
    let n_orders = (BASE_ORDERS * opts.scale).round() as usize;
    let mut n_customers = (BASE_CUSTOMERS * opts.scale).round() as usize;
    if n_orders > 0 {
        n_customers = n_customers.max(1);
    }

    let bypasses_rls: Option<bool> = sqlx::query_scalar(
        "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_optional(pool)
    .await
    .context("checking the seeding role")?;
    if bypasses_rls != Some(true) {
        bail!(
            "seeding needs a superuser or BYPASSRLS connection (use the admin database URL): \
             the retail tables force row-level security"
        );
    }

    eprintln!(
        "seed: generating scale {} seed {} ({} customers, {} orders)",
        opts.scale, opts.seed, n_customers, n_orders
    );
    let t = Instant::now();
    let data = generate(opts.seed, n_customers, n_orders);
    eprintln!("seed: generated in {:.2}s", t.elapsed().as_secs_f64());

    let mut tx = pool.begin().await?;
    sqlx::query(
        "TRUNCATE retail.order_items, retail.orders, retail.inventory, retail.customers, \
         retail.product_description_embeddings, retail.products, retail.product_types, \
         retail.categories, retail.stores RESTART IDENTITY CASCADE",
    )
    .execute(&mut *tx)
    .await
    .context("truncating retail tables")?;
    let report = copy_all(&mut tx, &data, opts.seed).await?;
    // COPY stores the explicit ids as given, so move each identity past the highest id.
    sqlx::raw_sql(
        "SELECT setval(pg_get_serial_sequence('retail.stores', 'store_id'), coalesce((SELECT max(store_id) FROM retail.stores), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('retail.categories', 'category_id'), coalesce((SELECT max(category_id) FROM retail.categories), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('retail.product_types', 'type_id'), coalesce((SELECT max(type_id) FROM retail.product_types), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('retail.products', 'product_id'), coalesce((SELECT max(product_id) FROM retail.products), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('retail.customers', 'customer_id'), coalesce((SELECT max(customer_id) FROM retail.customers), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('retail.orders', 'order_id'), coalesce((SELECT max(order_id) FROM retail.orders), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('retail.order_items', 'order_item_id'), coalesce((SELECT max(order_item_id) FROM retail.order_items), 0) + 1, false);",
    )
    .execute(&mut *tx)
    .await
    .context("resetting identity sequences")?;
    tx.commit().await.context("committing seed data")?;

    let t = Instant::now();
    sqlx::raw_sql(
        "ANALYZE retail.stores, retail.categories, retail.product_types, retail.products, \
         retail.customers, retail.orders, retail.order_items, retail.inventory",
    )
    .execute(pool)
    .await
    .context("analyzing retail tables")?;
    eprintln!("seed: analyzed in {:.2}s", t.elapsed().as_secs_f64());

    let report = SeedReport {
        elapsed: started.elapsed(),
        ..report
    };
    eprintln!("seed: done in {:.2}s", report.elapsed.as_secs_f64());
    Ok(report)
}

// ---------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------

/// SplitMix64 with our own range helpers: a tiny generator whose output can never change
/// with a dependency upgrade, which is what "same seed, same rows" needs.
struct Rng(u64);

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// Independent streams per table, so one table's draws never shift another's.
    fn new(seed: u64, stream: u64) -> Self {
        Rng(mix(seed ^ mix(stream.wrapping_mul(GOLDEN).wrapping_add(1))))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is negligible for our small `n`).
    fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// Index drawn from cumulative weights (zero-weight entries are never chosen).
    fn weighted(&mut self, cumulative: &[u64]) -> usize {
        let total = *cumulative.last().expect("non-empty weights");
        let r = self.below(total);
        cumulative.partition_point(|&c| c <= r)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

fn cumulative(weights: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut sum = 0;
    weights
        .into_iter()
        .map(|w| {
            sum += w;
            sum
        })
        .collect()
}

// Stream ids.
const S_CATALOG: u64 = 1;
const S_CUSTOMERS: u64 = 2;
const S_ORDERS: u64 = 3;
const S_ITEMS: u64 = 4;
const S_INVENTORY: u64 = 5;

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

struct ProductType {
    id: i32,
    category_id: i32,
    name: &'static str,
}

struct Product {
    sku: String,
    name: String,
    category: usize,
    type_id: i32,
    cost_cents: i64,
    price_cents: i64,
    description: String,
    discontinued: bool,
    popularity: u64,
}

struct Customer {
    first: &'static str,
    last: &'static str,
    email: String,
    phone: Option<String>,
    store: usize,
    created_secs: i64,
    loyalty: u64,
}

#[derive(Clone, Copy)]
struct Order {
    day: u16,
    store: u8,
    customer_id: u32,
}

#[derive(Clone, Copy)]
struct OrderItem {
    order_id: u32,
    store: u8,
    product: u16,
    quantity: u16,
    discount: u8,
}

struct Data {
    types: Vec<ProductType>,
    products: Vec<Product>,
    customers: Vec<Customer>,
    orders: Vec<Order>,
    items: Vec<OrderItem>,
    days: Vec<String>,
}

fn generate(seed: u64, n_customers: usize, n_orders: usize) -> Data {
    let (types, products) = build_catalog();
    let customers = gen_customers(seed, n_customers);
    let days: Vec<String> = (0..ORDER_DAYS)
        .map(|d| day_date(d).format("%Y-%m-%d").to_string())
        .collect();
    let orders = gen_orders(seed, n_orders, &customers);
    let items = gen_items(seed, &orders, &products);
    Data {
        types,
        products,
        customers,
        orders,
        items,
        days,
    }
}

fn day_date(day: usize) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date") + chrono::Days::new(day as u64)
}

/// Month index 0..24 from 2024-01 for a day index.
fn month_of(day: usize) -> usize {
    let d = day_date(day);
    (d.year() as usize - 2024) * 12 + d.month0() as usize
}

/// Rounds to a shelf price: $x.99 from $20, otherwise $x.49 or $x.99.
fn shelf_price(cents: i64) -> i64 {
    let dollars = cents / 100;
    if cents >= 2000 {
        dollars * 100 + 99
    } else if cents % 100 < 50 {
        (dollars * 100 + 49).max(99)
    } else {
        dollars * 100 + 99
    }
}

fn build_catalog() -> (Vec<ProductType>, Vec<Product>) {
    let mut rng = Rng::new(CATALOG_SEED, S_CATALOG);
    let mut types = Vec::new();
    let mut products = Vec::new();
    for (ci, cat) in CATEGORIES.iter().enumerate() {
        for (ti, ty) in cat.types.iter().enumerate() {
            let type_id = types.len() as i32 + 1;
            types.push(ProductType {
                id: type_id,
                category_id: ci as i32 + 1,
                name: ty.name,
            });
            // Round-robin over items in shuffled order so every item appears.
            let mut item_order: Vec<usize> = (0..ty.items.len()).collect();
            rng.shuffle(&mut item_order);
            let variant_orders: Vec<Vec<usize>> = ty
                .items
                .iter()
                .map(|it| {
                    let mut v: Vec<usize> = (0..it.variants.len()).collect();
                    rng.shuffle(&mut v);
                    v
                })
                .collect();
            let max_variants = ty.items.iter().map(|i| i.variants.len()).max().unwrap_or(0);
            let mut combos: Vec<(usize, usize)> = Vec::new();
            for round in 0..max_variants {
                for &i in &item_order {
                    if let Some(&vi) = variant_orders[i].get(round) {
                        combos.push((i, vi));
                    }
                }
            }
            combos.truncate(PRODUCTS_PER_TYPE);
            assert_eq!(
                combos.len(),
                PRODUCTS_PER_TYPE,
                "type {} has too few variants",
                ty.name
            );
            for (k, &(i, vi)) in combos.iter().enumerate() {
                let item = &ty.items[i];
                let variant = &item.variants[vi];
                let brand = rng.pick(cat.brands);
                let raw = rng.range(i64::from(item.min) * 100, i64::from(item.max) * 100)
                    * i64::from(variant.price_pct)
                    / 100;
                let price_cents = shelf_price(raw);
                let cost_cents = price_cents * rng.range(45, 72) / 100;
                let mut description = format!("{} {}", item.lead, variant.sentence);
                if rng.percent(70) {
                    description.push(' ');
                    description.push_str(rng.pick(ty.uses));
                }
                let popularity = if rng.percent(10) { 4 } else { 1 } * (10 + rng.below(90));
                // Cheap items sell more often than big-ticket ones.
                let price_factor = match price_cents {
                    ..1500 => 6,
                    1500..5000 => 4,
                    5000..15000 => 2,
                    _ => 1,
                };
                products.push(Product {
                    sku: format!("{}-{:02}{:02}", cat.code, ti + 1, k + 1),
                    name: format!("{brand} {} {}", variant.name, item.noun),
                    category: ci,
                    type_id,
                    cost_cents,
                    price_cents,
                    description,
                    discontinued: rng.percent(4),
                    popularity: popularity * price_factor,
                });
            }
        }
    }
    (types, products)
}

/// Unix seconds at midnight UTC.
fn epoch(y: i32, m: u32, d: u32) -> i64 {
    NaiveDate::from_ymd_opt(y, m, d)
        .expect("valid date")
        .and_hms_opt(0, 0, 0)
        .expect("valid time")
        .and_utc()
        .timestamp()
}

fn gen_customers(seed: u64, n: usize) -> Vec<Customer> {
    let mut rng = Rng::new(seed, S_CUSTOMERS);
    let store_cum = cumulative(CUSTOMER_STORE_WEIGHTS);
    let (t2020, t2024, t2026) = (epoch(2020, 1, 1), epoch(2024, 1, 1), epoch(2026, 1, 1));
    let mut customers: Vec<Customer> = (0..n)
        .map(|i| {
            // Most customers predate the order history; the first always does.
            let created_secs = if i == 0 {
                t2020 + 36_000
            } else if rng.percent(70) {
                rng.range(t2020, t2024 - 1)
            } else {
                rng.range(t2024, t2026 - 1)
            };
            let store = rng.weighted(&store_cum);
            let area = match AREA_CODES[store] {
                0 => rng.pick(&[206, 425, 253, 509, 360]),
                a => a,
            };
            let phone = rng
                .percent(92)
                .then(|| format!("{area}-555-{:04}", rng.below(10_000)));
            Customer {
                first: rng.pick(FIRST_NAMES),
                last: rng.pick(LAST_NAMES),
                email: String::new(),
                phone,
                store,
                created_secs,
                loyalty: rng.pick(&[1, 1, 1, 2, 2, 3, 5, 8]),
            }
        })
        .collect();
    // Ids follow sign-up time; the sort is stable, so ties keep generation order.
    customers.sort_by_key(|c| c.created_secs);
    let domains = ["example.com", "example.net", "example.org"];
    let mut seen = std::collections::HashMap::<String, u32>::new();
    for c in &mut customers {
        let local: String = format!("{}.{}", c.first, c.last)
            .chars()
            .filter(|ch| ch.is_ascii_alphanumeric() || *ch == '.')
            .collect::<String>()
            .to_ascii_lowercase();
        let domain = rng.pick(&domains);
        let key = format!("{local}@{domain}");
        let count = seen.entry(key).or_insert(0);
        *count += 1;
        c.email = if *count == 1 {
            format!("{local}@{domain}")
        } else {
            format!("{local}{count}@{domain}")
        };
    }
    customers
}

/// Customers of one store, ordered by sign-up, with cumulative loyalty weights.
struct CustomerPool {
    first_day: Vec<i64>,
    cum: Vec<u64>,
    ids: Vec<u32>,
}

impl CustomerPool {
    /// A customer who had signed up by `day`, weighted by loyalty.
    fn pick(&self, rng: &mut Rng, day: i64) -> Option<u32> {
        let k = self.first_day.partition_point(|&d| d <= day);
        if k == 0 {
            return None;
        }
        Some(self.ids[rng.weighted(&self.cum[..k])])
    }
}

fn pools(customers: &[Customer]) -> (Vec<CustomerPool>, CustomerPool) {
    let t2024 = epoch(2024, 1, 1);
    let new_pool = || CustomerPool {
        first_day: Vec::new(),
        cum: Vec::new(),
        ids: Vec::new(),
    };
    let mut per_store: Vec<CustomerPool> = STORES.iter().map(|_| new_pool()).collect();
    let mut all = new_pool();
    for (i, c) in customers.iter().enumerate() {
        let day = (c.created_secs - t2024).div_euclid(86_400);
        for p in [&mut per_store[c.store], &mut all] {
            let prev = p.cum.last().copied().unwrap_or(0);
            p.first_day.push(day);
            p.cum.push(prev + c.loyalty);
            p.ids.push(i as u32 + 1);
        }
    }
    (per_store, all)
}

fn gen_orders(seed: u64, n: usize, customers: &[Customer]) -> Vec<Order> {
    if n == 0 {
        return Vec::new();
    }
    let mut rng = Rng::new(seed, S_ORDERS);
    // Spring DIY peak, a holiday bump, busier weekends and ~15% growth over two years.
    const MONTH: [u64; 12] = [80, 82, 100, 120, 132, 125, 114, 108, 98, 95, 104, 118];
    let day_cum = cumulative((0..ORDER_DAYS).map(|d| {
        let date = day_date(d);
        let weekday = match date.weekday().num_days_from_monday() {
            5 => 140,
            6 => 125,
            _ => 90,
        };
        MONTH[date.month0() as usize] * weekday * (1000 + d as u64 * 150 / ORDER_DAYS as u64)
    }));
    let store_cum = cumulative(ORDER_STORE_WEIGHTS);
    let (per_store, all) = pools(customers);
    let mut orders: Vec<Order> = (0..n)
        .map(|_| {
            let day = rng.weighted(&day_cum);
            let online_pct = 25 + 8 * day as u64 / ORDER_DAYS as u64;
            let store = if rng.percent(online_pct) {
                ONLINE_STORE
            } else {
                rng.weighted(&store_cum)
            };
            // Mostly the customer's own store; online and the rest from anyone.
            let own_pct = if store == ONLINE_STORE { 50 } else { 85 };
            let d = day as i64;
            let customer_id = if rng.percent(own_pct) {
                per_store[store].pick(&mut rng, d)
            } else {
                None
            }
            .or_else(|| all.pick(&mut rng, d))
            .unwrap_or(1);
            Order {
                day: day as u16,
                store: store as u8,
                customer_id,
            }
        })
        .collect();
    // Order ids follow the calendar.
    orders.sort_by_key(|o| o.day);
    orders
}

fn gen_items(seed: u64, orders: &[Order], products: &[Product]) -> Vec<OrderItem> {
    let mut rng = Rng::new(seed, S_ITEMS);
    // Per month: popularity x category season; discontinued lines stop selling in 2025.
    let month_cum: Vec<Vec<u64>> = (0..24)
        .map(|m| {
            cumulative(products.iter().map(|p| {
                if p.discontinued && m >= 12 {
                    0
                } else {
                    p.popularity * u64::from(CATEGORIES[p.category].season[m % 12])
                }
            }))
        })
        .collect();
    let count_cum = cumulative([30, 25, 20, 15, 10]);
    let discount_cum = cumulative([70, 10, 10, 6, 4]);
    let mut items = Vec::with_capacity(orders.len() * 5 / 2 + 16);
    let mut chosen: Vec<usize> = Vec::with_capacity(5);
    for (oi, order) in orders.iter().enumerate() {
        let table = &month_cum[month_of(usize::from(order.day))];
        let count = rng.weighted(&count_cum) + 1;
        chosen.clear();
        for _ in 0..count {
            // Distinct products per order; give up after a few collisions.
            let product = (0..8)
                .map(|_| rng.weighted(table))
                .find(|p| !chosen.contains(p));
            let Some(product) = product else { continue };
            chosen.push(product);
            let price = products[product].price_cents;
            let quantity = 1 + match price {
                ..1000 => rng.below(3) + if rng.percent(25) { rng.below(5) } else { 0 },
                1000..3000 => rng.below(3),
                3000..10000 => u64::from(rng.percent(15)),
                _ => 0,
            };
            items.push(OrderItem {
                order_id: oi as u32 + 1,
                store: order.store,
                product: product as u16,
                quantity: quantity as u16,
                discount: [0, 5, 10, 15, 20][rng.weighted(&discount_cum)],
            });
        }
    }
    items
}

/// Stock per (store, product): the online warehouse holds more; discontinued lines run out.
fn stock_level(rng: &mut Rng, store: usize, p: &Product) -> i64 {
    if p.discontinued {
        return if rng.percent(80) { 0 } else { rng.range(1, 5) };
    }
    if rng.percent(4) {
        return 0;
    }
    let cap = if STORES[store].is_online { 300 } else { 150 };
    let base = (p.popularity as i64 / 4).min(cap - 20);
    rng.range(1, 20) + rng.range(0, base) + rng.range(0, (cap - 20 - base).max(0)) / 3
}

// ---------------------------------------------------------------------------------------
// COPY
// ---------------------------------------------------------------------------------------

/// Appends a value in COPY text format (tab, newline, backslash escaped).
fn text(buf: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

fn money(buf: &mut Vec<u8>, cents: i64) {
    let _ = write!(buf, "{}.{:02}", cents / 100, cents % 100);
}

/// Streams one table with COPY, sending the buffer every `CHUNK_BYTES`.
async fn copy_table<T>(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    rows: impl IntoIterator<Item = T>,
    mut write_row: impl FnMut(&mut Vec<u8>, T),
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let statement = format!("COPY {table} ({columns}) FROM STDIN");
    let mut copy = conn
        .copy_in_raw(&statement)
        .await
        .with_context(|| format!("starting COPY into {table}"))?;
    let mut buf = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
    for row in rows {
        write_row(&mut buf, row);
        buf.push(b'\n');
        if buf.len() >= CHUNK_BYTES {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        copy.send(buf.as_slice()).await?;
    }
    let rows = copy
        .finish()
        .await
        .with_context(|| format!("COPY into {table}"))? as usize;
    eprintln!(
        "seed: {:<20} {:>9} rows {:>7.2}s",
        table,
        rows,
        started.elapsed().as_secs_f64()
    );
    Ok(rows)
}

async fn copy_all(conn: &mut PgConnection, data: &Data, seed: u64) -> anyhow::Result<SeedReport> {
    let stores = copy_table(
        conn,
        "retail.stores",
        "store_id, store_name, city, region, is_online, rls_user_id, opened_on",
        STORES.iter().enumerate(),
        |b, (i, s)| {
            let _ = write!(b, "{}\t", i + 1);
            text(b, s.name);
            b.push(b'\t');
            text(b, s.city);
            b.push(b'\t');
            text(b, s.region);
            let _ = write!(b, "\t{}\t{}\t{}", s.is_online, s.rls_user_id, s.opened_on);
        },
    )
    .await?;

    let categories = copy_table(
        conn,
        "retail.categories",
        "category_id, category_name",
        CATEGORIES.iter().enumerate(),
        |b, (i, c)| {
            let _ = write!(b, "{}\t", i + 1);
            text(b, c.name);
        },
    )
    .await?;

    let product_types = copy_table(
        conn,
        "retail.product_types",
        "type_id, category_id, type_name",
        data.types.iter(),
        |b, t| {
            let _ = write!(b, "{}\t{}\t", t.id, t.category_id);
            text(b, t.name);
        },
    )
    .await?;

    let products = copy_table(
        conn,
        "retail.products",
        "product_id, sku, product_name, category_id, type_id, cost, base_price, \
         product_description, discontinued",
        data.products.iter().enumerate(),
        |b, (i, p)| {
            let _ = write!(b, "{}\t", i + 1);
            text(b, &p.sku);
            b.push(b'\t');
            text(b, &p.name);
            let _ = write!(b, "\t{}\t{}\t", p.category + 1, p.type_id);
            money(b, p.cost_cents);
            b.push(b'\t');
            money(b, p.price_cents);
            b.push(b'\t');
            text(b, &p.description);
            let _ = write!(b, "\t{}", p.discontinued);
        },
    )
    .await?;

    let customers = copy_table(
        conn,
        "retail.customers",
        "customer_id, first_name, last_name, email, phone, primary_store_id, created_at",
        data.customers.iter().enumerate(),
        |b, (i, c)| {
            let _ = write!(b, "{}\t", i + 1);
            text(b, c.first);
            b.push(b'\t');
            text(b, c.last);
            b.push(b'\t');
            text(b, &c.email);
            b.push(b'\t');
            match &c.phone {
                Some(p) => text(b, p),
                None => b.extend_from_slice(b"\\N"),
            }
            let created = DateTime::from_timestamp(c.created_secs, 0).expect("valid timestamp");
            let _ = write!(
                b,
                "\t{}\t{}",
                c.store + 1,
                created.format("%Y-%m-%d %H:%M:%S+00")
            );
        },
    )
    .await?;

    let orders = copy_table(
        conn,
        "retail.orders",
        "order_id, customer_id, store_id, order_date",
        data.orders.iter().enumerate(),
        |b, (i, o)| {
            let _ = write!(
                b,
                "{}\t{}\t{}\t{}",
                i + 1,
                o.customer_id,
                o.store + 1,
                data.days[usize::from(o.day)]
            );
        },
    )
    .await?;

    let order_items = copy_table(
        conn,
        "retail.order_items",
        "order_item_id, order_id, store_id, product_id, quantity, unit_price, \
         discount_percent, total_amount",
        data.items.iter().enumerate(),
        |b, (i, it)| {
            let price = data.products[usize::from(it.product)].price_cents;
            let gross = i64::from(it.quantity) * price * (100 - i64::from(it.discount));
            // Round half up to cents: gross is in hundredths of a cent.
            let total = (gross + 50) / 100;
            let _ = write!(
                b,
                "{}\t{}\t{}\t{}\t{}\t",
                i + 1,
                it.order_id,
                it.store + 1,
                it.product + 1,
                it.quantity
            );
            money(b, price);
            let _ = write!(b, "\t{}\t", it.discount);
            money(b, total);
        },
    )
    .await?;

    let mut rng = Rng::new(seed, S_INVENTORY);
    let inventory = copy_table(
        conn,
        "retail.inventory",
        "store_id, product_id, stock_level",
        (0..STORES.len()).flat_map(|s| (0..data.products.len()).map(move |p| (s, p))),
        |b, (s, p)| {
            let stock = stock_level(&mut rng, s, &data.products[p]);
            let _ = write!(b, "{}\t{}\t{}", s + 1, p + 1, stock);
        },
    )
    .await?;

    Ok(SeedReport {
        stores,
        categories,
        product_types,
        products,
        customers,
        orders,
        order_items,
        inventory,
        elapsed: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_fixed_and_well_formed() {
        let (types, products) = build_catalog();
        assert_eq!(types.len(), 50);
        assert_eq!(products.len(), 500);
        let skus: std::collections::BTreeSet<_> = products.iter().map(|p| &p.sku).collect();
        assert_eq!(skus.len(), products.len(), "SKUs are unique");
        let names: std::collections::BTreeSet<_> = products.iter().map(|p| &p.name).collect();
        assert_eq!(names.len(), products.len(), "names are unique");
        for p in &products {
            assert!(
                p.cost_cents < p.price_cents && p.cost_cents > 0,
                "{}",
                p.name
            );
            assert!(
                p.description.matches(". ").count() >= 1,
                "{}",
                p.description
            );
        }
        let (_, again) = build_catalog();
        assert!(
            products
                .iter()
                .zip(&again)
                .all(|(a, b)| a.description == b.description && a.price_cents == b.price_cents)
        );
    }

    #[test]
    fn stores_have_distinct_manager_ids() {
        let ids: std::collections::BTreeSet<_> = STORES.iter().map(|s| s.rls_user_id).collect();
        assert_eq!(ids.len(), STORES.len());
        assert!(!ids.contains(HEAD_OFFICE_RLS_USER_ID));
        assert_eq!(STORES[0].rls_user_id, SEATTLE_RLS_USER_ID);
        assert_eq!(STORES.iter().filter(|s| s.is_online).count(), 1);
        assert!(STORES[ONLINE_STORE].is_online);
        for s in STORES {
            uuid::Uuid::parse_str(s.rls_user_id).expect("valid uuid");
        }
    }

    #[test]
    fn emails_are_unique_and_orders_follow_signup() {
        let customers = gen_customers(7, 3000);
        let emails: std::collections::BTreeSet<_> = customers.iter().map(|c| &c.email).collect();
        assert_eq!(emails.len(), customers.len());
        let orders = gen_orders(7, 20_000, &customers);
        let t2024 = epoch(2024, 1, 1);
        for o in &orders {
            let c = &customers[o.customer_id as usize - 1];
            assert!((c.created_secs - t2024).div_euclid(86_400) <= i64::from(o.day));
        }
    }
}

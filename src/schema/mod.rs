//! The schema cache: each database's visible catalogue, loaded on first use and kept current
//! in the background, read by the schema tools, the resources, completions and the `query`
//! tool.
//!
//! A snapshot is immutable and swapped in whole (`arc-swap`), so a reader holds one
//! consistent catalogue for its call while a refresh builds the next. A watcher task per
//! database compares a catalogue fingerprint (`db::catalog::fingerprint`) every
//! `PG_MCP_SCHEMA_CACHE_CHECK_SECS` and reloads on a change, or when the snapshot is older
//! than `PG_MCP_SCHEMA_CACHE_TTL_SECS` (row estimates drift without DDL); `POST
//! /schema_cache/refresh` reloads on demand. Only catalogue data is cached, read as the
//! application role, which is the same for every tenant: no tenant rows ever enter it.

pub mod listing;
pub mod prompt;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Mutex, watch};

use crate::db::Database;
use crate::db::catalog::{self, Catalog, TableSchema};
use crate::error::{AppError, ErrorCode, Result};
use crate::exposure::Exposure;

/// When the cache looks for changes and how old a snapshot may get.
#[derive(Debug, Clone, Copy)]
pub struct CacheTiming {
    /// Between two fingerprint checks.
    pub check_every: Duration,
    /// A snapshot older than this is reloaded even without a detected change.
    pub ttl: Duration,
}

/// One consistent read of a database's catalogue.
#[derive(Debug)]
pub struct Snapshot {
    pub database: String,
    pub catalog: Catalog,
    /// `(schema, name)` -> index into `catalog.tables`.
    by_name: HashMap<(String, String), usize>,
    fingerprint: String,
    /// Starts at 1; each reload that changed the fingerprint adds one.
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
    loaded: Instant,
    pub load_ms: f64,
}

/// What a snapshot holds, for `/schema_cache` and `databases://list`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSummary {
    pub database: String,
    pub tables: usize,
    pub views: usize,
    pub enums: usize,
    pub generation: u64,
    pub loaded_at: DateTime<Utc>,
    pub load_ms: f64,
}

/// `view` and `materialized_view` count as views; everything else as tables.
pub fn is_view(table: &TableSchema) -> bool {
    matches!(table.kind.as_str(), "view" | "materialized_view")
}

impl Snapshot {
    fn new(database: &str, mut catalog: Catalog, fingerprint: String, generation: u64) -> Self {
        // Byte order, not the database's collation: cursors compare names in Rust.
        catalog
            .tables
            .sort_by(|a, b| (&a.schema, &a.table_name).cmp(&(&b.schema, &b.table_name)));
        let by_name = catalog
            .tables
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.schema.clone(), t.table_name.clone()), i))
            .collect();
        Self {
            database: database.to_string(),
            catalog,
            by_name,
            fingerprint,
            generation,
            loaded_at: Utc::now(),
            loaded: Instant::now(),
            load_ms: 0.0,
        }
    }

    /// Tables and views the schema tools list (partitions are described, not listed).
    pub fn listed(&self) -> impl Iterator<Item = &TableSchema> {
        self.catalog.tables.iter().filter(|t| !t.is_partition)
    }

    pub fn summary(&self) -> SnapshotSummary {
        let views = self.listed().filter(|t| is_view(t)).count();
        SnapshotSummary {
            database: self.database.clone(),
            tables: self.listed().count() - views,
            views,
            enums: self.catalog.enums.len(),
            generation: self.generation,
            loaded_at: self.loaded_at,
            load_ms: self.load_ms,
        }
    }

    /// Schema names with their table and view counts, in order.
    pub fn schema_counts(&self) -> BTreeMap<&str, (usize, usize)> {
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for t in self.listed() {
            let entry = counts.entry(t.schema.as_str()).or_default();
            if is_view(t) {
                entry.1 += 1;
            } else {
                entry.0 += 1;
            }
        }
        counts
    }

    /// The table `name` (`table` or `schema.table`, or `schema` given apart) as the database
    /// would resolve it: an explicit schema, else the first schema of the search path that
    /// has it, else the only schema that has it. NOT_FOUND names the closest visible tables.
    pub fn table(&self, name: &str, schema: Option<&str>) -> Result<&TableSchema> {
        let (schema, table) = split_name(name.trim(), schema.map(str::trim));
        let found = self.resolve(schema, table).or_else(|| {
            self.resolve(
                schema.map(str::to_lowercase).as_deref(),
                &table.to_lowercase(),
            )
        });
        if let Some(i) = found {
            return Ok(&self.catalog.tables[i]);
        }
        let qualified = match schema {
            Some(s) => format!("{s}.{table}"),
            None => table.to_string(),
        };
        let mut err = AppError::new(
            ErrorCode::NotFound,
            format!("table or view {qualified:?} does not exist (or is not visible to this role)"),
        );
        let similar = self.similar_names(table);
        if !similar.is_empty() {
            err = err.with_details(serde_json::json!({ "did_you_mean": similar }));
        }
        Err(err)
    }

    /// The index of `table` in `schema`, or on the search path, or in the first schema that has it.
    fn resolve(&self, schema: Option<&str>, table: &str) -> Option<usize> {
        let key = |s: &str| (s.to_string(), table.to_string());
        match schema {
            Some(s) => self.by_name.get(&key(s)).copied(),
            None => self
                .catalog
                .search_path
                .iter()
                .find_map(|s| self.by_name.get(&key(s)).copied())
                .or_else(|| {
                    self.catalog
                        .tables
                        .iter()
                        .position(|t| t.table_name == table)
                }),
        }
    }

    /// Up to five visible `schema.table` names closest to `table` by edit distance.
    fn similar_names(&self, table: &str) -> Vec<String> {
        let limit = 3.max(table.len() / 3);
        let mut scored: Vec<(usize, String)> = self
            .catalog
            .tables
            .iter()
            .map(|t| {
                (
                    strsim::levenshtein(&t.table_name, table),
                    format!("{}.{}", t.schema, t.table_name),
                )
            })
            .filter(|(d, _)| *d <= limit)
            .collect();
        scored.sort();
        scored.into_iter().take(5).map(|(_, n)| n).collect()
    }
}

/// Splits `schema.table` when no schema is given separately.
pub fn split_name<'a>(table: &'a str, schema: Option<&'a str>) -> (Option<&'a str>, &'a str) {
    match (schema, table.split_once('.')) {
        (Some(s), _) => (Some(s), table),
        (None, Some((s, t))) => (Some(s), t),
        (None, None) => (None, table),
    }
}

/// One database's cache.
pub struct SchemaCache {
    db: Arc<Database>,
    exposure: Exposure,
    timing: CacheTiming,
    current: ArcSwapOption<Snapshot>,
    /// One load at a time: concurrent first readers wait for the same load.
    loading: Mutex<()>,
    /// The current generation, for sessions that want `list_changed` notifications.
    changes: watch::Sender<u64>,
    watcher: std::sync::Once,
}

impl SchemaCache {
    pub fn new(db: Arc<Database>, exposure: Exposure, timing: CacheTiming) -> Arc<Self> {
        Arc::new(Self {
            db,
            exposure,
            timing,
            current: ArcSwapOption::empty(),
            loading: Mutex::new(()),
            changes: watch::channel(0).0,
            watcher: std::sync::Once::new(),
        })
    }

    /// The current snapshot, loading it on first use. A hit is a pointer copy.
    pub async fn get(self: &Arc<Self>) -> Result<Arc<Snapshot>> {
        if let Some(snapshot) = self.current.load_full() {
            return Ok(snapshot);
        }
        let _one = self.loading.lock().await;
        if let Some(snapshot) = self.current.load_full() {
            return Ok(snapshot);
        }
        let snapshot = self.reload(None).await?;
        self.start_watcher();
        Ok(snapshot)
    }

    /// The current snapshot if one is loaded (no database work).
    pub fn peek(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Reloads now, whatever the fingerprint says (`POST /schema_cache/refresh`).
    pub async fn refresh(self: &Arc<Self>) -> Result<Arc<Snapshot>> {
        let _one = self.loading.lock().await;
        let snapshot = self.reload(None).await?;
        self.start_watcher();
        Ok(snapshot)
    }

    /// A receiver that sees the generation change whenever a reload changed the catalogue.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Reads the catalogue in one read-only transaction (unless `known` says the fingerprint
    /// is unchanged) and swaps the new snapshot in. The caller holds `loading`.
    async fn reload(&self, known: Option<String>) -> Result<Arc<Snapshot>> {
        let started = Instant::now();
        let mut tx = self.db.pool.begin().await.map_err(AppError::from)?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(AppError::from)?;
        sqlx::query("SET LOCAL statement_timeout = '60s'")
            .execute(&mut *tx)
            .await
            .map_err(AppError::from)?;
        let fingerprint = catalog::fingerprint(&mut tx).await?;
        let previous = self.current.load_full();
        if let (Some(prev), Some(known)) = (&previous, known)
            && known == fingerprint
            && prev.fingerprint == fingerprint
        {
            return Ok(prev.clone());
        }
        let catalog = catalog::load(&mut tx, &self.exposure).await?;
        tx.commit().await.map_err(AppError::from)?;
        let changed = previous
            .as_ref()
            .is_none_or(|p| p.fingerprint != fingerprint);
        let generation = match &previous {
            Some(p) if changed => p.generation + 1,
            Some(p) => p.generation,
            None => 1,
        };
        let mut snapshot = Snapshot::new(&self.db.name, catalog, fingerprint, generation);
        snapshot.load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let snapshot = Arc::new(snapshot);
        self.current.store(Some(snapshot.clone()));
        metrics::counter!("pgmcp_schema_cache_loads_total", "database" => self.db.name.clone())
            .increment(1);
        metrics::gauge!("pgmcp_schema_cache_tables", "database" => self.db.name.clone())
            .set(snapshot.catalog.tables.len() as f64);
        metrics::histogram!("pgmcp_schema_cache_load_seconds", "database" => self.db.name.clone())
            .record(started.elapsed().as_secs_f64());
        if changed && previous.is_some() {
            tracing::info!(database = %self.db.name, generation, tables = snapshot.catalog.tables.len(), "schema changed; cache refreshed");
        }
        if changed && previous.is_some() {
            self.changes.send_replace(generation);
        }
        Ok(snapshot)
    }

    /// One watcher per cache, holding only a weak reference: it ends with the cache.
    fn start_watcher(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let every = self.timing.check_every;
        self.watcher.call_once(|| {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(cache) = weak.upgrade() else { break };
                    cache.check().await;
                }
            });
        });
    }

    /// One watcher step: reload when the fingerprint moved or the snapshot expired. A failure
    /// keeps the old snapshot (readers go on) and is logged.
    async fn check(&self) {
        let expired = self
            .peek()
            .is_none_or(|s| s.loaded.elapsed() >= self.timing.ttl);
        let current = match expired {
            true => None,
            false => match catalog_fingerprint(&self.db).await {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::debug!(database = %self.db.name, error = %e, "schema fingerprint failed");
                    return;
                }
            },
        };
        if let (Some(now), Some(snapshot)) = (&current, self.peek())
            && *now == snapshot.fingerprint
        {
            return;
        }
        let _one = self.loading.lock().await;
        if let Err(e) = self.reload(current).await {
            tracing::warn!(database = %self.db.name, error = %e, "schema cache refresh failed; serving the previous snapshot");
        }
    }
}

async fn catalog_fingerprint(db: &Database) -> Result<String> {
    // In a transaction, like every statement pg-mcp sends: behind PgBouncer's transaction
    // pooling a prepared statement lives only as long as one.
    let mut tx = db.pool.begin().await.map_err(AppError::from)?;
    catalog::fingerprint(&mut tx).await
}

/// The caches of all configured databases.
pub struct SchemaCaches {
    by_database: arc_swap::ArcSwap<BTreeMap<String, Arc<SchemaCache>>>,
    exposure: Exposure,
    timing: CacheTiming,
    /// Serialises changes (read-copy-update of the map).
    changes: std::sync::Mutex<()>,
}

impl SchemaCaches {
    pub fn new(databases: &[Arc<Database>], exposure: &Exposure, timing: CacheTiming) -> Self {
        Self {
            by_database: arc_swap::ArcSwap::from_pointee(
                databases
                    .iter()
                    .map(|db| {
                        (
                            db.name.clone(),
                            SchemaCache::new(db.clone(), exposure.clone(), timing),
                        )
                    })
                    .collect(),
            ),
            exposure: exposure.clone(),
            timing,
            changes: std::sync::Mutex::new(()),
        }
    }

    /// The cache of a configured database (the registry already resolved the name).
    pub fn of(&self, database: &str) -> Result<Arc<SchemaCache>> {
        self.by_database
            .load()
            .get(database)
            .cloned()
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::UnknownDatabase,
                    format!("unknown database {database:?}"),
                )
            })
    }

    pub fn all(&self) -> Vec<Arc<SchemaCache>> {
        self.by_database.load().values().cloned().collect()
    }

    /// A cache for a database added at runtime (replacing any of the same name).
    pub fn insert(&self, db: Arc<Database>) {
        let _change = self.changes.lock().expect("lock");
        let mut next = (**self.by_database.load()).clone();
        next.insert(
            db.name.clone(),
            SchemaCache::new(db, self.exposure.clone(), self.timing),
        );
        self.by_database.store(Arc::new(next));
    }

    /// Drops the cache of a removed database.
    pub fn remove(&self, database: &str) {
        let _change = self.changes.lock().expect("lock");
        let mut next = (**self.by_database.load()).clone();
        next.remove(database);
        self.by_database.store(Arc::new(next));
    }
}

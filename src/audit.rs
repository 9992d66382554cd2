//! The persisted audit log: every tool call, written asynchronously and in batches to
//! `pgmcp_private.audit_log` (migrations/0003) in one database, so `/query_history` and
//! `get_metrics` survive restarts and see every replica that shares the database.
//!
//! A call only puts its entry on a bounded queue (never waits on the database); a full queue
//! drops the entry and counts it (`pgmcp_audit_dropped_total`). One writer task drains the
//! queue every `PG_MCP_AUDIT_FLUSH_MS` or `PG_MCP_AUDIT_BATCH_SIZE` entries and appends them in
//! one read-write transaction on a connection of its own (tenant calls never wait for it, nor
//! it for them). The table is reachable only through pgmcp.audit_* functions that check a proof
//! made with the signing key, so tenant SQL, which runs as the same role, cannot read or forge
//! it. Old rows are pruned after `PG_MCP_AUDIT_RETENTION_DAYS`. At shutdown the queue is
//! flushed. While the table cannot be written (not migrated, database down), readers fall back
//! to the in-memory ring of this process.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use metrics::{counter, gauge};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::AuditSettings;
use crate::db::tenant::now_ms;
use crate::db::{DatabaseRegistry, TenantSigner};
use crate::error::{AppError, Result};
use crate::history::{HistoryEntry, HistoryFilter, QueryHistory};

/// How often old rows are pruned (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Attempts of one batch before its entries are dropped (and counted).
const WRITE_ATTEMPTS: usize = 3;

/// Where a history answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HistorySource {
    /// The persisted audit log: every server sharing the database, across restarts.
    AuditLog,
    /// This process's in-memory ring (the audit log is off or cannot be read).
    Memory,
}

/// What `/query_history` shows of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditStatus {
    pub enabled: bool,
    pub database: String,
    pub instance: String,
    /// The last write or read succeeded.
    pub available: bool,
    pub queued: usize,
    pub written: u64,
    pub dropped: u64,
    pub last_error: Option<String>,
    pub retention_days: u64,
}

/// What the writer task and the readers share.
struct Shared {
    pool: PgPool,
    signer: TenantSigner,
    available: AtomicBool,
    written: AtomicU64,
    /// The highest entry id of this process handed to the table (written or dropped): the
    /// ring's entries above it are still on their way, and readers add them.
    handled_through: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn failed(&self, what: &str, error: &sqlx::Error) {
        let message = format!("{what}: {error}");
        let first = self.available.swap(false, Ordering::Relaxed);
        if first {
            tracing::warn!(error = %message, "audit log unavailable (falling back to the in-memory history)");
        }
        *self.last_error.lock().expect("audit lock") = Some(message);
    }

    fn succeeded(&self) {
        if !self.available.swap(true, Ordering::Relaxed) {
            tracing::info!("audit log available");
        }
    }

    fn drop_entries(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        counter!("pgmcp_audit_dropped_total").increment(n);
    }

    async fn append(&self, batch: &[HistoryEntry]) -> std::result::Result<i32, sqlx::Error> {
        let payload = serde_json::to_string(batch).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let issued = now_ms();
        let proof = self.signer.sign("audit_append", &payload, issued);
        // pgmcp_app's transactions are read-only by default; the function writes as its owner.
        let mut tx = self.pool.begin_with("BEGIN READ WRITE").await?;
        let appended: i32 = sqlx::query_scalar("SELECT pgmcp.audit_append($1, $2, $3)")
            .bind(payload)
            .bind(issued)
            .bind(proof)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(appended)
    }

    async fn prune(&self, retention_days: u64) {
        let secs = (retention_days.saturating_mul(86_400)).min(i64::MAX as u64) as i64;
        let issued = now_ms();
        let proof = self.signer.sign("audit_prune", &secs.to_string(), issued);
        let pruned = async {
            let mut tx = self.pool.begin_with("BEGIN READ WRITE").await?;
            let n: i64 = sqlx::query_scalar("SELECT pgmcp.audit_prune($1, $2, $3)")
                .bind(secs)
                .bind(issued)
                .bind(proof)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        }
        .await;
        match pruned {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, retention_days, "pruned the audit log"),
            Err(e) => self.failed("pruning the audit log", &e),
        }
    }
}

/// The audit log of this process (see the module docs).
pub struct AuditLog {
    settings: AuditSettings,
    instance: String,
    database: String,
    /// `None` when the audit log is off.
    sender: Option<mpsc::Sender<HistoryEntry>>,
    receiver: Mutex<Option<mpsc::Receiver<HistoryEntry>>>,
    shared: Option<Arc<Shared>>,
    stop: CancellationToken,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl AuditLog {
    /// Prepares the log (no database work; the writer starts with [`Self::start`]).
    pub fn new(
        settings: &AuditSettings,
        databases: &DatabaseRegistry,
        signer: &TenantSigner,
    ) -> Result<Self> {
        let db = databases.get(settings.database.as_deref()).map_err(|_| {
            AppError::validation(format!(
                "PG_MCP_AUDIT_DATABASE={:?} is not a configured database (configured: {})",
                settings.database.as_deref().unwrap_or_default(),
                databases.names().join(", ")
            ))
        })?;
        if settings.batch_size == 0 || settings.queue_size == 0 {
            return Err(AppError::validation(
                "PG_MCP_AUDIT_BATCH_SIZE and PG_MCP_AUDIT_QUEUE_SIZE must be at least 1",
            ));
        }
        let instance = settings
            .instance_id
            .clone()
            .unwrap_or_else(default_instance);
        let (sender, receiver, shared) = if settings.enabled {
            let (tx, rx) = mpsc::channel(settings.queue_size);
            let shared = Arc::new(Shared {
                // Two connections: the writer's, and one for readers, so a read never waits
                // behind a flush. Separate from the tenant pool.
                pool: db.side_pool("pg-mcp-audit", 2),
                signer: signer.clone(),
                available: AtomicBool::new(false),
                written: AtomicU64::new(0),
                handled_through: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                last_error: Mutex::new(Some("no write yet".into())),
            });
            (Some(tx), Some(rx), Some(shared))
        } else {
            (None, None, None)
        };
        Ok(Self {
            settings: settings.clone(),
            instance,
            database: db.name.clone(),
            sender,
            receiver: Mutex::new(receiver),
            shared,
            stop: CancellationToken::new(),
            writer: Mutex::new(None),
        })
    }

    /// This server's name in the log.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Starts the writer task (once; later calls do nothing). Call inside the runtime.
    pub fn start(&self) {
        let (Some(shared), Some(mut rx)) = (
            self.shared.clone(),
            self.receiver.lock().expect("audit lock").take(),
        ) else {
            return;
        };
        let settings = self.settings.clone();
        let stop = self.stop.clone();
        let task = tokio::spawn(async move {
            let flush = Duration::from_millis(settings.flush_ms.max(1));
            let mut prune = tokio::time::interval(PRUNE_EVERY);
            prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut batch = Vec::with_capacity(settings.batch_size);
            // Proves the table is there before any call, so readers know at once.
            write_batch(&shared, &mut batch).await;
            loop {
                let first = tokio::select! {
                    entry = rx.recv() => entry,
                    _ = stop.cancelled() => None,
                    _ = prune.tick(), if settings.retention_days > 0 => {
                        shared.prune(settings.retention_days).await;
                        continue;
                    }
                };
                let Some(first) = first else { break };
                batch.push(first);
                let deadline = tokio::time::Instant::now() + flush;
                while batch.len() < settings.batch_size {
                    tokio::select! {
                        entry = rx.recv() => match entry {
                            Some(e) => batch.push(e),
                            None => break,
                        },
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = stop.cancelled() => break,
                    }
                }
                gauge!("pgmcp_audit_queue_depth").set(rx.len() as f64);
                write_batch(&shared, &mut batch).await;
            }
            // Shutdown: what is queued still goes in.
            rx.close();
            while let Some(entry) = rx.recv().await {
                batch.push(entry);
                if batch.len() == settings.batch_size {
                    write_batch(&shared, &mut batch).await;
                }
            }
            write_batch(&shared, &mut batch).await;
        });
        *self.writer.lock().expect("audit lock") = Some(task);
    }

    /// Queues one call's entry; the call never waits. A full queue drops a read's entry
    /// (counted); a write's ([`HistoryEntry::is_write`]) waits for room in a task of its own,
    /// since writes are always audited.
    pub fn submit(&self, entry: HistoryEntry) {
        let (Some(sender), Some(shared)) = (&self.sender, &self.shared) else {
            return;
        };
        match sender.try_send(entry) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(entry)) if entry.is_write() => {
                let (sender, shared) = (sender.clone(), shared.clone());
                tokio::spawn(async move {
                    if sender.send(entry).await.is_err() {
                        shared.drop_entries(1);
                    }
                });
            }
            Err(_) => shared.drop_entries(1),
        }
    }

    /// Whether readers should use the table: on, and its last write or read succeeded.
    pub fn is_available(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.available.load(Ordering::Relaxed))
    }

    /// Entries newest first, filtered (the limit is capped at 10,000 by the database).
    pub async fn read(&self, filter: &HistoryFilter) -> Result<Vec<HistoryEntry>> {
        let shared = self
            .shared
            .as_ref()
            .ok_or_else(|| AppError::internal("the audit log is off"))?;
        let filter = serde_json::json!({
            "database": filter.connection_id,
            "tenant": filter.tenant,
            "instance": filter.instance,
            "status": filter.status,
            "limit": filter.limit.unwrap_or(100),
        })
        .to_string();
        let issued = now_ms();
        let proof = shared.signer.sign("audit_read", &filter, issued);
        let rows: std::result::Result<Vec<sqlx::types::Json<HistoryEntry>>, sqlx::Error> = async {
            let mut tx = shared.pool.begin().await?;
            sqlx::query_scalar("SELECT pgmcp.audit_read($1, $2, $3)")
                .bind(&filter)
                .bind(issued)
                .bind(proof)
                .fetch_all(&mut *tx)
                .await
        }
        .await;
        match rows {
            Ok(rows) => {
                shared.succeeded();
                Ok(rows.into_iter().map(|j| j.0).collect())
            }
            Err(e) => {
                shared.failed("reading the audit log", &e);
                Err(AppError::from(e))
            }
        }
    }

    /// The history a reader sees, newest first: the audit log when it can be read, else this
    /// process's ring (with the reason).
    pub async fn recent(
        &self,
        ring: &QueryHistory,
        filter: &HistoryFilter,
    ) -> (Vec<HistoryEntry>, HistorySource, Option<String>) {
        if self.shared.is_none() {
            return (ring.query(filter), HistorySource::Memory, None);
        }
        match self.read(filter).await {
            Ok(mut entries) => {
                // Read your own calls: this process's entries not yet written come from the
                // ring, so a get_metrics right after a call counts it.
                let handled = self
                    .shared
                    .as_ref()
                    .map_or(0, |s| s.handled_through.load(Ordering::Relaxed));
                let pending: Vec<HistoryEntry> = ring
                    .query(filter)
                    .into_iter()
                    .filter(|e| e.id > handled && e.instance == self.instance)
                    .filter(|e| {
                        !entries
                            .iter()
                            .any(|l| l.instance == e.instance && l.id == e.id)
                    })
                    .collect();
                if !pending.is_empty() {
                    entries.extend(pending);
                    entries.sort_by_key(|e| std::cmp::Reverse(e.time));
                    entries.truncate(filter.limit.unwrap_or(100).min(10_000));
                }
                (entries, HistorySource::AuditLog, None)
            }
            Err(e) => (ring.query(filter), HistorySource::Memory, Some(e.message)),
        }
    }

    /// The log's state for `/query_history`.
    pub fn status(&self) -> AuditStatus {
        let shared = self.shared.as_ref();
        AuditStatus {
            enabled: self.settings.enabled,
            database: self.database.clone(),
            instance: self.instance.clone(),
            available: self.is_available(),
            queued: self
                .sender
                .as_ref()
                .map_or(0, |s| s.max_capacity() - s.capacity()),
            written: shared.map_or(0, |s| s.written.load(Ordering::Relaxed)),
            dropped: shared.map_or(0, |s| s.dropped.load(Ordering::Relaxed)),
            last_error: shared.and_then(|s| s.last_error.lock().expect("audit lock").clone()),
            retention_days: self.settings.retention_days,
        }
    }

    /// Writes what is queued and stops the writer, waiting at most `limit`.
    pub async fn shutdown(&self, limit: Duration) {
        self.stop.cancel();
        let task = self.writer.lock().expect("audit lock").take();
        if let Some(task) = task
            && tokio::time::timeout(limit, task).await.is_err()
        {
            tracing::warn!(?limit, "the audit log was not flushed in time");
        }
        if let Some(shared) = &self.shared {
            shared.pool.close().await;
        }
    }
}

/// Appends `batch` (retrying twice), then empties it. Entries that could not be written are
/// dropped and counted.
async fn write_batch(shared: &Shared, batch: &mut Vec<HistoryEntry>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let started = std::time::Instant::now();
        match shared.append(batch).await {
            Ok(appended) => {
                shared.succeeded();
                shared
                    .written
                    .fetch_add(appended.max(0) as u64, Ordering::Relaxed);
                counter!("pgmcp_audit_written_total").increment(appended.max(0) as u64);
                metrics::histogram!("pgmcp_audit_write_seconds")
                    .record(started.elapsed().as_secs_f64());
                break;
            }
            Err(e) => {
                counter!("pgmcp_audit_write_failures_total").increment(1);
                shared.failed("writing the audit log", &e);
                if attempt >= WRITE_ATTEMPTS {
                    shared.drop_entries(batch.len() as u64);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
            }
        }
    }
    if let Some(last) = batch.iter().map(|e| e.id).max() {
        shared.handled_through.fetch_max(last, Ordering::Relaxed);
    }
    batch.clear();
}

/// `host-1a2b3c`: the host name (a pod's name under Kubernetes) and a random suffix, so two
/// processes on one host and a restarted one are told apart.
fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pg-mcp".into());
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

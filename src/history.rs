//! Query history: one entry per tool call, kept in a bounded in-memory ring of this process
//! (always) and in the persisted audit log (`audit`, when on), for `/query_history` and the
//! `get_metrics` tool. SQL is masked (literals replaced by `?`) and truncated; parameter
//! values are kept only when configured; secrets never enter it (the server never puts them
//! in SQL).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

const MAX_SQL_CHARS: usize = 4_000;

/// One tool call. Field names are the audit log's (migrations/0003) and `/query_history`'s.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HistoryEntry {
    /// Sequence number within its server instance.
    pub id: u64,
    /// The server that ran the call (`PG_MCP_INSTANCE_ID`).
    pub instance: String,
    pub time: DateTime<Utc>,
    /// The HTTP request's `x-request-id` (none over stdio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub tool: String,
    pub database: String,
    #[serde(default)]
    pub tenant: Option<String>,
    /// The verified caller (the JWT's `sub`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Each statement's first keyword (`SELECT`, `INSERT,UPDATE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_kind: Option<String>,
    /// The SQL with literals masked, or what a non-SQL tool did (never its free text).
    #[serde(default)]
    pub sql: Option<String>,
    #[serde(default)]
    pub param_count: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Value>>,
    pub duration_ms: f64,
    #[serde(default)]
    pub rows: Option<u64>,
    /// Rows inserted, updated or deleted (write mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected_rows: Option<u64>,
    /// `OK` or the error code.
    pub outcome: String,
    /// The error code, none when the call succeeded.
    #[serde(default)]
    pub error_code: Option<String>,
}

impl HistoryEntry {
    /// A write or an attempted one: it changed rows, is a write tool, or ran a statement that
    /// is not a query. Writes are always audited.
    pub fn is_write(&self) -> bool {
        const READS: [&str; 6] = ["SELECT", "WITH", "VALUES", "TABLE", "EXPLAIN", "SHOW"];
        self.affected_rows.is_some()
            || matches!(self.tool.as_str(), "execute_transaction" | "batch_execute")
            || self
                .statement_kind
                .as_deref()
                .is_some_and(|kinds| kinds.split(',').any(|k| !READS.contains(&k.trim())))
    }

    /// Cuts the SQL to the history's limit.
    fn truncate_sql(&mut self) {
        if let Some(sql) = self
            .sql
            .as_mut()
            .filter(|s| s.chars().count() > MAX_SQL_CHARS)
        {
            *sql = sql.chars().take(MAX_SQL_CHARS).collect::<String>() + "…";
        }
    }
}

/// One of the slowest recent calls, for `get_metrics`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SlowQuery {
    pub tool: String,
    pub sql: Option<String>,
    pub duration_ms: f64,
    pub time: DateTime<Utc>,
    pub outcome: String,
}

/// Aggregates over the calls the history holds (seed 004's per-query metrics).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HistoryStats {
    /// Calls in the window (the history's capacity at most).
    pub window_size: usize,
    pub total_queries: usize,
    pub successful_queries: usize,
    pub failed_queries: usize,
    /// 0-1; null before the first call.
    pub success_rate: Option<f64>,
    pub mean_ms: Option<f64>,
    pub median_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub queries_per_minute: Option<f64>,
    pub slowest_queries: Vec<SlowQuery>,
}

/// Filters of `GET /query_history`.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct HistoryFilter {
    /// Database name (the seeds call it connection_id).
    pub connection_id: Option<String>,
    pub tenant: Option<String>,
    /// One server's calls (`PG_MCP_INSTANCE_ID`).
    pub instance: Option<String>,
    /// `OK`, `error`, or an error code.
    pub status: Option<String>,
    pub limit: Option<usize>,
}

pub struct QueryHistory {
    capacity: usize,
    entries: Mutex<VecDeque<HistoryEntry>>,
    next_id: AtomicU64,
}

impl QueryHistory {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            next_id: AtomicU64::new(1),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Numbers the entry, cuts its SQL to the limit, appends it (dropping the oldest when
    /// full) and returns it as stored, for the audit log.
    pub fn record(&self, mut entry: HistoryEntry) -> HistoryEntry {
        entry.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        entry.truncate_sql();
        if self.capacity > 0 {
            let mut entries = self.entries.lock().expect("history lock");
            if entries.len() == self.capacity {
                entries.pop_front();
            }
            entries.push_back(entry.clone());
        }
        entry
    }

    /// Newest first, filtered.
    pub fn query(&self, filter: &HistoryFilter) -> Vec<HistoryEntry> {
        let limit = filter.limit.unwrap_or(100).min(self.capacity.max(1));
        let entries = self.entries.lock().expect("history lock");
        entries
            .iter()
            .rev()
            .filter(|e| {
                filter
                    .connection_id
                    .as_ref()
                    .is_none_or(|d| &e.database == d)
            })
            .filter(|e| {
                filter
                    .tenant
                    .as_ref()
                    .is_none_or(|t| e.tenant.as_deref() == Some(t.as_str()))
            })
            .filter(|e| filter.instance.as_ref().is_none_or(|i| &e.instance == i))
            .filter(|e| match filter.status.as_deref() {
                None => true,
                Some(s) if s.eq_ignore_ascii_case("ok") || s.eq_ignore_ascii_case("success") => {
                    e.outcome == "OK"
                }
                Some(s) if s.eq_ignore_ascii_case("error") => e.outcome != "OK",
                Some(code) => e.outcome.eq_ignore_ascii_case(code),
            })
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("history lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Aggregates for `get_metrics` (seed 004) over `entries`, oldest first: totals, success
/// rate, latency figures, queries per minute over their time span, and the slowest.
pub fn stats_of(entries: &[&HistoryEntry], slowest: usize) -> HistoryStats {
    let total = entries.len();
    let ok = entries.iter().filter(|e| e.outcome == "OK").count();
    let mut durations: Vec<f64> = entries.iter().map(|e| e.duration_ms).collect();
    durations.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| -> Option<f64> {
        if durations.is_empty() {
            None
        } else {
            let idx = ((durations.len() as f64 - 1.0) * p).round() as usize;
            Some(durations[idx])
        }
    };
    let mean =
        (!durations.is_empty()).then(|| durations.iter().sum::<f64>() / durations.len() as f64);
    let per_minute = match (entries.first(), entries.last()) {
        (Some(first), Some(last)) if total > 1 => {
            let span = (last.time - first.time).num_milliseconds().max(1) as f64 / 60_000.0;
            Some(total as f64 / span.max(1.0 / 60.0))
        }
        _ => None,
    };
    let mut slow: Vec<&HistoryEntry> = entries.to_vec();
    slow.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
    let slow: Vec<SlowQuery> = slow
        .into_iter()
        .take(slowest)
        .map(|e| SlowQuery {
            tool: e.tool.clone(),
            sql: e.sql.clone(),
            duration_ms: e.duration_ms,
            time: e.time,
            outcome: e.outcome.clone(),
        })
        .collect();
    HistoryStats {
        window_size: total,
        total_queries: total,
        successful_queries: ok,
        failed_queries: total - ok,
        success_rate: (total > 0).then(|| ok as f64 / total as f64),
        mean_ms: mean,
        median_ms: pct(0.5),
        p95_ms: pct(0.95),
        max_ms: durations.last().copied(),
        queries_per_minute: per_minute,
        slowest_queries: slow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: &str, tenant: &str, ms: f64) -> HistoryEntry {
        HistoryEntry {
            id: 0,
            instance: "test".into(),
            time: Utc::now(),
            request_id: None,
            tool: "execute_query".into(),
            database: "default".into(),
            tenant: Some(tenant.into()),
            subject: None,
            statement_kind: Some("SELECT".into()),
            sql: Some("SELECT ?".into()),
            param_count: 0,
            params: None,
            duration_ms: ms,
            rows: Some(1),
            affected_rows: None,
            outcome: outcome.into(),
            error_code: (outcome != "OK").then(|| outcome.into()),
        }
    }

    #[test]
    fn ring_is_bounded_and_filters() {
        let h = QueryHistory::new(3);
        for i in 0..5 {
            h.record(entry(
                if i % 2 == 0 { "OK" } else { "UNSAFE_SQL" },
                if i < 3 { "a" } else { "b" },
                i as f64,
            ));
        }
        assert_eq!(h.len(), 3);
        let all = h.query(&HistoryFilter::default());
        assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), vec![5, 4, 3]);
        let errors = h.query(&HistoryFilter {
            status: Some("error".into()),
            ..Default::default()
        });
        assert_eq!(errors.len(), 1);
        let b = h.query(&HistoryFilter {
            tenant: Some("b".into()),
            ..Default::default()
        });
        assert_eq!(b.len(), 2);
        let oldest_first: Vec<HistoryEntry> = b.into_iter().rev().collect();
        let stats = stats_of(&oldest_first.iter().collect::<Vec<_>>(), 1);
        assert_eq!(stats.total_queries, 2);
        assert_eq!(stats.failed_queries, 1);
        assert_eq!(stats.slowest_queries.len(), 1);
        assert_eq!(stats.max_ms, Some(4.0));
        assert_eq!(stats.median_ms, Some(4.0));
    }

    #[test]
    fn writes_are_told_from_reads() {
        let read = entry("OK", "a", 1.0);
        assert!(!read.is_write());
        let mut cte = entry("OK", "a", 1.0);
        cte.statement_kind = Some("WITH".into());
        assert!(!cte.is_write());
        let mut refused = entry("FORBIDDEN", "a", 1.0);
        refused.statement_kind = Some("DELETE".into());
        assert!(refused.is_write(), "an attempted write counts");
        let mut batch = entry("QUERY_FAILED", "a", 1.0);
        batch.tool = "batch_execute".into();
        batch.statement_kind = None;
        assert!(batch.is_write());
        let mut affected = entry("OK", "a", 1.0);
        affected.affected_rows = Some(0);
        assert!(affected.is_write());
    }
}

//! Query history: a bounded in-memory ring of recent tool calls, for `/query_history` and
//! the `get_metrics` tool. Parameter values are kept only when configured, SQL is truncated,
//! and secrets never enter it (the server never puts them in SQL).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

const MAX_SQL_CHARS: usize = 2_000;

#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub id: u64,
    pub time: DateTime<Utc>,
    pub tool: String,
    pub database: String,
    pub tenant: Option<String>,
    pub sql: Option<String>,
    pub param_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Value>>,
    pub duration_ms: f64,
    pub rows: Option<u64>,
    /// Rows inserted, updated or deleted (write mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affected_rows: Option<u64>,
    /// `OK` or the error code.
    pub outcome: String,
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

    /// Appends an entry, dropping the oldest when full.
    pub fn record(&self, mut entry: HistoryEntry) {
        if self.capacity == 0 {
            return;
        }
        entry.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Some(sql) = entry
            .sql
            .as_mut()
            .filter(|s| s.chars().count() > MAX_SQL_CHARS)
        {
            *sql = sql.chars().take(MAX_SQL_CHARS).collect::<String>() + "…";
        }
        let mut entries = self.entries.lock().expect("history lock");
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(entry);
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

    /// Aggregates for `get_metrics` (seed 004): totals, success rate, latency figures,
    /// queries per minute over the window held, and the slowest entries visible to `tenant`
    /// (`None`: all tenants).
    pub fn stats(&self, slowest_for: Option<&str>, slowest: usize) -> HistoryStats {
        let entries = self.entries.lock().expect("history lock");
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
        let per_minute = match (entries.front(), entries.back()) {
            (Some(first), Some(last)) if total > 1 => {
                let span = (last.time - first.time).num_milliseconds().max(1) as f64 / 60_000.0;
                Some(total as f64 / span.max(1.0 / 60.0))
            }
            _ => None,
        };
        let mut slow: Vec<&HistoryEntry> = entries
            .iter()
            .filter(|e| slowest_for.is_none_or(|t| e.tenant.as_deref() == Some(t)))
            .collect();
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: &str, tenant: &str, ms: f64) -> HistoryEntry {
        HistoryEntry {
            id: 0,
            time: Utc::now(),
            tool: "execute_query".into(),
            database: "default".into(),
            tenant: Some(tenant.into()),
            sql: Some("SELECT 1".into()),
            param_count: 0,
            params: None,
            duration_ms: ms,
            rows: Some(1),
            affected_rows: None,
            outcome: outcome.into(),
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
        let stats = h.stats(Some("a"), 5);
        assert_eq!(stats.total_queries, 3);
        assert_eq!(stats.slowest_queries.len(), 1);
    }
}

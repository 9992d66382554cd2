//! A small LRU of statements the guard already accepted, keyed by the exact SQL text.
//!
//! Tool calls repeat the same statements (an assistant paging through results, dashboards,
//! load); parsing the AST, finding the statement's end and masking literals cost more CPU
//! than the rest of the server's work on such a call. The guard configuration is fixed for
//! the process, so an accepted text stays accepted. Refusals are not cached.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use super::guard::StatementKind;
use super::limits::{strip_trailing_terminators, without_literals};

/// What the server needs of an accepted statement.
#[derive(Debug, Clone)]
pub struct AcceptedSql {
    pub kind: StatementKind,
    /// An UPDATE or DELETE of every row (see `CheckedSql::whole_table`).
    pub whole_table: bool,
    /// The statement without trailing `;` and comments (for wrapping in LIMIT / EXPLAIN).
    pub body: Arc<str>,
    /// The statement with literals masked (for traces).
    pub shape: Arc<str>,
}

impl AcceptedSql {
    pub fn new(sql: &str, kind: StatementKind, whole_table: bool) -> Self {
        let body = strip_trailing_terminators(sql);
        Self {
            kind,
            whole_table,
            shape: without_literals(body).into(),
            body: body.into(),
        }
    }

    /// The statement wrapped so PostgreSQL stops after `limit` rows. It sits on its own lines
    /// so a trailing `--` comment cannot swallow the wrapper; `SELECT *` over a subquery keeps
    /// duplicate column names and the inner ORDER BY.
    pub fn limited(&self, limit: usize) -> String {
        format!(
            "SELECT * FROM (\n{}\n) AS pg_mcp_limited LIMIT {limit}",
            self.body
        )
    }
}

pub struct GuardCache {
    entries: Mutex<LruCache<String, AcceptedSql>>,
}

impl GuardCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity.max(1)).expect("nonzero"),
            )),
        }
    }

    /// Forgets every entry (the guard's rules changed).
    pub fn clear(&self) {
        self.entries.lock().expect("guard cache lock").clear();
    }

    pub fn get(&self, sql: &str) -> Option<AcceptedSql> {
        self.entries
            .lock()
            .expect("guard cache lock")
            .get(sql)
            .cloned()
    }

    /// Remembers an accepted statement (long texts are not worth keeping).
    pub fn insert(&self, sql: &str, accepted: AcceptedSql) {
        if sql.len() <= 16 * 1024 {
            self.entries
                .lock()
                .expect("guard cache lock")
                .put(sql.to_string(), accepted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_the_stripped_body() {
        let a = AcceptedSql::new("SELECT 1 -- c\n;", StatementKind::Query, false);
        let trailing = AcceptedSql::new("SELECT 1 -- trailing", StatementKind::Query, false);
        assert!(
            trailing
                .limited(11)
                .ends_with("\n) AS pg_mcp_limited LIMIT 11")
        );
        assert_eq!(
            a.limited(3),
            "SELECT * FROM (\nSELECT 1\n) AS pg_mcp_limited LIMIT 3"
        );
        assert_eq!(&*a.shape, "SELECT ?");
        let cache = GuardCache::new(1);
        cache.insert("a", a.clone());
        cache.insert("b", a);
        assert!(cache.get("a").is_none(), "bounded");
        assert!(cache.get("b").is_some());
    }
}

//! The catalog views and functions through which one session observes or disturbs another.
//!
//! Every tenant shares one database role and the pooled connections. PostgreSQL lets a role
//! see the query text, timing and locks of every session *of the same role*, and a pooled
//! session's prepared statements and cursors belong to whoever used the connection before.
//! `pg-mcp migrate` closes these objects to the application role (`db::isolation`), and the
//! SQL guard refuses them with an explanation. Pure data: the one list both use, and the
//! isolation tests loop over.

/// Who gets an object back after it is closed to `PUBLIC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    /// `pg_read_all_stats` (members: `pg_monitor`, superusers).
    ReadAllStats,
    /// `pg_signal_backend`.
    SignalBackend,
}

impl Grantee {
    pub fn role(self) -> &'static str {
        match self {
            Self::ReadAllStats => "pg_read_all_stats",
            Self::SignalBackend => "pg_signal_backend",
        }
    }
}

/// A catalog function (every overload) or view that exposes other sessions.
#[derive(Debug, Clone, Copy)]
pub struct CrossSessionObject {
    pub kind: ObjectKind,
    /// Name, or `prefix*` for a family of functions.
    pub name: &'static str,
    /// What a tenant would learn from it.
    pub exposes: &'static str,
    pub grantee: Grantee,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Function,
    View,
}

const fn func(name: &'static str, exposes: &'static str) -> CrossSessionObject {
    CrossSessionObject {
        kind: ObjectKind::Function,
        name,
        exposes,
        grantee: Grantee::ReadAllStats,
    }
}

const fn view(name: &'static str, exposes: &'static str) -> CrossSessionObject {
    CrossSessionObject {
        kind: ObjectKind::View,
        name,
        exposes,
        grantee: Grantee::ReadAllStats,
    }
}

/// Everything in `pg_catalog` (and `pg_stat_statements`, when installed) through which one
/// session observes or disturbs another. The README's security section shows this table.
pub const CROSS_SESSION_OBJECTS: &[CrossSessionObject] = &[
    view(
        "pg_stat_activity",
        "other sessions' SQL text, state, timing",
    ),
    func(
        "pg_stat_get_activity",
        "other sessions' SQL text, state, timing",
    ),
    func(
        "pg_stat_get_backend_*",
        "per-session SQL text, timing, client, I/O",
    ),
    view("pg_stat_ssl", "other sessions' TLS details"),
    view("pg_stat_gssapi", "other sessions' GSSAPI principals"),
    func(
        "pg_stat_get_progress_info",
        "other sessions' running commands and tables",
    ),
    view(
        "pg_stat_progress_analyze",
        "other sessions' running commands and tables",
    ),
    view(
        "pg_stat_progress_basebackup",
        "other sessions' running commands",
    ),
    view(
        "pg_stat_progress_cluster",
        "other sessions' running commands and tables",
    ),
    view(
        "pg_stat_progress_copy",
        "other sessions' running commands and tables",
    ),
    view(
        "pg_stat_progress_create_index",
        "other sessions' running commands and tables",
    ),
    view(
        "pg_stat_progress_vacuum",
        "other sessions' running commands and tables",
    ),
    view("pg_locks", "which tables and rows other sessions touch"),
    func(
        "pg_lock_status",
        "which tables and rows other sessions touch",
    ),
    func("pg_blocking_pids", "which sessions block which"),
    func(
        "pg_safe_snapshot_blocking_pids",
        "which sessions block which",
    ),
    func(
        "pg_isolation_test_session_is_blocked",
        "which sessions block which",
    ),
    view(
        "pg_prepared_statements",
        "SQL text earlier tenants ran on this pooled connection",
    ),
    func(
        "pg_prepared_statement",
        "SQL text earlier tenants ran on this pooled connection",
    ),
    view(
        "pg_cursors",
        "cursors earlier tenants left on this pooled connection",
    ),
    func(
        "pg_cursor",
        "cursors earlier tenants left on this pooled connection",
    ),
    view("pg_prepared_xacts", "other sessions' prepared transactions"),
    func("pg_prepared_xact", "other sessions' prepared transactions"),
    func(
        "pg_listening_channels",
        "channels earlier tenants listen on",
    ),
    view(
        "pg_stat_statements",
        "every tenant's normalised SQL text and timing",
    ),
    func(
        "pg_stat_statements",
        "every tenant's normalised SQL text and timing",
    ),
    view(
        "pg_stat_statements_info",
        "statement statistics bookkeeping",
    ),
    func(
        "pg_stat_statements_info",
        "statement statistics bookkeeping",
    ),
    CrossSessionObject {
        kind: ObjectKind::Function,
        name: "pg_cancel_backend",
        exposes: "cancelling another tenant's query (same role)",
        grantee: Grantee::SignalBackend,
    },
    CrossSessionObject {
        kind: ObjectKind::Function,
        name: "pg_terminate_backend",
        exposes: "ending another tenant's session (same role)",
        grantee: Grantee::SignalBackend,
    },
];

impl CrossSessionObject {
    /// The name as a SQL `LIKE` pattern (`_` literal, `*` any suffix).
    pub fn like_pattern(&self) -> String {
        self.name.replace('_', "\\_").replace('*', "%")
    }

    /// Whether a function or relation name (last part, lower case) is this object.
    pub fn matches(&self, name: &str) -> bool {
        match self.name.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.name,
        }
    }
}

/// The entry a called function name is, if any.
pub fn find_function(name: &str) -> Option<&'static CrossSessionObject> {
    CROSS_SESSION_OBJECTS
        .iter()
        .find(|o| o.kind == ObjectKind::Function && o.matches(name))
}

/// The entry a relation name is, if any.
pub fn find_view(name: &str) -> Option<&'static CrossSessionObject> {
    CROSS_SESSION_OBJECTS
        .iter()
        .find(|o| o.kind == ObjectKind::View && o.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_is_distinct_and_explained() {
        let mut seen = std::collections::HashSet::new();
        for o in CROSS_SESSION_OBJECTS {
            assert!(seen.insert((o.kind, o.name)), "duplicate entry {}", o.name);
            assert!(!o.exposes.is_empty());
            assert!(o.name.starts_with("pg_"), "{}", o.name);
        }
    }

    #[test]
    fn names_and_patterns_match() {
        assert!(find_view("pg_stat_activity").is_some());
        assert!(find_view("pg_stat_user_tables").is_none());
        assert!(find_function("pg_stat_get_backend_activity").is_some());
        assert!(find_function("pg_stat_get_activity").is_some());
        assert!(find_function("pg_stat_get_db_xact_commit").is_none());
        let backend = find_function("pg_stat_get_backend_pid").unwrap();
        assert_eq!(backend.like_pattern(), "pg\\_stat\\_get\\_backend\\_%");
    }
}

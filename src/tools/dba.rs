//! The DBA tools (seed 003's health checks): `db_activity`, `db_locks`, `table_health`,
//! `index_health`, `top_queries` and `db_overview`. Operator-only: they read catalogue views
//! that show every tenant's sessions and SQL, on the database's monitoring connection
//! (`db::monitor`), never the tenant role. Each answers with a short `summary`, the findings
//! sorted by severity (`critical`, `warning`, `info`), and stays within the schema tools'
//! byte budget (`truncated` says when lists were cut). Query text of other sessions is masked
//! (literals replaced) and cut unless `full_text` is asked for.
//!
//! The SQL builds each answer as JSON in PostgreSQL, so one round trip per section; pg-mcp's
//! own schemas (`PG_MCP_HIDDEN_SCHEMAS`) are left out like everywhere else.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::postgres::PgArguments;
use sqlx::{PgConnection, Postgres};

use crate::db::Database;
use crate::error::{AppError, ErrorCode, Result};
use crate::state::AppState;

/// Longest query text shown without `full_text`.
const QUERY_CHARS: usize = 300;

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct ActivityArgs {
    /// Configured database name (default: the default database).
    pub database: Option<String>,
    /// A query or transaction running longer than this is reported (default 5000 ms).
    pub long_running_ms: Option<u64>,
    /// Show each query's full, unmasked text (default: masked and cut to 300 characters).
    #[serde(default)]
    pub full_text: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct LocksArgs {
    /// Configured database name (default: the default database).
    pub database: Option<String>,
    /// Show each query's full, unmasked text (default: masked and cut to 300 characters).
    #[serde(default)]
    pub full_text: bool,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct DatabaseArgs {
    /// Configured database name (default: the default database).
    pub database: Option<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct HealthArgs {
    /// Configured database name (default: the default database).
    pub database: Option<String>,
    /// Only this schema.
    pub schema: Option<String>,
    /// Most entries per list (default 50, at most 500).
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct TopQueriesArgs {
    /// Configured database name (default: the default database).
    pub database: Option<String>,
    /// `total_time` (default), `mean_time`, `calls` or `rows`.
    pub order_by: Option<String>,
    /// Most queries (default 20, at most 100).
    pub limit: Option<usize>,
    /// Show each query's full text (default: cut to 300 characters).
    #[serde(default)]
    pub full_text: bool,
}

/// What every DBA tool answers (its `outputSchema`): the database, a short human summary,
/// whether lists were cut to the byte budget, and the tool's own sections (lists sorted by
/// severity, each entry with `severity` `critical`, `warning` or `info`).
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct DbaAnswer {
    pub database: String,
    pub summary: String,
    pub truncated: bool,
    #[serde(flatten)]
    pub sections: serde_json::Map<String, Value>,
}

/// The monitoring connection of `db`, or NOT_AVAILABLE saying how to set it up.
pub(crate) fn monitor(db: &Database) -> Result<&crate::db::monitor::Monitor> {
    db.monitor.as_ref().ok_or_else(|| {
        AppError::new(
            ErrorCode::NotAvailable,
            format!(
                "database {:?} has no monitoring connection: set PG_MCP_MONITOR_PASSWORD (and run pg-mcp migrate with it, which creates the pg_monitor role PG_MCP_MONITOR_USER)",
                db.name
            ),
        )
    })
}

/// Runs `work` in a read-only transaction on the monitoring connection of `database`.
async fn on_monitor<T>(
    state: &AppState,
    database: Option<&String>,
    work: impl AsyncFnOnce(&mut PgConnection, &[String]) -> Result<T>,
) -> Result<(String, T)> {
    let db = state.databases.get(database.map(String::as_str))?;
    let mut tx = monitor(&db)?.begin().await?;
    let hidden = state.config().hidden_schemas.clone();
    let out = work(&mut *tx, &hidden).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok((db.name.clone(), out))
}

/// One statement that answers with one JSON value.
fn json_query(
    sql: &'static str,
) -> sqlx::query::QueryScalar<'static, Postgres, Value, PgArguments> {
    sqlx::query_scalar::<_, Value>(sql)
}

/// Masks and cuts `text` unless the caller asked for the full text.
fn shown_query(text: &str, full: bool) -> String {
    if full {
        return text.to_string();
    }
    let masked = crate::sql::limits::without_literals(text);
    if masked.chars().count() > QUERY_CHARS {
        masked.chars().take(QUERY_CHARS).collect::<String>() + "…"
    } else {
        masked
    }
}

/// Rewrites every `query` field of `items` (see [`shown_query`]).
fn show_queries(items: &mut Value, field: &str, full: bool) {
    if let Some(list) = items.as_array_mut() {
        for item in list {
            if let Some(text) = item.get(field).and_then(Value::as_str).map(str::to_string) {
                item[field] = Value::String(shown_query(&text, full));
            }
        }
    }
}

/// Cuts the longest lists of `answer` until it fits in `budget` bytes; marks `truncated`.
fn within_budget(mut answer: Value, budget: usize) -> Value {
    let mut truncated = false;
    while answer.to_string().len() > budget {
        let Some(obj) = answer.as_object_mut() else {
            break;
        };
        let longest = obj
            .iter()
            .filter_map(|(k, v)| v.as_array().map(|a| (k.clone(), a.len())))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n);
        let Some((key, n)) = longest else { break };
        if let Some(list) = obj.get_mut(&key).and_then(Value::as_array_mut) {
            list.truncate(n / 2);
        }
        truncated = true;
    }
    answer["truncated"] = json!(truncated);
    answer
}

fn count_severity(items: &Value, severity: &str) -> usize {
    items.as_array().map_or(0, |a| {
        a.iter().filter(|i| i["severity"] == severity).count()
    })
}

const ACTIVITY_SQL: &str = r#"
WITH s AS (
  SELECT pid, datname::text AS database, usename::text AS "user", application_name,
         client_addr::text AS client, backend_type, coalesce(state, '') AS state,
         wait_event_type, wait_event,
         round((extract(epoch FROM now() - query_start) * 1000)::numeric, 1)::float8 AS query_ms,
         round((extract(epoch FROM now() - xact_start) * 1000)::numeric, 1)::float8 AS transaction_ms,
         round((extract(epoch FROM now() - state_change) * 1000)::numeric, 1)::float8 AS state_ms,
         pg_blocking_pids(pid) AS blocked_by, query
  FROM pg_stat_activity
  WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'
), graded AS (
  SELECT s.*, CASE
      WHEN state LIKE 'idle in transaction%' AND state_ms > 300000 THEN 'critical'
      WHEN transaction_ms > 3600000 THEN 'critical'
      WHEN state LIKE 'idle in transaction%' THEN 'warning'
      WHEN cardinality(blocked_by) > 0 THEN 'warning'
      WHEN state = 'active' AND query_ms > $1::float8 THEN 'warning'
      WHEN transaction_ms > $1::float8 THEN 'warning'
      ELSE 'info' END AS severity
  FROM s
)
SELECT json_build_object(
  'by_state', (SELECT coalesce(json_agg(json_build_object('state', state, 'count', n) ORDER BY n DESC), '[]')
               FROM (SELECT CASE WHEN state = '' THEN 'unknown' ELSE state END AS state, count(*) AS n FROM graded GROUP BY 1) x),
  'wait_events', (SELECT coalesce(json_agg(json_build_object('wait_event_type', wait_event_type, 'wait_event', wait_event, 'count', n) ORDER BY n DESC), '[]')
                  FROM (SELECT wait_event_type, wait_event, count(*) AS n FROM graded WHERE wait_event IS NOT NULL AND state = 'active' GROUP BY 1, 2) w),
  'sessions', (SELECT coalesce(json_agg(to_jsonb(g) ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                                        coalesce(transaction_ms, 0) DESC), '[]')
               FROM graded g WHERE severity <> 'info' OR state = 'active'),
  'total_sessions', (SELECT count(*) FROM graded),
  'max_connections', current_setting('max_connections')::int
)
"#;

/// `db_activity`: sessions by state; long-running queries and transactions, idle in
/// transaction, wait events.
pub async fn db_activity(state: &AppState, args: ActivityArgs) -> Result<Value> {
    let long = args.long_running_ms.unwrap_or(5000) as f64;
    let (database, mut answer) = on_monitor(state, args.database.as_ref(), async |c, _| {
        json_query(ACTIVITY_SQL)
            .bind(long)
            .fetch_one(c)
            .await
            .map_err(AppError::from)
    })
    .await?;
    show_queries(&mut answer["sessions"], "query", args.full_text);
    let sessions = &answer["sessions"];
    let idle_tx = sessions.as_array().map_or(0, |a| {
        a.iter()
            .filter(|s| {
                s["state"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("idle in transaction"))
            })
            .count()
    });
    let waiting = sessions.as_array().map_or(0, |a| {
        a.iter()
            .filter(|s| s["blocked_by"].as_array().is_some_and(|b| !b.is_empty()))
            .count()
    });
    let summary = format!(
        "{} client sessions of {} allowed; {} critical, {} warnings; {} idle in transaction, {} waiting on another session",
        answer["total_sessions"],
        answer["max_connections"],
        count_severity(sessions, "critical"),
        count_severity(sessions, "warning"),
        idle_tx,
        waiting
    );
    answer["summary"] = json!(summary);
    Ok(finish(state, database, answer))
}

const LOCKS_SQL: &str = r#"
WITH edges AS (
  SELECT w.pid AS blocked_pid, b.pid AS blocking_pid,
         w.usename::text AS blocked_user, w.application_name AS blocked_application,
         round((extract(epoch FROM now() - w.query_start) * 1000)::numeric, 1)::float8 AS waiting_ms,
         w.wait_event_type, w.wait_event, w.query AS blocked_query,
         b.usename::text AS blocking_user, b.application_name AS blocking_application, b.state AS blocking_state,
         round((extract(epoch FROM now() - b.xact_start) * 1000)::numeric, 1)::float8 AS blocking_transaction_ms,
         b.query AS blocking_query,
         l.locktype, l.mode, l.relation::regclass::text AS relation
  FROM pg_stat_activity w
  CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid)
  JOIN pg_stat_activity b ON b.pid = bp.pid
  LEFT JOIN LATERAL (SELECT locktype, mode, relation FROM pg_locks
                     WHERE pid = w.pid AND NOT granted LIMIT 1) l ON true
)
SELECT json_build_object(
  'waits', (SELECT coalesce(json_agg(json_build_object(
              'blocked', json_build_object('pid', blocked_pid, 'user', blocked_user, 'application', blocked_application, 'query', blocked_query),
              'blocking', json_build_object('pid', blocking_pid, 'user', blocking_user, 'application', blocking_application,
                                            'state', blocking_state, 'transaction_ms', blocking_transaction_ms, 'query', blocking_query),
              'waiting_ms', waiting_ms, 'wait_event_type', wait_event_type, 'wait_event', wait_event,
              'lock', json_build_object('type', locktype, 'mode', mode, 'relation', relation),
              'severity', CASE WHEN waiting_ms > 60000 THEN 'critical' ELSE 'warning' END)
            ORDER BY waiting_ms DESC NULLS LAST), '[]') FROM edges),
  'root_blockers', (SELECT coalesce(json_agg(json_build_object('pid', blocking_pid, 'blocks', n, 'state', st,
                                              'transaction_ms', tx, 'query', q) ORDER BY n DESC), '[]')
                    FROM (SELECT blocking_pid, count(DISTINCT blocked_pid) AS n, max(blocking_state) AS st,
                                 max(blocking_transaction_ms) AS tx, max(blocking_query) AS q
                          FROM edges
                          WHERE blocking_pid NOT IN (SELECT blocked_pid FROM edges)
                          GROUP BY blocking_pid) r)
)
"#;

/// `db_locks`: who blocks whom, for how long, on what; the chains' root blockers.
pub async fn db_locks(state: &AppState, args: LocksArgs) -> Result<Value> {
    let (database, mut answer) = on_monitor(state, args.database.as_ref(), async |c, _| {
        json_query(LOCKS_SQL)
            .fetch_one(c)
            .await
            .map_err(AppError::from)
    })
    .await?;
    if let Some(waits) = answer["waits"].as_array_mut() {
        for w in waits {
            for side in ["blocked", "blocking"] {
                if let Some(text) = w[side]["query"].as_str().map(str::to_string) {
                    w[side]["query"] = json!(shown_query(&text, args.full_text));
                }
            }
        }
    }
    show_queries(&mut answer["root_blockers"], "query", args.full_text);
    let waits = answer["waits"].as_array().map_or(0, Vec::len);
    let roots = &answer["root_blockers"];
    let summary = if waits == 0 {
        "no session is waiting on a lock held by another".to_string()
    } else {
        let first = &roots[0];
        format!(
            "{waits} lock waits; {} root blockers; pid {} ({}, transaction open {} ms) blocks {}",
            roots.as_array().map_or(0, Vec::len),
            first["pid"],
            first["state"].as_str().unwrap_or("?"),
            first["transaction_ms"],
            first["blocks"]
        )
    };
    answer["summary"] = json!(summary);
    Ok(finish(state, database, answer))
}

const TABLES_SQL: &str = r#"
WITH t AS (
  SELECT n.nspname::text AS schema, c.relname::text AS "table",
         pg_total_relation_size(c.oid) AS total_bytes, pg_relation_size(c.oid) AS table_bytes,
         s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
         CASE WHEN coalesce(s.n_live_tup, 0) + coalesce(s.n_dead_tup, 0) > 0
              THEN round(s.n_dead_tup::numeric / (s.n_live_tup + s.n_dead_tup), 4)::float8 ELSE 0 END AS dead_ratio,
         s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze, s.n_mod_since_analyze AS modified_since_analyze,
         age(c.relfrozenxid) AS xid_age,
         EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p') AS has_primary_key
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
  WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg_toast%' AND NOT (n.nspname = ANY($1::text[]))
    AND ($2::text IS NULL OR n.nspname = $2::text)
), graded AS (
  SELECT t.*, (table_bytes * dead_ratio)::bigint AS bloat_bytes_estimate,
         round(xid_age::numeric / 2147483648 * 100, 2)::float8 AS wraparound_percent,
         array_remove(ARRAY[
           CASE WHEN xid_age > 1500000000 THEN 'transaction-id wraparound near: VACUUM FREEZE now' END,
           CASE WHEN dead_tuples > 1000 AND dead_ratio > 0.2 THEN 'many dead tuples: VACUUM (ANALYZE)' END,
           CASE WHEN NOT has_primary_key THEN 'no primary key' END,
           CASE WHEN last_analyze IS NULL AND last_autoanalyze IS NULL AND coalesce(live_tuples, 0) > 0 THEN 'never analyzed' END
         ], NULL) AS findings,
         CASE WHEN xid_age > 1500000000 OR (dead_ratio > 0.5 AND dead_tuples > 10000) THEN 'critical'
              WHEN (dead_tuples > 1000 AND dead_ratio > 0.2) OR NOT has_primary_key THEN 'warning'
              ELSE 'info' END AS severity
  FROM t
)
SELECT json_build_object(
  'tables', (SELECT coalesce(json_agg(to_jsonb(g) ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                                      dead_tuples DESC NULLS LAST, total_bytes DESC), '[]')
             FROM (SELECT * FROM graded ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                          dead_tuples DESC NULLS LAST, total_bytes DESC LIMIT $3) g),
  'table_count', (SELECT count(*) FROM graded),
  'without_primary_key', (SELECT count(*) FROM graded WHERE NOT has_primary_key),
  'with_dead_tuples', (SELECT count(*) FROM graded WHERE dead_tuples > 1000 AND dead_ratio > 0.2),
  'databases_wraparound', (SELECT json_agg(json_build_object('database', datname, 'xid_age', age(datfrozenxid),
                             'wraparound_percent', round(age(datfrozenxid)::numeric / 2147483648 * 100, 2)) ORDER BY age(datfrozenxid) DESC)
                           FROM pg_database WHERE datallowconn)
)
"#;

/// A report's answer: its database named, cut to the output budget.
fn finish(state: &AppState, database: String, mut answer: Value) -> Value {
    answer["database"] = json!(database);
    within_budget(answer, state.config().schema_output_budget_bytes)
}

/// One of the health reports: `sql` takes the hidden schemas, the schema filter and the
/// per-list limit (`args.limit`, default 50, at most 500).
async fn health_query(
    state: &AppState,
    args: &HealthArgs,
    sql: &'static str,
) -> Result<(String, Value)> {
    let limit = args.limit.unwrap_or(50).clamp(1, 500) as i64;
    let schema = args.schema.clone();
    on_monitor(state, args.database.as_ref(), async |c, hidden| {
        json_query(sql)
            .bind(hidden)
            .bind(schema)
            .bind(limit)
            .fetch_one(c)
            .await
            .map_err(AppError::from)
    })
    .await
}

/// `table_health`: sizes, dead tuples and a bloat estimate, vacuum and analyze times, the
/// wraparound horizon, tables without a primary key.
pub async fn table_health(state: &AppState, args: HealthArgs) -> Result<Value> {
    let (database, mut answer) = health_query(state, &args, TABLES_SQL).await?;
    answer["summary"] = json!(format!(
        "{} tables; {} critical, {} warnings; {} with many dead tuples, {} without a primary key",
        answer["table_count"],
        count_severity(&answer["tables"], "critical"),
        count_severity(&answer["tables"], "warning"),
        answer["with_dead_tuples"],
        answer["without_primary_key"]
    ));
    answer["bloat_estimate"] = json!("table size × dead-tuple ratio (from pg_stat_all_tables)");
    Ok(finish(state, database, answer))
}

const INDEXES_SQL: &str = r#"
WITH i AS (
  SELECT n.nspname::text AS schema, t.relname::text AS "table", c.relname::text AS index, x.indexrelid,
         x.indrelid, x.indisunique, x.indisprimary, x.indisvalid, x.indkey::text AS key,
         x.indclass::text AS opclasses, coalesce(pg_get_expr(x.indexprs, x.indrelid), '') AS exprs,
         coalesce(pg_get_expr(x.indpred, x.indrelid), '') AS pred, am.amname::text AS method,
         pg_relation_size(x.indexrelid) AS bytes, coalesce(s.idx_scan, 0) AS scans,
         pg_get_indexdef(x.indexrelid) AS definition
  FROM pg_index x
  JOIN pg_class c ON c.oid = x.indexrelid
  JOIN pg_class t ON t.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_am am ON am.oid = c.relam
  LEFT JOIN pg_stat_all_indexes s ON s.indexrelid = x.indexrelid
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
    AND NOT (n.nspname = ANY($1::text[])) AND ($2::text IS NULL OR n.nspname = $2::text)
)
SELECT json_build_object(
  'invalid', (SELECT coalesce(json_agg(json_build_object('schema', schema, 'table', "table", 'index', index,
                'definition', definition, 'severity', 'critical',
                'fix', format('DROP INDEX %I.%I; then create it again (CONCURRENTLY)', schema, index)) ORDER BY bytes DESC), '[]')
              FROM (SELECT * FROM i WHERE NOT indisvalid LIMIT $3) v),
  'duplicates', (SELECT coalesce(json_agg(json_build_object('schema', a.schema, 'table', a."table", 'index', a.index,
                   'same_as', b.index, 'bytes', a.bytes, 'severity', 'warning',
                   'fix', format('DROP INDEX %I.%I', a.schema, a.index)) ORDER BY a.bytes DESC), '[]')
                 FROM i a JOIN i b ON a.indrelid = b.indrelid AND a.indexrelid > b.indexrelid
                   AND a.key = b.key AND a.opclasses = b.opclasses AND a.exprs = b.exprs AND a.pred = b.pred
                   AND a.method = b.method AND NOT a.indisprimary AND (NOT a.indisunique OR b.indisunique)),
  'overlapping', (SELECT coalesce(json_agg(json_build_object('schema', a.schema, 'table', a."table", 'index', a.index,
                    'covered_by', b.index, 'bytes', a.bytes, 'severity', 'info') ORDER BY a.bytes DESC), '[]')
                  FROM i a JOIN i b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid
                    AND a.method = 'btree' AND b.method = 'btree' AND a.exprs = '' AND b.exprs = '' AND a.pred = '' AND b.pred = ''
                    AND a.key <> b.key AND starts_with(b.key || ' ', a.key || ' ') AND NOT a.indisunique),
  'unused', (SELECT coalesce(json_agg(json_build_object('schema', schema, 'table', "table", 'index', index, 'scans', scans,
               'bytes', bytes, 'severity', CASE WHEN bytes > 100 * 1024 * 1024 THEN 'warning' ELSE 'info' END,
               'fix', format('DROP INDEX %I.%I (if no replica or rare job uses it)', schema, index)) ORDER BY bytes DESC), '[]')
             FROM (SELECT * FROM i WHERE scans = 0 AND NOT indisunique AND NOT indisprimary AND indisvalid ORDER BY bytes DESC LIMIT $3) u),
  'foreign_keys_without_index', (SELECT coalesce(json_agg(json_build_object('schema', n.nspname, 'table', t.relname,
        'constraint', k.conname, 'columns', (SELECT array_agg(a.attname ORDER BY p.ord) FROM unnest(k.conkey) WITH ORDINALITY p(attnum, ord)
                                             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = p.attnum),
        'references', k.confrelid::regclass::text, 'severity', 'warning',
        'fix', format('CREATE INDEX ON %I.%I (%s)', n.nspname, t.relname,
                      (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY p.ord) FROM unnest(k.conkey) WITH ORDINALITY p(attnum, ord)
                       JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = p.attnum)))), '[]')
      FROM pg_constraint k
      JOIN pg_class t ON t.oid = k.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      WHERE k.contype = 'f' AND NOT (n.nspname = ANY($1::text[])) AND ($2::text IS NULL OR n.nspname = $2::text)
        AND NOT EXISTS (SELECT 1 FROM pg_index x
                        WHERE x.indrelid = k.conrelid AND x.indpred IS NULL
                          AND (string_to_array(x.indkey::text, ' ')::int2[])[1:cardinality(k.conkey)] @> k.conkey
                          AND (string_to_array(x.indkey::text, ' ')::int2[])[1:cardinality(k.conkey)] <@ k.conkey)),
  'index_count', (SELECT count(*) FROM i),
  'stats_since', (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database())
)
"#;

/// `index_health`: invalid, duplicate, overlapping and unused indexes; foreign keys
/// without an index.
pub async fn index_health(state: &AppState, args: HealthArgs) -> Result<Value> {
    let (database, mut answer) = health_query(state, &args, INDEXES_SQL).await?;
    let n = |k: &str| answer[k].as_array().map_or(0, Vec::len);
    answer["summary"] = json!(format!(
        "{} indexes; {} invalid, {} duplicates, {} overlapping, {} unused since statistics began; {} foreign keys without an index",
        answer["index_count"],
        n("invalid"),
        n("duplicates"),
        n("overlapping"),
        n("unused"),
        n("foreign_keys_without_index")
    ));
    Ok(finish(state, database, answer))
}

const TOP_SQL: &str = r#"
SELECT coalesce(json_agg(q), '[]') FROM (
  SELECT s.queryid::text AS query_id, r.rolname::text AS "user", d.datname::text AS database, s.calls,
         round(s.total_exec_time::numeric, 3)::float8 AS total_ms, round(s.mean_exec_time::numeric, 3)::float8 AS mean_ms,
         round(s.max_exec_time::numeric, 3)::float8 AS max_ms, s.rows,
         CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0
              THEN round(s.shared_blks_hit::numeric / (s.shared_blks_hit + s.shared_blks_read), 4)::float8 END AS shared_hit_ratio,
         s.query
  FROM pg_stat_statements s
  LEFT JOIN pg_roles r ON r.oid = s.userid
  LEFT JOIN pg_database d ON d.oid = s.dbid
  WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  ORDER BY CASE $1::text WHEN 'mean_time' THEN s.mean_exec_time WHEN 'calls' THEN s.calls::float8
                         WHEN 'rows' THEN s.rows::float8 ELSE s.total_exec_time END DESC
  LIMIT $2
) q
"#;

/// `top_queries`: the most expensive statements from `pg_stat_statements`.
pub async fn top_queries(state: &AppState, args: TopQueriesArgs) -> Result<Value> {
    let order = args.order_by.as_deref().unwrap_or("total_time");
    if !["total_time", "mean_time", "calls", "rows"].contains(&order) {
        return Err(AppError::validation(format!(
            "order_by must be total_time, mean_time, calls or rows, not {order:?}"
        )));
    }
    let limit = args.limit.unwrap_or(20).clamp(1, 100) as i64;
    let (database, mut queries) = on_monitor(state, args.database.as_ref(), async |c, _| {
        let installed: Option<String> = sqlx::query_scalar(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'",
        )
        .fetch_optional(&mut *c)
        .await
        .map_err(AppError::from)?;
        let loaded: String = sqlx::query_scalar("SELECT current_setting('shared_preload_libraries')")
            .fetch_one(&mut *c)
            .await
            .map_err(AppError::from)?;
        if installed.is_none() || !loaded.contains("pg_stat_statements") {
            return Err(AppError::new(
                ErrorCode::NotAvailable,
                "pg_stat_statements is not enabled on this database: add it to shared_preload_libraries (postgresql.conf; needs a restart), run CREATE EXTENSION pg_stat_statements as a superuser, then pg-mcp migrate again (it closes the view to the application role)",
            ));
        }
        json_query(TOP_SQL)
            .bind(order)
            .bind(limit)
            .fetch_one(c)
            .await
            .map_err(AppError::from)
    })
    .await?;
    show_queries(&mut queries, "query", args.full_text);
    let n = queries.as_array().map_or(0, Vec::len);
    let summary = match queries.get(0) {
        Some(first) => format!(
            "top {n} statements by {order}; first: {} calls, {} ms in total, {} ms mean",
            first["calls"], first["total_ms"], first["mean_ms"]
        ),
        None => "pg_stat_statements has recorded no statement on this database yet".to_string(),
    };
    let answer = json!({
        "database": database,
        "summary": summary,
        "order_by": order,
        "queries": queries,
    });
    Ok(within_budget(
        answer,
        state.config().schema_output_budget_bytes,
    ))
}

const OVERVIEW_SQL: &str = r#"
SELECT json_build_object(
  'version', version(),
  'server_version_num', current_setting('server_version_num')::int,
  'started_at', pg_postmaster_start_time(),
  'uptime_seconds', round(extract(epoch FROM now() - pg_postmaster_start_time()))::bigint,
  'in_recovery', pg_is_in_recovery(),
  'databases', (SELECT json_agg(json_build_object('name', datname, 'bytes', pg_database_size(oid)) ORDER BY pg_database_size(oid) DESC)
                FROM pg_database WHERE datallowconn AND has_database_privilege(oid, 'CONNECT')),
  'connections', json_build_object(
      'used', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
      'max', current_setting('max_connections')::int,
      'reserved', current_setting('superuser_reserved_connections')::int),
  'cache_hit_ratio', (SELECT CASE WHEN sum(blks_hit + blks_read) > 0
                               THEN round(sum(blks_hit)::numeric / sum(blks_hit + blks_read), 4)::float8 END FROM pg_stat_database),
  'transactions', (SELECT json_build_object('committed', xact_commit, 'rolled_back', xact_rollback, 'deadlocks', deadlocks,
                     'temp_bytes', temp_bytes, 'conflicts', conflicts) FROM pg_stat_database WHERE datname = current_database()),
  'replication', (SELECT coalesce(json_agg(json_build_object('application', application_name, 'client', client_addr::text,
                    'state', state, 'sync_state', sync_state,
                    'replay_lag_ms', round((extract(epoch FROM replay_lag) * 1000)::numeric, 1)::float8,
                    'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn))), '[]')
                  FROM pg_stat_replication WHERE NOT pg_is_in_recovery()),
  'settings', (SELECT json_object_agg(name, CASE WHEN unit IS NULL THEN setting ELSE setting || ' ' || unit END)
               FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'maintenance_work_mem', 'effective_cache_size',
                 'max_connections', 'statement_timeout', 'idle_in_transaction_session_timeout', 'lock_timeout',
                 'max_wal_size', 'autovacuum', 'shared_preload_libraries', 'random_page_cost'))
)
"#;

/// `db_overview`: version, uptime, database sizes, connections used against max, cache hit
/// ratio, replication and its lag, checkpoints, the settings that matter.
pub async fn db_overview(state: &AppState, args: DatabaseArgs) -> Result<Value> {
    let (database, mut answer) = on_monitor(state, args.database.as_ref(), async |c, _| {
        let mut overview = json_query(OVERVIEW_SQL)
            .fetch_one(&mut *c)
            .await
            .map_err(AppError::from)?;
        // Checkpoint counters moved to pg_stat_checkpointer in PostgreSQL 17.
        let checkpoints = if overview["server_version_num"].as_i64().unwrap_or(0) >= 170_000 {
            "SELECT to_jsonb(c) - 'stats_reset' FROM pg_stat_checkpointer c"
        } else {
            "SELECT jsonb_build_object('num_timed', checkpoints_timed, 'num_requested', checkpoints_req, \
             'write_time', checkpoint_write_time, 'sync_time', checkpoint_sync_time, \
             'buffers_written', buffers_checkpoint) FROM pg_stat_bgwriter"
        };
        overview["checkpoints"] = json_query(checkpoints)
            .fetch_one(&mut *c)
            .await
            .map_err(AppError::from)?;
        Ok(overview)
    })
    .await?;
    let connections = &answer["connections"];
    let used = connections["used"].as_f64().unwrap_or(0.0);
    let max = connections["max"].as_f64().unwrap_or(1.0).max(1.0);
    let hit = answer["cache_hit_ratio"].as_f64();
    let mut findings = Vec::new();
    if used / max > 0.8 {
        findings.push(json!({"severity": "warning", "finding": format!("{used} of {max} connections in use")}));
    }
    if hit.is_some_and(|h| h < 0.9) {
        findings.push(json!({"severity": "warning", "finding": "cache hit ratio below 90 %: shared_buffers may be too small"}));
    }
    let replicas = answer["replication"].as_array().map_or(0, Vec::len);
    answer["summary"] = json!(format!(
        "{}; up {} s; {} of {} connections; cache hit ratio {}; {} replicas",
        answer["version"]
            .as_str()
            .and_then(|v| v.split(" on ").next())
            .unwrap_or("PostgreSQL"),
        answer["uptime_seconds"],
        used,
        max,
        hit.map_or("n/a".to_string(), |h| format!("{:.1} %", h * 100.0)),
        replicas
    ));
    answer["findings"] = json!(findings);
    Ok(finish(state, database, answer))
}

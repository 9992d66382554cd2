//! `index_advice` (operators): candidate indexes for one query, read off its plan. A
//! sequential scan with a filter suggests an index on the filtered columns (equality columns
//! first, then ranges); a sort over a scanned table suggests one on the sort keys; a hash join
//! whose inner side is scanned suggests one on its join key. Candidates a present index
//! already covers are dropped. With the `hypopg` extension each candidate is verified with a
//! hypothetical index (the plan's estimated cost before and after); without it the advice is
//! labelled heuristic. Runs as EXPLAIN (never ANALYZE) in the operator's read-only tenant
//! transaction on the app role, so it plans the query exactly as a tenant's call would (the
//! policies' functions included, which the monitoring role may not run), and never creates a
//! real index.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Executor, PgConnection, Row, SqlSafeStr, Statement};

use crate::db::params::bind_params;
use crate::error::{AppError, Result};
use crate::tools::Call;
use crate::tools::query::statement_params;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct IndexAdviceArgs {
    /// The query to advise on (one read-only statement, without EXPLAIN).
    pub sql: String,
    /// Values for $1, $2 ... placeholders.
    #[serde(default)]
    #[schemars(schema_with = "crate::db::params::params_schema")]
    pub params: Vec<Value>,
    /// Configured database name (default: the default database).
    pub database: Option<String>,
}

/// One suggested index, before verification.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    schema: String,
    table: String,
    columns: Vec<String>,
    reason: String,
}

impl Candidate {
    fn statement(&self) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote_ident(c)).collect();
        format!(
            "CREATE INDEX ON {}.{} ({})",
            quote_ident(&self.schema),
            quote_ident(&self.table),
            cols.join(", ")
        )
    }
}

fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `col op …` in a plan condition: `(customer_id = 42)`, `((status)::text = 'x'::text)`,
/// `(o.created_at >= $1)`. Group 1: the column; group 2: the operator.
static CONDITION: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r#"\(*(?:"?[A-Za-z_][\w$]*"?\.)?"?([A-Za-z_][\w$]*)"?\)?(?:::[\w ]+(?:\[\])?)?\s*(=|>=|<=|<|>|~~)\s"#,
    )
    .expect("valid regex")
});

/// The columns a condition compares, equality first, then ranges (in order of appearance).
fn condition_columns(condition: &str) -> Vec<String> {
    let mut equal = Vec::new();
    let mut range = Vec::new();
    for cap in CONDITION.captures_iter(condition) {
        let column = cap[1].to_string();
        let list = if &cap[2] == "=" {
            &mut equal
        } else {
            &mut range
        };
        if !list.contains(&column) {
            list.push(column);
        }
    }
    range.retain(|c| !equal.contains(c));
    equal.extend(range);
    equal
}

/// `o.created_at DESC` → `created_at`.
fn sort_column(key: &str) -> Option<String> {
    let first = key.split_whitespace().next()?;
    let name = first
        .rsplit('.')
        .next()?
        .trim_matches(|c| c == '(' || c == ')' || c == '"');
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then(|| name.to_string())
}

/// The scanned relation of a node: `(schema, table, alias)` of a Seq Scan.
fn seq_scan(node: &Value) -> Option<(String, String, String)> {
    (node["Node Type"] == "Seq Scan").then(|| {
        (
            node["Schema"].as_str().unwrap_or("public").to_string(),
            node["Relation Name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            node["Alias"].as_str().unwrap_or_default().to_string(),
        )
    })
}

/// The Seq Scan at or right below `node` (through Hash, Materialize, Gather).
fn scanned_below(node: &Value) -> Option<(String, String, String)> {
    seq_scan(node).or_else(|| {
        let children = node["Plans"].as_array()?;
        match children.as_slice() {
            [only] => scanned_below(only),
            _ => None,
        }
    })
}

/// Walks the plan, collecting candidates.
fn collect(node: &Value, out: &mut Vec<Candidate>) {
    if let Some((schema, table, _)) = seq_scan(node)
        && let Some(filter) = node["Filter"].as_str()
    {
        let columns = condition_columns(filter);
        if !columns.is_empty() {
            out.push(Candidate {
                schema,
                table,
                columns,
                reason: format!(
                    "sequential scan filtering {filter} (estimated {} rows kept, {} removed)",
                    node["Plan Rows"],
                    node["Rows Removed by Filter"]
                        .as_u64()
                        .map_or("?".to_string(), |n| n.to_string())
                ),
            });
        }
    }
    if node["Node Type"] == "Sort"
        && let Some(keys) = node["Sort Key"].as_array()
        && let Some((schema, table, _)) = node["Plans"]
            .as_array()
            .and_then(|c| c.first())
            .and_then(scanned_below)
    {
        let columns: Vec<String> = keys
            .iter()
            .filter_map(|k| k.as_str().and_then(sort_column))
            .collect();
        if !columns.is_empty() && columns.len() == keys.len() {
            out.push(Candidate {
                schema,
                table,
                columns,
                reason: format!("sort on {} over a sequential scan", json!(keys)),
            });
        }
    }
    if let Some(cond) = node["Hash Cond"].as_str()
        && let Some(children) = node["Plans"].as_array()
    {
        // The hashed (inner) side is the second child; an index on its join key lets a
        // nested loop probe it instead.
        if let Some((schema, table, alias)) = children.get(1).and_then(scanned_below) {
            let prefix = format!("{alias}.");
            let column = cond
                .trim_matches(|c| c == '(' || c == ')')
                .split('=')
                .map(str::trim)
                .find_map(|side| side.strip_prefix(&prefix))
                .map(|c| c.trim_matches('"').to_string());
            if let Some(column) = column {
                out.push(Candidate {
                    schema,
                    table,
                    columns: vec![column],
                    reason: format!("hash join on {cond} over a sequential scan"),
                });
            }
        }
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        collect(child, out);
    }
}

/// EXPLAIN (FORMAT JSON) of the query: its root plan node.
async fn plan_of(conn: &mut PgConnection, body: &str, params: &[Value]) -> Result<Value> {
    // VERBOSE: the plan then names each scanned relation's schema.
    let sql = format!("EXPLAIN (VERBOSE, FORMAT JSON)\n{body}\n");
    let stmt = (&mut *conn)
        .prepare(AssertSqlSafe(sql).into_sql_str())
        .await
        .map_err(AppError::from)?;
    let arguments = bind_params(&statement_params(&stmt), params)?;
    let row = stmt
        .query_with(arguments)
        .fetch_one(&mut *conn)
        .await
        .map_err(AppError::from)?;
    let plan: sqlx::types::Json<Value> = row.try_get(0).map_err(AppError::from)?;
    Ok(plan.0[0]["Plan"].clone())
}

/// The plan of `body` with the hypothetical index `statement`. Hypothetical indexes live in
/// the backend, outside any transaction, and this is a pooled connection: they are reset
/// whatever happens, after a savepoint has undone a failed plan.
async fn with_hypothetical(
    conn: &mut PgConnection,
    statement: &str,
    body: &str,
    params: &[Value],
) -> Result<Value> {
    sqlx::raw_sql("SAVEPOINT index_advice")
        .execute(&mut *conn)
        .await
        .map_err(AppError::from)?;
    let planned = async {
        sqlx::query("SELECT * FROM hypopg_create_index($1)")
            .bind(statement)
            .execute(&mut *conn)
            .await
            .map_err(AppError::from)?;
        plan_of(conn, body, params).await
    }
    .await;
    sqlx::raw_sql("ROLLBACK TO SAVEPOINT index_advice; SELECT hypopg_reset()")
        .execute(&mut *conn)
        .await
        .map_err(AppError::from)?;
    planned
}

/// Whether an index of `schema.table` already starts with `columns` (in any order).
async fn covered(conn: &mut PgConnection, c: &Candidate) -> Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (
           SELECT 1 FROM pg_index x
           JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
           WHERE n.nspname = $1 AND t.relname = $2 AND x.indisvalid AND x.indpred IS NULL
             AND (SELECT array_agg(a.attname::text ORDER BY k.i)
                  FROM unnest(string_to_array(x.indkey::text, ' ')::int2[]) WITH ORDINALITY k(attnum, i)
                  JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                  WHERE k.i <= cardinality($3::text[])) @> $3::text[])",
    )
    .bind(&c.schema)
    .bind(&c.table)
    .bind(&c.columns)
    .fetch_one(&mut *conn)
    .await
    .map_err(AppError::from)
}

/// `index_advice`.
pub async fn index_advice(call: &Call<'_>, args: IndexAdviceArgs) -> Result<Value> {
    let checked = crate::sql::guard::check(&args.sql, &call.state.guard())?;
    if !checked.kind.is_read_only() {
        return Err(AppError::validation(
            "index_advice takes one read-only query (SELECT, WITH ... SELECT, VALUES, TABLE)",
        ));
    }
    let accepted = crate::sql::cache::AcceptedSql::new(&args.sql, checked.kind, false);
    let db = call.database(args.database.as_deref())?;
    call.tx(&db, async |conn| {
        advise(conn, &db.name, &accepted.body, &args.params).await
    })
    .await
}

/// The advice for `body`, planned on `conn` (a read-only transaction the caller rolls back).
async fn advise(
    conn: &mut PgConnection,
    database: &str,
    body: &str,
    params: &[Value],
) -> Result<Value> {
    let before = plan_of(conn, body, params).await?;
    let cost_before = before["Total Cost"].as_f64().unwrap_or(0.0);
    let mut found = Vec::new();
    collect(&before, &mut found);
    let mut seen = BTreeSet::new();
    found.retain(|c| seen.insert((c.schema.clone(), c.table.clone(), c.columns.clone())));
    let mut candidates = Vec::new();
    for c in found {
        if !covered(conn, &c).await? {
            candidates.push(c);
        }
    }
    let hypopg: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'hypopg')")
            .fetch_one(&mut *conn)
            .await
            .map_err(AppError::from)?;
    let mut advice = Vec::new();
    for c in &candidates {
        let statement = c.statement();
        let mut entry = json!({
            "schema": c.schema,
            "table": c.table,
            "columns": c.columns,
            "create_index": statement,
            "reason": c.reason,
            "verified": false,
        });
        if hypopg {
            let after = with_hypothetical(conn, &statement, body, params).await?;
            let cost_after = after["Total Cost"].as_f64().unwrap_or(cost_before);
            entry["verified"] = json!(true);
            entry["estimated_cost_after"] = json!(cost_after);
            entry["improvement_percent"] = json!(if cost_before > 0.0 {
                ((cost_before - cost_after) / cost_before * 1000.0).round() / 10.0
            } else {
                0.0
            });
        }
        advice.push(entry);
    }
    if hypopg {
        advice.sort_by(|a, b| {
            b["improvement_percent"]
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&a["improvement_percent"].as_f64().unwrap_or(0.0))
        });
    }
    let method = if hypopg { "hypopg" } else { "heuristic" };
    let summary = match advice.first() {
        None => "no index to suggest: the plan has no sequential scan with a filter, sort or hash join that one would help".to_string(),
        Some(first) if hypopg => format!(
            "{} candidate indexes, verified with hypopg; best: {} (estimated cost {cost_before} → {})",
            advice.len(),
            first["create_index"].as_str().unwrap_or_default(),
            first["estimated_cost_after"]
        ),
        Some(first) => format!(
            "{} candidate indexes from the plan (heuristic: hypopg is not installed, so not verified); first: {}",
            advice.len(),
            first["create_index"].as_str().unwrap_or_default()
        ),
    };
    Ok(json!({
        "database": database,
        "summary": summary,
        "method": method,
        "estimated_cost_before": cost_before,
        "candidates": advice,
        "truncated": false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_give_equality_columns_first() {
        assert_eq!(condition_columns("(customer_id = 42)"), vec!["customer_id"]);
        assert_eq!(
            condition_columns(
                "((created_at >= '2025-01-01'::date) AND ((status)::text = 'paid'::text))"
            ),
            vec!["status", "created_at"]
        );
        assert_eq!(
            condition_columns("((o.store_id = $1) AND (o.total > 10))"),
            vec!["store_id", "total"]
        );
        assert!(condition_columns("(x IS NOT NULL)").is_empty());
    }

    #[test]
    fn sort_keys_and_statements() {
        assert_eq!(
            sort_column("o.created_at DESC").as_deref(),
            Some("created_at")
        );
        assert_eq!(sort_column("lower((name)::text)"), None);
        let c = Candidate {
            schema: "shop".into(),
            table: "Big Table".into(),
            columns: vec!["a".into(), "b".into()],
            reason: String::new(),
        };
        assert_eq!(c.statement(), "CREATE INDEX ON shop.\"Big Table\" (a, b)");
    }
}

//! `explain_query`: the plan of one guarded query, optionally with ANALYZE, run inside the
//! caller's read-only tenant transaction (so ANALYZE sees that tenant's rows and writes nothing).

use std::time::Instant;

use futures::TryStreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Executor, Row, SqlSafeStr, Statement};

use crate::db::params::bind_params;
use crate::error::{AppError, Result};
use crate::tools::Call;
use crate::tools::query::{check_sql, statement_params};

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PlanFormat {
    #[default]
    Json,
    Text,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExplainArgs {
    /// The query to explain (one read-only statement, without EXPLAIN).
    pub sql: String,
    /// Run the query and report actual rows and timings (still read-only, under your tenant).
    #[serde(default)]
    pub analyze: bool,
    /// "json" (default) or "text".
    #[serde(default)]
    pub format: PlanFormat,
    /// Values for $1, $2 ... placeholders.
    #[serde(default)]
    #[schemars(schema_with = "crate::db::params::params_schema")]
    pub params: Vec<Value>,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// The answer of `explain_query`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ExplainOutput {
    /// `json` or `text`.
    pub format: String,
    pub analyze: bool,
    /// PostgreSQL's plan: the EXPLAIN (FORMAT JSON) array, or the text plan as one string.
    pub plan: Value,
    pub duration_ms: f64,
}

pub async fn explain_query(call: &Call<'_>, args: ExplainArgs) -> Result<Value> {
    let db = call.database(args.database.as_deref())?;
    let checked = check_sql(call, &db, &args.sql).await?;
    let timeout_ms = call.tx_options().statement_timeout_ms();
    let db_err = |e| AppError::from_sqlx(e, timeout_ms);

    let options = match (args.analyze, args.format) {
        (true, PlanFormat::Json) => "ANALYZE, BUFFERS, FORMAT JSON",
        (true, PlanFormat::Text) => "ANALYZE, BUFFERS, FORMAT TEXT",
        (false, PlanFormat::Json) => "FORMAT JSON",
        (false, PlanFormat::Text) => "FORMAT TEXT",
    };
    let sql = format!("EXPLAIN ({options})\n{}\n", checked.body);

    let started = Instant::now();
    let rows: Vec<_> = call
        .tx(&db, async |tx| {
            let stmt = (&mut *tx)
                .prepare(AssertSqlSafe(sql).into_sql_str())
                .await
                .map_err(db_err)?;
            let arguments = bind_params(&statement_params(&stmt), &args.params)?;
            stmt.query_with(arguments)
                .fetch(&mut *tx)
                .try_collect()
                .await
                .map_err(db_err)
        })
        .await?;

    let plan = match args.format {
        PlanFormat::Json => {
            let row = rows
                .first()
                .ok_or_else(|| AppError::internal("EXPLAIN returned no rows"))?;
            let text: sqlx::types::Json<Value> = row.try_get(0).map_err(db_err)?;
            text.0
        }
        PlanFormat::Text => {
            let lines: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<std::result::Result<_, _>>()
                .map_err(db_err)?;
            Value::String(lines.join("\n"))
        }
    };
    crate::tools::to_json(ExplainOutput {
        format: if args.format == PlanFormat::Json {
            "json"
        } else {
            "text"
        }
        .to_string(),
        analyze: args.analyze,
        plan,
        duration_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1000.0,
    })
}

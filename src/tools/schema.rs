//! `list_tables`, `get_table_schema`, `get_multiple_table_schemas`: answered from the schema
//! cache (`crate::schema`), within the schema output budget.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::catalog::TableSchema;
use crate::error::{AppError, ErrorBody, Result};
use crate::schema::listing::{self, ListRequest, TablePage};
use crate::schema::prompt;
use crate::tools::{Call, to_json};

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTablesArgs {
    /// Only this schema (e.g. "retail"); omit for every exposed schema.
    pub schema: Option<String>,
    /// Name filter: `*` or `%` match any run of characters, `?` or `_` one (e.g. "order*");
    /// without a wildcard, a case-insensitive substring. Matched against `name` and
    /// `schema.name`.
    pub pattern: Option<String>,
    /// Entries per page, 1-1000 (default 100). A page also ends before it would exceed the
    /// byte budget.
    pub page_size: Option<usize>,
    /// `next_cursor` of the previous page (with the same schema and pattern).
    pub cursor: Option<String>,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TableSchemaArgs {
    /// Table or view name, optionally schema-qualified: "orders" or "retail.orders".
    pub table_name: String,
    /// Schema of the table when table_name is not qualified (default: search path, then any schema).
    pub schema: Option<String>,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// How `get_multiple_table_schemas` describes tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SchemaFormat {
    /// Structured, as `get_table_schema`.
    #[default]
    Json,
    /// Compact prompt text: columns with keys, foreign keys and enums, indexes.
    Text,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MultipleTableSchemasArgs {
    /// Table or view names, each optionally schema-qualified (at most 50).
    pub table_names: Vec<String>,
    /// Schema for unqualified names.
    pub schema: Option<String>,
    /// `json` (default) or `text` (compact, several times smaller).
    #[serde(default)]
    pub format: SchemaFormat,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// A table that could not be described, in a multi-table answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TableError {
    pub table_name: String,
    pub error: ErrorBody,
}

/// One entry of `get_multiple_table_schemas`: the description, or why there is none.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TableEntry {
    Described(Box<TableSchema>),
    Failed(TableError),
}

/// The answer of `get_multiple_table_schemas`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MultipleTableSchemas {
    /// Entries in `tables` (json format: described and failed; text format: failed only).
    pub count: usize,
    /// Tables that do not exist or are not visible.
    pub errors: usize,
    pub tables: Vec<TableEntry>,
    /// The described tables as prompt text (text format only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Tables left out because the answer reached the byte budget: ask for them again.
    pub omitted: Vec<String>,
    pub truncated: bool,
    pub budget_bytes: usize,
}

pub async fn list_tables(call: &Call<'_>, args: ListTablesArgs) -> Result<Value> {
    let snapshot = call.schema(args.database.as_deref()).await?;
    let page: TablePage = listing::list_tables(
        &snapshot,
        &ListRequest {
            schema: args.schema.as_deref(),
            pattern: args.pattern.as_deref(),
            page_size: args.page_size,
            cursor: args.cursor.as_deref(),
            budget_bytes: call.config.schema_output_budget_bytes,
        },
    )?;
    to_json(page)
}

pub async fn get_table_schema(call: &Call<'_>, args: TableSchemaArgs) -> Result<Value> {
    if args.table_name.trim().is_empty() {
        return Err(AppError::validation("table_name must not be empty"));
    }
    let snapshot = call.schema(args.database.as_deref()).await?;
    to_json(snapshot.table(&args.table_name, args.schema.as_deref())?)
}

pub async fn get_multiple_table_schemas(
    call: &Call<'_>,
    args: MultipleTableSchemasArgs,
) -> Result<Value> {
    if args.table_names.is_empty() || args.table_names.len() > 50 {
        return Err(AppError::validation(
            "table_names must list between 1 and 50 tables",
        ));
    }
    let snapshot = call.schema(args.database.as_deref()).await?;
    let budget = call.config.schema_output_budget_bytes;
    let mut failed = Vec::new();
    let mut found: Vec<(usize, &TableSchema)> = Vec::new();
    for (i, name) in args.table_names.iter().enumerate() {
        match snapshot.table(name, args.schema.as_deref()) {
            Ok(t) => found.push((i, t)),
            Err(e) => failed.push((
                i,
                TableError {
                    table_name: name.clone(),
                    error: e.body(),
                },
            )),
        }
    }
    let errors = failed.len();
    // Errors are small and always shown; descriptions fill the rest of the budget in order.
    let mut used: usize = failed
        .iter()
        .map(|(_, e)| serde_json::to_vec(e).map_or(0, |v| v.len() + 1))
        .sum::<usize>()
        + 200;
    let mut omitted = Vec::new();
    let answer = match args.format {
        SchemaFormat::Text => {
            let (text, left_out) = prompt::tables_text(
                "",
                found.iter().map(|(_, t)| *t),
                budget.saturating_sub(used),
            );
            omitted = left_out;
            MultipleTableSchemas {
                count: failed.len(),
                errors,
                tables: failed
                    .into_iter()
                    .map(|(_, e)| TableEntry::Failed(e))
                    .collect(),
                text: Some(text),
                truncated: !omitted.is_empty(),
                omitted,
                budget_bytes: budget,
            }
        }
        SchemaFormat::Json => {
            let mut entries: Vec<(usize, TableEntry)> = Vec::new();
            for (i, t) in found {
                let size = serde_json::to_vec(t).map_or(0, |v| v.len() + 1);
                if omitted.is_empty() && used + size <= budget {
                    used += size;
                    entries.push((i, TableEntry::Described(Box::new(t.clone()))));
                } else {
                    omitted.push(format!("{}.{}", t.schema, t.table_name));
                }
            }
            entries.extend(failed.into_iter().map(|(i, e)| (i, TableEntry::Failed(e))));
            entries.sort_by_key(|(i, _)| *i);
            MultipleTableSchemas {
                count: entries.len(),
                errors,
                tables: entries.into_iter().map(|(_, e)| e).collect(),
                text: None,
                truncated: !omitted.is_empty(),
                omitted,
                budget_bytes: budget,
            }
        }
    };
    to_json(answer)
}

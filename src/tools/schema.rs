//! `list_tables`, `get_table_schema`, `get_multiple_table_schemas`.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::catalog;
use crate::error::{AppError, Result};
use crate::tools::Call;

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTablesArgs {
    /// Only this schema (e.g. "retail"); omit for every user schema.
    pub schema: Option<String>,
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

#[derive(Debug, Deserialize, JsonSchema)]
pub struct MultipleTableSchemasArgs {
    /// Table or view names, each optionally schema-qualified (at most 50).
    pub table_names: Vec<String>,
    /// Schema for unqualified names.
    pub schema: Option<String>,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| AppError::internal(e.to_string()))
}

pub async fn list_tables(call: &Call<'_>, args: ListTablesArgs) -> Result<Value> {
    let db = call.database(args.database.as_deref())?;
    let tables = call
        .tx(&db, async |tx| {
            catalog::list_tables(tx, args.schema.as_deref(), &call.state.guard.exposure).await
        })
        .await?;
    Ok(json!({ "count": tables.len(), "tables": to_json(tables)? }))
}

pub async fn get_table_schema(call: &Call<'_>, args: TableSchemaArgs) -> Result<Value> {
    if args.table_name.trim().is_empty() {
        return Err(AppError::validation("table_name must not be empty"));
    }
    let db = call.database(args.database.as_deref())?;
    let schema = call
        .tx(&db, async |tx| {
            catalog::table_schema(
                tx,
                &args.table_name,
                args.schema.as_deref(),
                &call.state.guard.exposure,
            )
            .await
        })
        .await?;
    to_json(schema)
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
    let db = call.database(args.database.as_deref())?;
    let mut tables = Vec::with_capacity(args.table_names.len());
    let mut errors = 0;
    // One transaction per table: a missing table aborts only its own transaction.
    for name in &args.table_names {
        let described = call
            .tx(&db, async |tx| {
                Ok(catalog::table_schema(
                    tx,
                    name,
                    args.schema.as_deref(),
                    &call.state.guard.exposure,
                )
                .await)
            })
            .await?;
        match described {
            Ok(schema) => tables.push(to_json(schema)?),
            Err(e) => {
                errors += 1;
                tables.push(catalog::error_entry(name, &e));
            }
        }
    }
    Ok(json!({ "count": tables.len(), "errors": errors, "tables": tables }))
}

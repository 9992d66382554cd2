//! MCP resources over the schema cache (seed 002 §5.1), and completions of their arguments:
//!
//! - `databases://list`: each configured database with its table and view counts;
//! - `schema://{database}`: the prompt-ready schema text, within the output budget;
//! - `table://{database}/{schema}/{table}`: one table's prompt text.
//!
//! Reads and completions run through the tools pipeline like a tool call (tenant required,
//! rate limit, metrics, history), though they read only the catalogue.

use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::{Value, json};

use crate::error::{AppError, ErrorCode, Result};
use crate::schema::prompt;
use crate::tools::Call;

pub const DATABASES_URI: &str = "databases://list";
pub const SCHEMA_TEMPLATE: &str = "schema://{database}";
pub const TABLE_TEMPLATE: &str = "table://{database}/{schema}/{table}";
/// Completions answer at most this many values (the MCP limit).
const MAX_COMPLETIONS: usize = 100;

/// A parsed resource URI.
#[derive(Debug, PartialEq, Eq)]
pub enum ResourceUri {
    Databases,
    Schema {
        database: String,
    },
    Table {
        database: String,
        schema: String,
        table: String,
    },
}

fn decode(part: &str) -> Result<String> {
    let decoded = percent_decode_str(part)
        .decode_utf8()
        .map_err(|_| AppError::validation("resource URI is not valid UTF-8"))?;
    if decoded.is_empty() {
        return Err(AppError::validation("resource URI has an empty part"));
    }
    Ok(decoded.into_owned())
}

/// A name as it appears in a URI (percent-encoded but for letters and digits).
pub fn encode(name: &str) -> String {
    utf8_percent_encode(name, NON_ALPHANUMERIC)
        .to_string()
        .replace("%5F", "_")
}

impl ResourceUri {
    pub fn parse(uri: &str) -> Result<Self> {
        let unknown = || {
            AppError::new(
                ErrorCode::NotFound,
                format!(
                    "unknown resource {uri:?}: resources are {DATABASES_URI}, {SCHEMA_TEMPLATE} and {TABLE_TEMPLATE}"
                ),
            )
        };
        if uri == DATABASES_URI {
            return Ok(Self::Databases);
        }
        if let Some(rest) = uri.strip_prefix("schema://") {
            let database = decode(rest.trim_end_matches('/'))?;
            return Ok(Self::Schema { database });
        }
        if let Some(rest) = uri.strip_prefix("table://") {
            let parts: Vec<&str> = rest.split('/').collect();
            if let [database, schema, table] = parts.as_slice() {
                return Ok(Self::Table {
                    database: decode(database)?,
                    schema: decode(schema)?,
                    table: decode(table)?,
                });
            }
        }
        Err(unknown())
    }
}

/// The text of one resource: `{"uri", "text"}`.
pub async fn read(call: &Call<'_>, uri: &str) -> Result<Value> {
    let text = match ResourceUri::parse(uri)? {
        ResourceUri::Databases => databases_text(call).await,
        ResourceUri::Schema { database } => {
            let snapshot = call.schema(Some(&database)).await?;
            prompt::schema_text(&snapshot, call.config.schema_output_budget_bytes)
        }
        ResourceUri::Table {
            database,
            schema,
            table,
        } => {
            let snapshot = call.schema(Some(&database)).await?;
            prompt::table_text(snapshot.table(&table, Some(&schema))?)
        }
    };
    Ok(json!({ "uri": uri, "text": text }))
}

/// Seed 002's listing: `- name (N tables, M views)` per database.
async fn databases_text(call: &Call<'_>) -> String {
    let mut lines = vec!["Available Databases:".to_string()];
    for name in call.state.databases.names() {
        match call.schema(Some(&name)).await {
            Ok(snapshot) => {
                let s = snapshot.summary();
                lines.push(format!("- {name} ({} tables, {} views)", s.tables, s.views));
            }
            Err(e) => lines.push(format!("- {name} (unavailable: {})", e.code)),
        }
    }
    lines.join("\n")
}

/// Values for argument `argument` of template `template` starting with `prefix`, using the
/// arguments already chosen (`chosen`: database, schema). `{"values", "total"}`.
pub async fn complete(
    call: &Call<'_>,
    template: &str,
    argument: &str,
    prefix: &str,
    chosen: &std::collections::HashMap<String, String>,
) -> Result<Value> {
    let databases = call.state.databases.names();
    let candidates: Vec<String> = match (template, argument) {
        (SCHEMA_TEMPLATE | TABLE_TEMPLATE, "database") => databases,
        (TABLE_TEMPLATE, "schema") => {
            let snapshot = call
                .schema(chosen.get("database").map(String::as_str))
                .await?;
            snapshot
                .schema_counts()
                .keys()
                .map(|s| s.to_string())
                .collect()
        }
        (TABLE_TEMPLATE, "table") => {
            let snapshot = call
                .schema(chosen.get("database").map(String::as_str))
                .await?;
            let schema = chosen.get("schema");
            snapshot
                .listed()
                .filter(|t| schema.is_none_or(|s| t.schema == *s))
                .map(|t| t.table_name.clone())
                .collect()
        }
        _ => Vec::new(),
    };
    let lower = prefix.to_lowercase();
    let mut matching: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.to_lowercase().starts_with(&lower))
        .collect();
    matching.dedup();
    let total = matching.len();
    matching.truncate(MAX_COMPLETIONS);
    Ok(json!({ "values": matching, "total": total }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_names_round_trip() {
        assert_eq!(
            ResourceUri::parse("databases://list").unwrap(),
            ResourceUri::Databases
        );
        assert_eq!(
            ResourceUri::parse("schema://main").unwrap(),
            ResourceUri::Schema {
                database: "main".into()
            }
        );
        let uri = format!(
            "table://main/{}/{}",
            encode("my schema"),
            encode("order_items")
        );
        assert_eq!(uri, "table://main/my%20schema/order_items");
        assert_eq!(
            ResourceUri::parse(&uri).unwrap(),
            ResourceUri::Table {
                database: "main".into(),
                schema: "my schema".into(),
                table: "order_items".into()
            }
        );
        assert_eq!(
            ResourceUri::parse("table://main/retail").unwrap_err().code,
            ErrorCode::NotFound
        );
        assert!(ResourceUri::parse("file:///etc/passwd").is_err());
    }
}

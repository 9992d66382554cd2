//! The MCP side of the resources (`crate::tools::resources` reads them): what
//! `resources/list` and `resources/templates/list` show, errors as JSON-RPC errors,
//! completions, and `list_changed` notifications for sessions.

use rmcp::model::{CompleteResult, CompletionInfo, Resource, ResourceTemplate};
use rmcp::{ErrorData, Peer, RoleServer};
use serde_json::Value;

use crate::error::{AppError, ErrorCode};
use crate::state::AppState;
use crate::tools::resources::{DATABASES_URI, SCHEMA_TEMPLATE, TABLE_TEMPLATE, encode};

/// `databases://list` and one `schema://{database}` per configured database.
pub fn listed(state: &AppState) -> Vec<Resource> {
    let mut out = vec![
        Resource::new(DATABASES_URI, "databases")
            .with_title("Configured databases")
            .with_description("Each configured database with its table and view counts.")
            .with_mime_type("text/plain"),
    ];
    for name in state.databases.names() {
        out.push(
            Resource::new(format!("schema://{}", encode(&name)), format!("schema of {name}"))
                .with_description(
                    "The database's tables and views as compact prompt text: columns with keys, foreign keys and enums, indexes (within the output budget).",
                )
                .with_mime_type("text/plain"),
        );
    }
    out
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(SCHEMA_TEMPLATE, "schema")
            .with_title("Database schema")
            .with_description("A database's tables and views as compact prompt text.")
            .with_mime_type("text/plain"),
        ResourceTemplate::new(TABLE_TEMPLATE, "table")
            .with_title("Table")
            .with_description(
                "One table or view as compact prompt text: columns, keys, foreign keys, enums, indexes. Names are percent-encoded.",
            )
            .with_mime_type("text/plain"),
    ]
}

/// A failed read or completion as a JSON-RPC error with the stable code in its data.
pub fn protocol_error(err: AppError) -> ErrorData {
    let data = Some(err.to_json());
    match err.code {
        ErrorCode::NotFound | ErrorCode::UnknownDatabase => {
            ErrorData::resource_not_found(err.message, data)
        }
        ErrorCode::InternalError | ErrorCode::ConnectionError => {
            ErrorData::internal_error(err.message, data)
        }
        _ => ErrorData::invalid_params(err.message, data),
    }
}

/// `{"values", "total"}` as a completion result.
pub fn completion(found: Value) -> CompleteResult {
    let values: Vec<String> = found["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let total = found["total"].as_u64().unwrap_or(values.len() as u64);
    let has_more = total > values.len() as u64;
    let info = CompletionInfo::with_pagination(values, u32::try_from(total).ok(), has_more)
        .unwrap_or_default();
    CompleteResult::new(info)
}

/// One task per session and database: sends `list_changed` each time that database's
/// catalogue changes, until the session's transport closes.
pub fn notify_changes(state: &AppState, peer: Peer<RoleServer>) {
    for cache in state.schemas.all() {
        let mut changes = cache.subscribe();
        let peer = peer.clone();
        changes.mark_unchanged();
        tokio::spawn(async move {
            let mut closed_check = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() || peer.notify_resource_list_changed().await.is_err() {
                            break;
                        }
                    }
                    _ = closed_check.tick() => {
                        if peer.is_transport_closed() {
                            break;
                        }
                    }
                }
            }
        });
    }
}

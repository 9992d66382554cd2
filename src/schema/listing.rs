//! `list_tables` from a snapshot: filtered by schema and name pattern, in pages with an
//! opaque cursor, and never larger than the byte budget, so a 5,000-table database cannot
//! flood a model's context.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{Snapshot, is_view};
use crate::db::catalog::TableSchema;
use crate::error::{AppError, Result};

/// Longest comment shown in a listing (the full one is in `get_table_schema`).
const MAX_LISTED_COMMENT_CHARS: usize = 200;
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

/// One line of `list_tables`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TableSummary {
    pub schema: String,
    pub name: String,
    /// table, view, materialized_view, foreign_table, partitioned_table
    pub kind: String,
    /// From planner statistics (`reltuples`); -1 when the table was never analysed.
    pub estimated_rows: i64,
    /// The table's comment, cut at 200 characters.
    pub comment: Option<String>,
    pub rls_enabled: bool,
}

/// Tables and views per schema, among those matching the filters.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SchemaCount {
    pub schema: String,
    pub tables: usize,
    pub views: usize,
}

/// One page of `list_tables`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TablePage {
    /// Entries on this page.
    pub count: usize,
    /// Entries matching the filters, on every page.
    pub total: usize,
    pub tables: Vec<TableSummary>,
    /// Matching tables and views per schema (all pages).
    pub schemas: Vec<SchemaCount>,
    /// Pass as `cursor` (with the same filters) for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Whether more entries match than this page shows.
    pub truncated: bool,
    /// Why the page ended early: `page_size` or `byte_budget`.
    pub truncated_by: Option<String>,
    /// The byte budget of one answer (`PG_MCP_SCHEMA_OUTPUT_BUDGET_BYTES`).
    pub budget_bytes: usize,
}

/// What the caller asked for.
pub struct ListRequest<'a> {
    pub schema: Option<&'a str>,
    pub pattern: Option<&'a str>,
    pub page_size: Option<usize>,
    pub cursor: Option<&'a str>,
    pub budget_bytes: usize,
}

/// A name pattern: `*` or `%` for any run of characters, `?` or `_` for one; without a
/// wildcard, a case-insensitive substring. Matched against `name` and `schema.name`.
pub struct NamePattern(Option<regex::Regex>);

impl NamePattern {
    pub fn new(pattern: Option<&str>) -> Result<Self> {
        let Some(p) = pattern.map(str::trim).filter(|p| !p.is_empty()) else {
            return Ok(Self(None));
        };
        if p.chars().count() > 200 {
            return Err(AppError::validation(
                "pattern is longer than 200 characters",
            ));
        }
        let wild = p.contains(['*', '%', '?', '_']);
        let mut re = String::from("(?i)");
        if wild {
            re.push('^');
        }
        for c in p.chars() {
            match c {
                '*' | '%' => re.push_str(".*"),
                '?' | '_' if wild => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        if wild {
            re.push('$');
        }
        regex::Regex::new(&re)
            .map(|r| Self(Some(r)))
            .map_err(|e| AppError::validation(format!("invalid pattern: {e}")))
    }

    pub fn matches(&self, table: &TableSchema) -> bool {
        self.0.as_ref().is_none_or(|re| {
            re.is_match(&table.table_name)
                || re.is_match(&format!("{}.{}", table.schema, table.table_name))
        })
    }
}

fn summary(t: &TableSchema) -> TableSummary {
    TableSummary {
        schema: t.schema.clone(),
        name: t.table_name.clone(),
        kind: t.kind.clone(),
        estimated_rows: t.estimated_rows,
        comment: t
            .comment
            .as_deref()
            .map(|c| cut(c, MAX_LISTED_COMMENT_CHARS)),
        rls_enabled: t.rls_enabled,
    }
}

/// `text` cut at `max` characters, with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((byte, _)) => format!("{}…", &text[..byte]),
        None => text.to_string(),
    }
}

/// Ties a cursor to its filters, so one cannot be replayed with others.
fn filter_key(schema: Option<&str>, pattern: Option<&str>) -> String {
    let digest = Sha256::digest(format!("{schema:?}\u{1f}{pattern:?}"));
    hex::encode(&digest[..6])
}

fn encode_cursor(last: &TableSchema, filters: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "v1\u{1f}{}\u{1f}{}\u{1f}{filters}",
        last.schema, last.table_name
    ))
}

fn decode_cursor(cursor: &str, filters: &str) -> Result<(String, String)> {
    let invalid = || {
        AppError::validation(
            "invalid cursor: pass the next_cursor of the previous page, with the same schema and pattern",
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let parts: Vec<&str> = text.split('\u{1f}').collect();
    match parts.as_slice() {
        ["v1", schema, name, key] if *key == filters => Ok((schema.to_string(), name.to_string())),
        _ => Err(invalid()),
    }
}

/// Serialized size of `value` as it appears in the answer (with a separating comma).
fn json_len<T: Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map(|v| v.len() + 1).unwrap_or(0)
}

/// The page `request` asks for. Its JSON never exceeds the budget: it ends early, with a
/// cursor, when the next entry would not fit.
pub fn list_tables(snapshot: &Snapshot, request: &ListRequest) -> Result<TablePage> {
    let page_size = request.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(AppError::validation(format!(
            "page_size must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let schema = request.schema.map(str::trim).filter(|s| !s.is_empty());
    let pattern = NamePattern::new(request.pattern)?;
    let filters = filter_key(schema, request.pattern.map(str::trim));
    let after = request
        .cursor
        .filter(|c| !c.trim().is_empty())
        .map(|c| decode_cursor(c, &filters))
        .transpose()?;
    let matching: Vec<&TableSchema> = snapshot
        .listed()
        .filter(|t| schema.is_none_or(|s| t.schema == s || t.schema == s.to_lowercase()))
        .filter(|t| pattern.matches(t))
        .collect();

    let mut schemas: Vec<SchemaCount> = Vec::new();
    for t in &matching {
        if schemas.last().is_none_or(|s| s.schema != t.schema) {
            schemas.push(SchemaCount {
                schema: t.schema.clone(),
                tables: 0,
                views: 0,
            });
        }
        let last = schemas.last_mut().expect("pushed above");
        if is_view(t) {
            last.views += 1;
        } else {
            last.tables += 1;
        }
    }
    // The envelope: every field but the entries, with room for a cursor and the reason.
    let mut used = json_len(&TablePage {
        count: usize::MAX,
        total: usize::MAX,
        tables: Vec::new(),
        schemas: Vec::new(),
        next_cursor: Some("c".repeat(160)),
        truncated: false,
        truncated_by: Some("byte_budget".into()),
        budget_bytes: usize::MAX,
    });
    let schema_bytes: usize = schemas.iter().map(json_len).sum();
    // Counts per schema are dropped before they crowd out the tables themselves.
    if used + schema_bytes > request.budget_bytes / 2 {
        schemas.clear();
    } else {
        used += schema_bytes;
    }

    let start = match &after {
        Some((s, n)) => matching.partition_point(|t| (&t.schema, &t.table_name) <= (s, n)),
        None => 0,
    };
    let mut tables = Vec::new();
    let mut truncated_by = None;
    let mut last: Option<&TableSchema> = None;
    for t in &matching[start..] {
        if tables.len() == page_size {
            truncated_by = Some("page_size");
            break;
        }
        let entry = summary(t);
        let size = json_len(&entry);
        if used + size > request.budget_bytes {
            truncated_by = Some("byte_budget");
            break;
        }
        used += size;
        tables.push(entry);
        last = Some(t);
    }
    if truncated_by.is_some() && tables.is_empty() {
        return Err(AppError::validation(
            "the byte budget is too small for one entry",
        ));
    }
    let next_cursor = match (truncated_by, last) {
        (Some(_), Some(t)) => Some(encode_cursor(t, &filters)),
        _ => None,
    };
    Ok(TablePage {
        count: tables.len(),
        total: matching.len(),
        tables,
        schemas,
        truncated: next_cursor.is_some(),
        next_cursor,
        truncated_by: truncated_by.map(str::to_string),
        budget_bytes: request.budget_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableSchema {
        TableSchema {
            schema: "s".into(),
            table_name: name.into(),
            kind: "table".into(),
            comment: None,
            estimated_rows: 0,
            rls_enabled: false,
            rls_forced: false,
            columns: vec![],
            primary_key: vec![],
            unique_constraints: vec![],
            indexes: vec![],
            foreign_keys: vec![],
            referenced_by: vec![],
            view_definition: None,
            is_partition: false,
        }
    }

    #[test]
    fn patterns_are_wildcards_or_substrings() {
        let p = NamePattern::new(Some("ord*")).unwrap();
        assert!(p.matches(&table("orders")) && !p.matches(&table("reorders")));
        let p = NamePattern::new(Some("ORD")).unwrap();
        assert!(p.matches(&table("reorders")));
        let p = NamePattern::new(Some("s.t_")).unwrap();
        assert!(p.matches(&table("t1")) && !p.matches(&table("t12")));
        let p = NamePattern::new(Some("a.b(")).unwrap();
        assert!(p.matches(&table("xa.b(y")), "regex characters are literal");
    }

    #[test]
    fn a_cursor_is_bound_to_its_filters() {
        let key = filter_key(Some("s"), None);
        let c = encode_cursor(&table("t"), &key);
        assert_eq!(decode_cursor(&c, &key).unwrap(), ("s".into(), "t".into()));
        assert!(decode_cursor(&c, &filter_key(None, None)).is_err());
        assert!(decode_cursor("not a cursor!", &key).is_err());
    }
}

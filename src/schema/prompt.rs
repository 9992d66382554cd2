//! The compact text form of a schema for prompts (seed 002's `to_prompt_text`): one block per
//! table with its columns, keys and indexes, a fraction of the JSON's size. Used by the
//! `schema://` and `table://` resources, `get_multiple_table_schemas` with `format: "text"`,
//! and the `query` tool's schema context.

use std::fmt::Write;

use super::Snapshot;
use super::listing::cut;
use crate::db::catalog::TableSchema;

/// Longest comment carried into the text form.
const MAX_COMMENT_CHARS: usize = 160;

/// One table as prompt text.
pub fn table_text(t: &TableSchema) -> String {
    let mut out = String::new();
    let mut facts = vec![t.kind.replace('_', " ")];
    if t.estimated_rows >= 0 {
        facts.push(format!("~{} rows", t.estimated_rows));
    }
    if t.rls_enabled {
        facts.push("row-level security".into());
    }
    let _ = write!(
        out,
        "### {}.{} ({})",
        t.schema,
        t.table_name,
        facts.join(", ")
    );
    if let Some(c) = t.comment.as_deref().filter(|c| !c.trim().is_empty()) {
        let _ = write!(out, " -- {}", one_line(&cut(c, MAX_COMMENT_CHARS)));
    }
    out.push_str("\nColumns:\n");
    for col in &t.columns {
        let mut attrs = Vec::new();
        if t.primary_key.contains(&col.name) {
            attrs.push("PRIMARY KEY".to_string());
        }
        if !col.is_nullable {
            attrs.push("NOT NULL".into());
        }
        if t.unique_constraints
            .iter()
            .any(|u| u.columns.len() == 1 && u.columns[0] == col.name)
        {
            attrs.push("UNIQUE".into());
        }
        for fk in &t.foreign_keys {
            if let Some(pos) = fk.columns.iter().position(|c| *c == col.name) {
                let target = fk.referenced_columns.get(pos).map_or("", String::as_str);
                attrs.push(format!("FK -> {}.{target}", fk.referenced_table));
            }
        }
        if let Some(values) = &col.enum_values {
            let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
            attrs.push(format!("ENUM: {}", quoted.join(", ")));
        }
        if let Some(g) = &col.generated {
            attrs.push(format!("GENERATED {g}"));
        }
        let _ = write!(out, "  - {}: {}", col.name, col.data_type);
        if !attrs.is_empty() {
            let _ = write!(out, " ({})", attrs.join(", "));
        }
        if let Some(c) = col.comment.as_deref().filter(|c| !c.trim().is_empty()) {
            let _ = write!(out, " -- {}", one_line(&cut(c, MAX_COMMENT_CHARS)));
        }
        out.push('\n');
    }
    if !t.indexes.is_empty() {
        out.push_str("Indexes:\n");
        for idx in &t.indexes {
            let mut attrs = Vec::new();
            if idx.is_primary {
                attrs.push("PRIMARY");
            }
            if idx.is_unique {
                attrs.push("UNIQUE");
            }
            attrs.push(&idx.method);
            let _ = writeln!(
                out,
                "  - {} ({} on {})",
                idx.name,
                attrs.join(", "),
                idx.columns.join(", ")
            );
        }
    }
    if !t.referenced_by.is_empty() {
        let refs: Vec<String> = t
            .referenced_by
            .iter()
            .map(|fk| format!("{}({})", fk.table, fk.columns.join(", ")))
            .collect();
        let _ = writeln!(out, "Referenced by: {}", refs.join(", "));
    }
    out
}

/// Comments may hold newlines; the text form keeps one line per fact.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The prompt text of `tables` (in order) within `budget` bytes: whole tables only, then a
/// last line saying how many were left out. Returns the text and the tables left out.
pub fn tables_text<'a>(
    header: &str,
    tables: impl Iterator<Item = &'a TableSchema>,
    budget: usize,
) -> (String, Vec<String>) {
    let mut out = String::from(header);
    let mut omitted = Vec::new();
    // Room for the closing note, so the whole text stays within the budget.
    let reserve = 200;
    for t in tables {
        let block = table_text(t);
        if omitted.is_empty() && out.len() + block.len() + 1 + reserve <= budget {
            out.push_str(&block);
            out.push('\n');
        } else {
            omitted.push(format!("{}.{}", t.schema, t.table_name));
        }
    }
    if !omitted.is_empty() {
        let _ = writeln!(
            out,
            "[{} more tables not shown: the answer is limited to {budget} bytes. List them with list_tables (pattern, cursor) and read one with get_table_schema or table://.]",
            omitted.len()
        );
    }
    (out, omitted)
}

/// The whole database as prompt text (`schema://{database}`), within `budget` bytes.
pub fn schema_text(snapshot: &Snapshot, budget: usize) -> String {
    let counts = snapshot.summary();
    let header = format!(
        "Database: {} ({} tables, {} views)\n\n## Tables\n\n",
        snapshot.database, counts.tables, counts.views
    );
    let (mut text, _) = tables_text(&header, snapshot.listed(), budget);
    if !snapshot.catalog.enums.is_empty() {
        let mut types = String::from("## Custom Types\n");
        for e in &snapshot.catalog.enums {
            let quoted: Vec<String> = e.values.iter().map(|v| format!("'{v}'")).collect();
            let _ = writeln!(
                types,
                "- {}.{}: ENUM ({})",
                e.schema,
                e.name,
                quoted.join(", ")
            );
        }
        if text.len() + types.len() <= budget {
            text.push_str(&types);
        }
    }
    text
}

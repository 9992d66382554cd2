//! The schema context of a natural-language question: which tables the model is shown.
//!
//! A schema with at most `max_tables` tables is sent whole. A larger one is ranked: first by
//! the words the question shares with table names, column names and comments; then, when an
//! embedder is configured, the best candidates are re-ranked by the similarity of their
//! descriptions to the question (descriptions are embedded once and kept in the embedder's
//! cache). Seed 002 sends the whole schema, which a 5,000-table database cannot afford.

use std::collections::HashSet;

use crate::db::catalog::TableSchema;
use crate::schema::{Snapshot, prompt};
use crate::search::{CachedEmbedder, Embedder};

/// Candidates re-ranked by embeddings, per table finally chosen.
const CANDIDATES_PER_TABLE: usize = 3;

/// The tables chosen for one question and their prompt text.
pub struct SchemaContext {
    /// `schema.table`, most relevant first.
    pub tables: Vec<String>,
    pub text: String,
    /// `all`, `lexical` or `embedding`.
    pub ranking: &'static str,
}

/// Lowercase words of three letters or more, a plural `s` dropped.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(|w| {
            let w = w.to_lowercase();
            match w.strip_suffix('s') {
                Some(stem) if stem.chars().count() >= 3 => stem.to_string(),
                _ => w,
            }
        })
        .collect()
}

/// How many of the question's words the table's name (3 each), columns (1) and comments
/// (0.5) contain.
fn lexical_score(question: &HashSet<String>, table: &TableSchema) -> f64 {
    let hit = |text: &str, weight: f64| -> f64 {
        let found: HashSet<String> = words(text).into_iter().collect();
        question.intersection(&found).count() as f64 * weight
    };
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let comments: Vec<&str> = std::iter::once(table.comment.as_deref().unwrap_or(""))
        .chain(table.columns.iter().filter_map(|c| c.comment.as_deref()))
        .collect();
    hit(&format!("{} {}", table.schema, table.table_name), 3.0)
        + hit(&columns.join(" "), 1.0)
        + hit(&comments.join(" "), 0.5)
}

/// What is embedded for a table: its name, comment and columns.
fn description(table: &TableSchema) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    format!(
        "{}.{}: {} Columns: {}",
        table.schema,
        table.table_name,
        table.comment.as_deref().unwrap_or(""),
        columns.join(", ")
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let n = norm(a) * norm(b);
    if n == 0.0 { 0.0 } else { f64::from(dot / n) }
}

/// The tables to show the model for `question`, as prompt text within `budget` bytes.
pub async fn build(
    snapshot: &Snapshot,
    question: &str,
    max_tables: usize,
    budget: usize,
    embedder: Option<&CachedEmbedder>,
) -> SchemaContext {
    let max_tables = max_tables.max(1);
    let all: Vec<&TableSchema> = snapshot.listed().collect();
    let (chosen, ranking): (Vec<&TableSchema>, &'static str) = if all.len() <= max_tables {
        (all, "all")
    } else {
        let asked: HashSet<String> = words(question).into_iter().collect();
        let mut scored: Vec<(f64, &TableSchema)> =
            all.iter().map(|t| (lexical_score(&asked, t), *t)).collect();
        // Stable: ties keep schema and name order.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let candidates: Vec<(f64, &TableSchema)> = scored
            .into_iter()
            .take(max_tables * CANDIDATES_PER_TABLE)
            .collect();
        match embedder {
            Some(embedder) => match rerank(embedder, question, &candidates).await {
                Some(ranked) => (ranked.into_iter().take(max_tables).collect(), "embedding"),
                None => (
                    candidates
                        .iter()
                        .take(max_tables)
                        .map(|(_, t)| *t)
                        .collect(),
                    "lexical",
                ),
            },
            None => (
                candidates
                    .iter()
                    .take(max_tables)
                    .map(|(_, t)| *t)
                    .collect(),
                "lexical",
            ),
        }
    };
    let header = format!("Database: {}\n\n## Tables\n\n", snapshot.database);
    let (text, _) = prompt::tables_text(&header, chosen.iter().copied(), budget);
    SchemaContext {
        tables: chosen
            .iter()
            .map(|t| format!("{}.{}", t.schema, t.table_name))
            .collect(),
        text,
        ranking,
    }
}

/// The candidates by embedding similarity to the question (lexical matches keep a small
/// edge); `None` when the embedder fails, so the lexical order stands.
async fn rerank<'a>(
    embedder: &CachedEmbedder,
    question: &str,
    candidates: &[(f64, &'a TableSchema)],
) -> Option<Vec<&'a TableSchema>> {
    let mut texts: Vec<String> = candidates.iter().map(|(_, t)| description(t)).collect();
    texts.push(question.to_string());
    let vectors = match embedder.embed(&texts).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "schema context: embeddings failed; ranking by words only");
            return None;
        }
    };
    let (asked, tables) = vectors.split_last()?;
    let mut ranked: Vec<(f64, &TableSchema)> = candidates
        .iter()
        .zip(tables)
        .map(|((lexical, t), v)| (cosine(asked, v) + 0.05 * lexical.min(6.0), *t))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    Some(ranked.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercase_stems() {
        assert_eq!(words("Top Orders by store_id"), ["top", "order", "store"]);
        assert_eq!(words("customers' emails"), ["customer", "email"]);
    }
}

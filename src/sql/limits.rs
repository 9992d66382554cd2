//! Row limits applied to the SQL text itself, so the database never produces more rows than
//! the cap + 1 (the extra row only tells us the result was truncated).

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The statement without trailing semicolons and trailing comments/whitespace.
///
/// Uses sqlparser's tokenizer, so a `;` inside a string, a dollar-quoted body or a comment
/// is never mistaken for the end of the statement.
pub fn strip_trailing_terminators(sql: &str) -> &str {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize_with_location() else {
        return sql.trim_end();
    };
    // Byte offset just past the last significant (non-whitespace, non-comment, non-';') token.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> usize {
        let start = line_starts
            .get((line as usize).saturating_sub(1))
            .copied()
            .unwrap_or(sql.len());
        // Columns count characters, not bytes.
        sql[start..]
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map(|(i, _)| start + i)
            .unwrap_or(sql.len())
    };
    let mut end = 0;
    for tok in &tokens {
        match &tok.token {
            Token::Whitespace(Whitespace::Space | Whitespace::Tab | Whitespace::Newline)
            | Token::Whitespace(Whitespace::SingleLineComment { .. })
            | Token::Whitespace(Whitespace::MultiLineComment(_))
            | Token::SemiColon
            | Token::EOF => {}
            _ => end = offset(tok.span.end.line, tok.span.end.column),
        }
    }
    &sql[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_semicolons_and_trailing_comments_only() {
        assert_eq!(strip_trailing_terminators("SELECT 1;"), "SELECT 1");
        assert_eq!(
            strip_trailing_terminators("SELECT 1 ; -- done\n"),
            "SELECT 1"
        );
        assert_eq!(
            strip_trailing_terminators("SELECT ';' /* x */;;"),
            "SELECT ';'"
        );
        assert_eq!(
            strip_trailing_terminators("SELECT 'é' -- ü\n;"),
            "SELECT 'é'"
        );
        assert_eq!(strip_trailing_terminators("SELECT $$a;$$"), "SELECT $$a;$$");
    }
}

/// The statement with every literal replaced by `?`, for traces and logs: the shape of the
/// query without the caller's values (which may be personal data).
pub fn without_literals(sql: &str) -> String {
    masked_with_kinds(sql).0
}

/// [`without_literals`], and the kinds of the statements it holds (each one's first keyword,
/// upper case, distinct, in order, joined by `,`: `SELECT`, `WITH`, `INSERT,UPDATE`), for the
/// audit log. One tokenizer pass for both.
pub fn masked_with_kinds(sql: &str) -> (String, Option<String>) {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return ("<unparseable statement>".to_string(), None);
    };
    let mut out = String::with_capacity(sql.len());
    let mut kinds: Vec<String> = Vec::new();
    let mut at_start = true;
    for token in tokens {
        match &token {
            Token::SemiColon => at_start = true,
            Token::Word(word) if at_start => {
                at_start = false;
                let kind = word.value.to_ascii_uppercase();
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            Token::Whitespace(_) | Token::LParen => {}
            _ => at_start = false,
        }
        match token {
            Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedByteStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::EscapedStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::DollarQuotedString(_) => out.push('?'),
            Token::Whitespace(_) => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let kinds = (!kinds.is_empty()).then(|| kinds.join(","));
    (out.trim().to_string(), kinds)
}

#[cfg(test)]
mod literal_tests {
    use super::without_literals;

    #[test]
    fn literals_are_masked() {
        assert_eq!(
            without_literals(
                "SELECT * FROM t WHERE email = 'a@b.c' AND id = 42 -- secret\n AND x = $$y$$"
            ),
            "SELECT * FROM t WHERE email = ? AND id = ? AND x = ?"
        );
        assert_eq!(without_literals("SELECT $1::int"), "SELECT $1::int");
    }

    #[test]
    fn statement_kinds_are_each_statements_first_keyword() {
        let kinds = |sql| super::masked_with_kinds(sql).1;
        assert_eq!(kinds("select 1").as_deref(), Some("SELECT"));
        assert_eq!(
            kinds(" (SELECT 1) UNION SELECT 2").as_deref(),
            Some("SELECT")
        );
        assert_eq!(
            kinds("-- c\nINSERT INTO t VALUES (1);\nupdate t SET a = 2; INSERT INTO t VALUES (3)")
                .as_deref(),
            Some("INSERT,UPDATE")
        );
        assert_eq!(
            kinds("WITH x AS (SELECT 1) SELECT * FROM x").as_deref(),
            Some("WITH")
        );
        assert_eq!(kinds("'x'"), None);
    }
}

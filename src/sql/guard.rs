//! The SQL guard: parses caller SQL with sqlparser's PostgreSQL dialect and refuses what must not
//! run, before any database round trip.
//!
//! The database is the real enforcer (read-only transactions, a role without superuser or
//! BYPASSRLS, forced row-level security). The guard exists to give clear early errors and to block
//! what the database would allow but must not happen:
//!
//! * more than one statement per request, or text the parser did not consume;
//! * anything but a query in read-only mode (DML, DDL, data-modifying CTEs, `SELECT ... INTO`,
//!   locking clauses), at any depth of the statement;
//! * session, transaction and utility commands (`SET`, `RESET`, `SET ROLE`, `BEGIN`, `COMMIT`,
//!   `COPY`, `DO`, `CALL`, `PREPARE`, `LISTEN`, `VACUUM`, `GRANT`, `LOCK`, ...) in every mode: the
//!   server owns the transaction and the tenant setting, so the caller may not touch either;
//! * calls to denied functions ([`DENIED_FUNCTIONS`] plus [`GuardConfig::blocked_functions`])
//!   anywhere in the tree, in every mode.
//!
//! Anything sqlparser cannot parse is refused (fail closed).

use std::collections::HashSet;
use std::fmt;
use std::ops::ControlFlow;

use crate::error::{AppError, ErrorCode};
use sqlparser::ast::{
    DescribeAlias, FromTable, LockClause, ObjectName, ObjectNamePart, Query, Select, SetExpr,
    Statement, TableFactor, TableObject, Visit, Visitor,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// Functions refused in every mode, wherever they appear (select list, `FROM`, `WHERE`, CTEs,
/// subqueries, arguments, window specs, `VALUES`, ...).
///
/// Names are compared case-insensitively on the last part of the (possibly schema-qualified)
/// name, so `pg_catalog.set_config` and `"SET_CONFIG"` are refused too. A trailing `*` is a
/// prefix pattern. Why each family is here:
///
/// * `set_config`: changes settings, including the tenant setting the RLS policies read
///   (`current_setting` only reads, and stays allowed).
/// * `query_to_xml*`, `cursor_to_xml*`, `table_to_xml*`, `schema_to_xml*`, `database_to_xml*`,
///   `ts_stat`, `ts_rewrite`, `dblink*`, `pg_background_*`: run SQL text the guard never sees
///   (or query other databases).
/// * `pg_read_file`, `pg_read_binary_file`, `pg_ls_*`, `pg_stat_file`, `pg_file_*`,
///   `pg_logdir_ls`: server file-system access.
/// * `lo_*`, `loread`, `lowrite`: large objects, including server-side file import/export.
/// * `pg_sleep*`: ties up a connection on purpose.
/// * `pg_terminate_backend`, `pg_cancel_backend`, `pg_reload_conf`, `pg_rotate_logfile`,
///   `pg_log_backend_memory_contexts`: signals to the server and other sessions.
/// * `pg_advisory*`, `pg_try_advisory*`: session locks that outlive the request.
/// * `nextval`, `setval`: change sequences (writes, even in a read-only query).
/// * `pg_notify`, `pg_logical_emit_message`: side effects visible to other sessions.
/// * `pg_create_restore_point`, `pg_switch_wal`, `pg_promote`, `pg_wal_replay_*`,
///   `pg_backup_*`, `pg_start_backup`, `pg_stop_backup`, replication slot and origin functions,
///   `pg_import_system_collations`, `pg_stat_reset*`, `pg_stat_statements_reset`: server
///   administration.
///
/// Harmless readers stay allowed: `current_setting`, `txid_current`, `pg_size_pretty`,
/// `pg_total_relation_size`, `pg_database_size`, table statistics, ...
///
/// Views and functions that show other sessions (`pg_stat_activity`, `pg_locks`,
/// `pg_prepared_statements`, ...: [`super::cross_session`]) are refused too, with the reason;
/// the database has them closed to the application role as well.
pub const DENIED_FUNCTIONS: &[&str] = &[
    "set_config",
    "query_to_xml*",
    "cursor_to_xml*",
    "table_to_xml*",
    "schema_to_xml*",
    "database_to_xml*",
    "ts_stat",
    "ts_rewrite",
    "dblink*",
    "pg_background_*",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_*",
    "pg_stat_file",
    "pg_file_*",
    "pg_logdir_ls",
    "lo_*",
    "loread",
    "lowrite",
    "pg_sleep*",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_log_backend_memory_contexts",
    "pg_advisory*",
    "pg_try_advisory*",
    "nextval",
    "setval",
    "pg_notify",
    "pg_logical_emit_message",
    "pg_create_restore_point",
    "pg_switch_wal",
    "pg_promote",
    "pg_wal_replay_*",
    "pg_backup_*",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_replication_slot_advance",
    "pg_logical_slot_*",
    "pg_replication_origin_*",
    "pg_import_system_collations",
    "pg_stat_reset*",
    "pg_stat_statements_reset",
];

/// Operations a read-only guard can ever allow: queries and `EXPLAIN` of queries.
const READ_ONLY_OPERATIONS: &[&str] = &["SELECT", "WITH", "EXPLAIN"];

/// Operations allowed in read-write mode when [`GuardConfig::allowed_operations`] is `None`.
const READ_WRITE_OPERATIONS: &[&str] = &[
    "SELECT", "WITH", "EXPLAIN", "INSERT", "UPDATE", "DELETE", "MERGE",
];

/// Guard settings. The names follow the documented settings `READONLY_MODE`,
/// `MAX_QUERY_LENGTH`, `BLOCKED_KEYWORDS` and `ALLOWED_OPERATIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// Only queries (and `EXPLAIN` of queries) are accepted. Default `true`.
    pub read_only: bool,
    /// Longest accepted SQL text, in characters. Default 100 000.
    pub max_query_length: usize,
    /// Functions refused on top of [`DENIED_FUNCTIONS`]. Case-insensitive; `name*` is a prefix
    /// pattern; `schema.name` refuses the name qualified with that schema or unqualified.
    pub blocked_functions: Vec<String>,
    /// Operations (statement kinds) refused in every mode, e.g. `DROP`, `TRUNCATE`, `ALTER`.
    /// Compared against the operation names of [`StatementKind::operation`], `WITH` and
    /// `SELECT`, at any depth of the statement. Default `DROP, TRUNCATE, ALTER`.
    pub blocked_keywords: Vec<String>,
    /// Operations accepted, e.g. `SELECT, INSERT, UPDATE, DELETE, WITH, EXPLAIN`. `None` means
    /// by mode: `SELECT, WITH, EXPLAIN` when read-only, plus `INSERT, UPDATE, DELETE, MERGE` in
    /// read-write mode. Read-only mode never accepts more than queries, whatever this lists.
    /// `VALUES` and `TABLE` count as `SELECT`. DDL (`CREATE`, `ALTER`, `DROP`, `TRUNCATE`) is
    /// only ever accepted in read-write mode when listed here explicitly. Session, transaction
    /// and utility commands (`SET`, `COPY`, `CALL`, `GRANT`, ...) are never accepted.
    pub allowed_operations: Option<Vec<String>>,
    /// Schemas a query may name relations in (`PG_MCP_SCHEMAS`, `PG_MCP_HIDDEN_SCHEMAS`).
    /// Default: every schema but pg-mcp's own.
    pub exposure: crate::exposure::Exposure,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            read_only: true,
            max_query_length: 100_000,
            blocked_functions: Vec::new(),
            blocked_keywords: vec!["DROP".into(), "TRUNCATE".into(), "ALTER".into()],
            allowed_operations: None,
            exposure: crate::exposure::Exposure::default(),
        }
    }
}

/// An operation name for `PG_MCP_ALLOWED_OPERATIONS` / `PG_MCP_BLOCKED_KEYWORDS` (seed settings
/// `ALLOWED_OPERATIONS`, `BLOCKED_KEYWORDS`): parsed at start-up, so a typo is an error there,
/// not a surprise at query time. `GRANT`, `REVOKE` and `COPY` are never accepted anyway; they
/// may still be listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Operation {
    Select,
    With,
    Explain,
    Insert,
    Update,
    Delete,
    Merge,
    Create,
    Alter,
    Drop,
    Truncate,
    Grant,
    Revoke,
    Copy,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Select => "SELECT",
            Self::With => "WITH",
            Self::Explain => "EXPLAIN",
            Self::Insert => "INSERT",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Merge => "MERGE",
            Self::Create => "CREATE",
            Self::Alter => "ALTER",
            Self::Drop => "DROP",
            Self::Truncate => "TRUNCATE",
            Self::Grant => "GRANT",
            Self::Revoke => "REVOKE",
            Self::Copy => "COPY",
        }
    }
}

/// Why the guard refused a statement. [`GuardError::code`] gives the stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Nothing to run: empty, whitespace, semicolons or comments only.
    #[error("the SQL text is empty")]
    Empty,
    /// Longer than [`GuardConfig::max_query_length`] characters.
    #[error("the SQL text is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    /// The parser could not read it (or left text unread). Carries the parser's message.
    #[error("SQL syntax error: {0}")]
    Syntax(String),
    /// Parsed, but not allowed. `construct` names the offending piece (`set_config`, `DELETE`,
    /// `FOR UPDATE`, ...); `reason` is a sentence that names it too.
    #[error("{reason}")]
    Unsafe { reason: String, construct: String },
}

impl GuardError {
    /// Stable error code: `VALIDATION_ERROR`, `SYNTAX_ERROR` or `UNSAFE_SQL`.
    pub fn code(&self) -> ErrorCode {
        match self {
            GuardError::Empty | GuardError::TooLong { .. } => ErrorCode::ValidationError,
            GuardError::Syntax(_) => ErrorCode::SyntaxError,
            GuardError::Unsafe { .. } => ErrorCode::UnsafeSql,
        }
    }

    fn unsafe_sql(reason: impl Into<String>, construct: impl Into<String>) -> Self {
        GuardError::Unsafe {
            reason: reason.into(),
            construct: construct.into(),
        }
    }
}

/// A refusal as the server's error: its code, the sentence, and the offending construct.
impl From<GuardError> for AppError {
    fn from(e: GuardError) -> Self {
        let err = AppError::new(e.code(), e.to_string());
        match e {
            GuardError::Unsafe { construct, .. } => {
                err.with_details(serde_json::json!({ "construct": construct }))
            }
            _ => err,
        }
    }
}

/// The kind of the (single) accepted statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatementKind {
    /// `SELECT`, `WITH ... SELECT`, `VALUES`, `TABLE`, set operations.
    Query,
    Insert,
    Update,
    Delete,
    Merge,
    /// `EXPLAIN <statement>`; the inner statement was checked like a top-level one.
    Explain,
    /// `CREATE TABLE | VIEW | INDEX | SCHEMA | SEQUENCE` (and `CREATE TABLE AS`).
    Create,
    /// `ALTER TABLE | INDEX | VIEW | SCHEMA`.
    Alter,
    Drop,
    Truncate,
}

impl StatementKind {
    /// The operation name matched against `allowed_operations` and `blocked_keywords`.
    pub fn operation(self) -> &'static str {
        match self {
            StatementKind::Query => "SELECT",
            StatementKind::Insert => "INSERT",
            StatementKind::Update => "UPDATE",
            StatementKind::Delete => "DELETE",
            StatementKind::Merge => "MERGE",
            StatementKind::Explain => "EXPLAIN",
            StatementKind::Create => "CREATE",
            StatementKind::Alter => "ALTER",
            StatementKind::Drop => "DROP",
            StatementKind::Truncate => "TRUNCATE",
        }
    }

    /// True for statements that only read (queries and `EXPLAIN`).
    pub fn is_read_only(self) -> bool {
        matches!(self, StatementKind::Query | StatementKind::Explain)
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.operation())
    }
}

/// A statement that passed the guard.
///
/// It deliberately does not carry the parsed tree: dropping a deep tree recurses once per level,
/// and the guard makes sure that happens on a stack big enough for it (see [`check`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedSql {
    /// What the statement is.
    pub kind: StatementKind,
    /// An `UPDATE` or `DELETE` of every row: no `WHERE`, or one that names no column
    /// (`WHERE true`, `WHERE 1 = 1`). Write mode refuses it unless the call allows it.
    pub whole_table: bool,
}

/// Inputs with more tokens than this are checked on a helper thread with a stack sized for them.
///
/// sqlparser protects its parser and its visitor against deep recursion, but dropping a tree
/// does not: `SELECT 1 + 1 + ... + 1` builds a tree as deep as it is long, and dropping it
/// overflowed a 2 MiB (tokio worker) stack at about 20 000 levels in a debug build. Below this
/// many tokens the tree cannot be deep enough to matter on the caller's stack.
const INLINE_TOKEN_LIMIT: usize = 1_000;

/// Stack for the helper thread: a base plus a generous allowance per token (the tree can be at
/// most about one level per token). Only reserved address space; pages are used as touched.
fn helper_stack_size(tokens: usize) -> usize {
    (8 << 20) + tokens.saturating_mul(1 << 10)
}

/// Checks one SQL statement against the guard rules.
///
/// For `explain_query`, call this on the inner statement; the server builds the `EXPLAIN` text.
pub fn check(sql: &str, cfg: &GuardConfig) -> Result<CheckedSql, GuardError> {
    if sql.trim().is_empty() {
        return Err(GuardError::Empty);
    }
    let len = sql.chars().count();
    if len > cfg.max_query_length {
        return Err(GuardError::TooLong {
            len,
            max: cfg.max_query_length,
        });
    }

    // Tokenizing is iterative, so it is safe on any stack.
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize_with_location()
        .map_err(|e| GuardError::Syntax(e.to_string()))?;
    refuse_unicode_identifiers(&tokens)?;
    let significant = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .count();
    if significant <= INLINE_TOKEN_LIMIT {
        return check_tokens(tokens, cfg);
    }
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("sql-guard".into())
            .stack_size(helper_stack_size(significant))
            .spawn_scoped(scope, || check_tokens(tokens, cfg));
        match helper {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(e) => Err(GuardError::unsafe_sql(
                format!(
                    "statement size: could not start a checker thread for a long statement ({e})"
                ),
                "statement size",
            )),
        }
    })
}

/// Parses, classifies and visits; the tree is dropped here, on the stack that built it.
fn check_tokens(tokens: Vec<TokenWithSpan>, cfg: &GuardConfig) -> Result<CheckedSql, GuardError> {
    let statement = parse_one(tokens)?;
    let kind = statement_kind(&statement);
    let mut guard = Guard::new(cfg);
    if let ControlFlow::Break(err) = statement.visit(&mut guard) {
        return Err(err);
    }
    Ok(CheckedSql {
        kind,
        whole_table: whole_table(&statement),
    })
}

/// An `UPDATE` or `DELETE` whose `WHERE` is missing or names no column: it changes every row
/// the tenant may see.
fn whole_table(statement: &Statement) -> bool {
    let selection = match statement {
        Statement::Update(update) => &update.selection,
        Statement::Delete(delete) => &delete.selection,
        _ => return false,
    };
    match selection {
        None => true,
        Some(condition) => sqlparser::ast::visit_expressions(condition, |e| match e {
            sqlparser::ast::Expr::Identifier(_) | sqlparser::ast::Expr::CompoundIdentifier(_) => {
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        })
        .is_continue(),
    }
}

/// Parses exactly one statement (trailing semicolons allowed) and nothing else.
///
/// A hand-rolled loop rather than `Parser::parse_statements`, which stops silently at a stray
/// `END` keyword (leaving text unread) and does not accept a statement starting with `TABLE`.
fn parse_one(tokens: Vec<TokenWithSpan>) -> Result<Statement, GuardError> {
    let dialect = PostgreSqlDialect {};
    let syntax = |e: ParserError| {
        GuardError::Syntax(match e {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
            ParserError::RecursionLimitExceeded => "the statement is nested too deeply".into(),
        })
    };
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(tokens);
    while parser.consume_token(&Token::SemiColon) {}
    if parser.peek_token_ref().token == Token::EOF {
        // Only comments and semicolons.
        return Err(GuardError::Empty);
    }
    let leading = parser.peek_token_ref().token.clone();
    let parsed = if parser.peek_keyword(Keyword::TABLE) {
        // `TABLE name` is a query; sqlparser only knows it inside a query body.
        parser.parse_query().map(Statement::Query)
    } else {
        parser.parse_statement()
    };
    let statement = match parsed {
        Ok(statement) => statement,
        Err(e) => return Err(refused_keyword(&leading).unwrap_or_else(|| syntax(e))),
    };
    let mut terminated = false;
    while parser.consume_token(&Token::SemiColon) {
        terminated = true;
    }
    let next = parser.peek_token();
    if next.token == Token::EOF {
        return Ok(statement);
    }
    if !terminated {
        let message = format!(
            "Expected: end of statement, found: {}{}",
            next.token, next.span.start
        );
        return Err(refused_keyword(&leading).unwrap_or(GuardError::Syntax(message)));
    }
    // Count what follows for the message; unparseable text counts as one more.
    let more = parser
        .parse_statements()
        .map_or(1, |rest| rest.len().max(1));
    Err(GuardError::unsafe_sql(
        format!(
            "multiple statements are not allowed: send one statement per request (found {})",
            1 + more
        ),
        "multiple statements",
    ))
}

/// Refuses `U&"..."` identifiers. PostgreSQL decodes their escapes (`U&"set\005fconfig"` is
/// `set_config`) but sqlparser reads them as `U & "set\005fconfig"`, so the guard could not see
/// the real name. `U&'...'` strings are fine: sqlparser decodes those.
fn refuse_unicode_identifiers(tokens: &[TokenWithSpan]) -> Result<(), GuardError> {
    let bare_u = |t: &Token| matches!(t, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("u"));
    let quoted = |t: &Token| matches!(t, Token::Word(w) if w.quote_style == Some('"'));
    // Adjacent tokens: no whitespace or comment between them, as in PostgreSQL's `U&"`.
    let unicode_identifier = tokens
        .windows(3)
        .any(|w| bare_u(&w[0].token) && w[1].token == Token::Ampersand && quoted(&w[2].token));
    if unicode_identifier {
        return Err(GuardError::unsafe_sql(
            "Unicode-escaped identifiers (U&\"...\") are not allowed; write the name plainly",
            "U&\"...\"",
        ));
    }
    Ok(())
}

/// The kind reported for an accepted statement. A query that writes is reported as the write
/// (`WITH ... INSERT`, `WITH d AS (DELETE ...) SELECT ...`) and `SELECT ... INTO` as a create,
/// so that `Query` always means "only reads, and may be wrapped as a subquery".
fn statement_kind(statement: &Statement) -> StatementKind {
    let Statement::Query(query) = statement else {
        return match classify(statement) {
            Class::Op { kind, .. } => kind,
            // Never reached for accepted statements: the visitor refuses these.
            Class::Never(_) => StatementKind::Query,
        };
    };
    let ctes = query.with.iter().flat_map(|with| &with.cte_tables);
    for body in std::iter::once(query.body.as_ref()).chain(ctes.map(|cte| cte.query.body.as_ref()))
    {
        match body {
            SetExpr::Insert(inner)
            | SetExpr::Update(inner)
            | SetExpr::Delete(inner)
            | SetExpr::Merge(inner) => return statement_kind(inner),
            _ => {}
        }
    }
    match query.body.as_ref() {
        SetExpr::Select(select) if select.into.is_some() => StatementKind::Create,
        _ => StatementKind::Query,
    }
}

/// Commands sqlparser 0.63 cannot parse but which must read as refusals, not syntax errors
/// (they would be refused anyway; this only makes the error clearer).
#[rustfmt::skip]
const NEVER_KEYWORDS: &[&str] = &[
    "DO", "CALL", "COPY", "SET", "RESET", "LISTEN", "NOTIFY", "UNLISTEN",
    "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE",
    "PREPARE", "EXECUTE", "DEALLOCATE", "DISCARD", "DECLARE", "FETCH", "MOVE", "CLOSE",
    "VACUUM", "GRANT", "REVOKE", "LOCK", "CHECKPOINT", "CLUSTER", "REINDEX", "REFRESH",
    "LOAD", "SECURITY", "IMPORT", "REASSIGN",
];

/// When the text does not parse, names a never-allowed leading command instead of a syntax error.
fn refused_keyword(leading: &Token) -> Option<GuardError> {
    let Token::Word(word) = leading else {
        return None;
    };
    if word.quote_style.is_some() {
        return None;
    }
    let upper = word.value.to_ascii_uppercase();
    NEVER_KEYWORDS
        .contains(&upper.as_str())
        .then(|| GuardError::unsafe_sql(format!("{upper} is not allowed"), upper))
}

/// How a statement is treated: an operation governed by the mode and settings, or a command
/// that is never allowed (named by its construct).
enum Class {
    Op {
        kind: StatementKind,
        construct: String,
    },
    Never(String),
}

fn op(kind: StatementKind) -> Class {
    Class::Op {
        kind,
        construct: kind.operation().to_string(),
    }
}

fn op_named(kind: StatementKind, construct: &str) -> Class {
    Class::Op {
        kind,
        construct: construct.to_string(),
    }
}

fn never(construct: &str) -> Class {
    Class::Never(construct.to_string())
}

fn classify(statement: &Statement) -> Class {
    use StatementKind as K;
    use sqlparser::ast::Set;
    match statement {
        Statement::Query(_) => op(K::Query),
        Statement::Insert(_) => op(K::Insert),
        Statement::Update(_) => op(K::Update),
        Statement::Delete(_) => op(K::Delete),
        Statement::Merge(_) => op(K::Merge),
        Statement::Explain { describe_alias, .. } => match describe_alias {
            DescribeAlias::Explain => op(K::Explain),
            other => never(&other.to_string()),
        },
        Statement::CreateTable(ct) if ct.query.is_some() => op_named(K::Create, "CREATE TABLE AS"),
        Statement::CreateTable(_) => op_named(K::Create, "CREATE TABLE"),
        Statement::CreateView(_) => op_named(K::Create, "CREATE VIEW"),
        Statement::CreateIndex(_) => op_named(K::Create, "CREATE INDEX"),
        Statement::CreateSchema { .. } => op_named(K::Create, "CREATE SCHEMA"),
        Statement::CreateSequence { .. } => op_named(K::Create, "CREATE SEQUENCE"),
        Statement::AlterTable(_) => op_named(K::Alter, "ALTER TABLE"),
        Statement::AlterIndex { .. } => op_named(K::Alter, "ALTER INDEX"),
        Statement::AlterView { .. } => op_named(K::Alter, "ALTER VIEW"),
        Statement::AlterSchema(_) => op_named(K::Alter, "ALTER SCHEMA"),
        Statement::Drop { object_type, .. } => op_named(K::Drop, &format!("DROP {object_type}")),
        Statement::Truncate(_) => op(K::Truncate),
        Statement::Set(Set::SetRole { .. }) => never("SET ROLE"),
        Statement::Set(Set::SetSessionAuthorization(_)) => never("SET SESSION AUTHORIZATION"),
        Statement::Set(_) => never("SET"),
        Statement::Reset(_) => never("RESET"),
        Statement::StartTransaction { .. } => never("BEGIN"),
        Statement::Commit { .. } => never("COMMIT"),
        Statement::Rollback { .. } => never("ROLLBACK"),
        Statement::Savepoint { .. } => never("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => never("RELEASE SAVEPOINT"),
        Statement::Copy { .. } => never("COPY"),
        Statement::Call(_) => never("CALL"),
        Statement::Prepare { .. } => never("PREPARE"),
        Statement::Execute { .. } => never("EXECUTE"),
        Statement::Deallocate { .. } => never("DEALLOCATE"),
        Statement::LISTEN { .. } => never("LISTEN"),
        Statement::UNLISTEN { .. } => never("UNLISTEN"),
        Statement::NOTIFY { .. } => never("NOTIFY"),
        Statement::Vacuum(_) => never("VACUUM"),
        Statement::Analyze(_) => never("ANALYZE"),
        Statement::Grant(_) => never("GRANT"),
        Statement::Revoke(_) => never("REVOKE"),
        Statement::Lock(_) | Statement::LockTables { .. } => never("LOCK"),
        Statement::Declare { .. } => never("DECLARE"),
        Statement::Fetch { .. } => never("FETCH"),
        Statement::Close { .. } => never("CLOSE"),
        Statement::Discard { .. } => never("DISCARD"),
        Statement::Comment { .. } => never("COMMENT"),
        other => never(&leading_words(other)),
    }
}

/// Names an unlisted command by its first words (`CREATE FUNCTION`, `ALTER ROLE`, `SHOW`, ...).
fn leading_words(statement: &Statement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("statement").to_ascii_uppercase();
    match (first.as_str(), words.next()) {
        ("CREATE" | "ALTER" | "DROP", Some(second)) => {
            format!("{first} {}", second.to_ascii_uppercase())
        }
        _ => first,
    }
}

/// Normalised (trimmed, upper-case) operation names from a setting like `SELECT, insert ,WITH`.
fn operation_set<S: AsRef<str>>(items: &[S]) -> HashSet<String> {
    items
        .iter()
        .map(|s| s.as_ref().trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The single visitor: walks the whole statement (nested statements, queries, selects, table
/// factors, expressions) and stops at the first violation.
struct Guard<'a> {
    cfg: &'a GuardConfig,
    allowed: HashSet<String>,
    blocked: HashSet<String>,
    /// `cfg.blocked_functions`, trimmed and lower-cased.
    blocked_functions: Vec<String>,
    /// Nesting depth of queries; a statement met above 0 is a data-modifying statement inside
    /// a query (a CTE, or the body of `WITH ... INSERT`).
    query_depth: usize,
}

impl<'a> Guard<'a> {
    fn new(cfg: &'a GuardConfig) -> Self {
        let allowed = match &cfg.allowed_operations {
            Some(list) => operation_set(list),
            None if cfg.read_only => operation_set(READ_ONLY_OPERATIONS),
            None => operation_set(READ_WRITE_OPERATIONS),
        };
        Self {
            cfg,
            allowed,
            blocked: operation_set(&cfg.blocked_keywords),
            blocked_functions: cfg
                .blocked_functions
                .iter()
                .map(|f| f.trim().to_lowercase())
                .collect(),
            query_depth: 0,
        }
    }

    /// Checks one operation (`SELECT`, `WITH`, `DELETE`, ...) found anywhere in the statement.
    fn operation(&self, operation: &str, construct: &str) -> ControlFlow<GuardError> {
        if self.cfg.read_only && !READ_ONLY_OPERATIONS.contains(&operation) {
            let place = if self.query_depth > 0 {
                " (a data-modifying statement inside a query)"
            } else {
                ""
            };
            return refuse(
                format!("{construct} is not allowed in read-only mode{place}"),
                construct,
            );
        }
        if self.blocked.contains(operation) {
            return refuse(
                format!("{construct} is blocked by configuration (blocked keyword {operation})"),
                construct,
            );
        }
        if !self.allowed.contains(operation) {
            return refuse(
                format!("{construct} is not among the allowed operations"),
                construct,
            );
        }
        ControlFlow::Continue(())
    }

    /// Refuses denied functions, whether called in an expression or in `FROM`.
    fn function(&self, name: &ObjectName) -> ControlFlow<GuardError> {
        let parts = name_parts(name);
        let Some((last, schemas)) = parts.split_last() else {
            return ControlFlow::Continue(());
        };
        let schema = schemas.last().map(String::as_str);
        let denied = DENIED_FUNCTIONS
            .iter()
            .any(|pattern| pattern_matches(pattern, schema, last))
            || self
                .blocked_functions
                .iter()
                .any(|pattern| pattern_matches(pattern, schema, last));
        if denied {
            return refuse(format!("function {last} is not allowed"), last.as_str());
        }
        match super::cross_session::find_function(last) {
            Some(object) => refuse_cross_session(&format!("function {last}"), last, object),
            None => ControlFlow::Continue(()),
        }
    }

    /// Refuses relations in schemas that are not exposed, and relations that show other
    /// sessions (see [`super::cross_session`]).
    fn relation(&self, name: &ObjectName) -> ControlFlow<GuardError> {
        let parts = name_parts(name);
        if let [.., schema, _] = parts.as_slice()
            && !self.cfg.exposure.allows_relation_in(schema)
        {
            let shown = parts.join(".");
            return refuse(
                format!(
                    "schema {schema} is not exposed to this server (PG_MCP_SCHEMAS, PG_MCP_HIDDEN_SCHEMAS): {shown} cannot be queried"
                ),
                shown,
            );
        }
        match parts
            .last()
            .and_then(|last| Some((last, super::cross_session::find_view(last)?)))
        {
            Some((last, object)) => refuse_cross_session(last, last, object),
            None => ControlFlow::Continue(()),
        }
    }

    /// Writes to system catalogs are refused: `UPDATE pg_settings` is `SET` by another name.
    fn write_target(&self, name: &ObjectName) -> ControlFlow<GuardError> {
        let parts = name_parts(name);
        let system_schema = parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|p| matches!(p.as_str(), "pg_catalog" | "information_schema" | "pg_toast"));
        let unqualified_catalog = parts.len() == 1 && parts[0].starts_with("pg_");
        if system_schema || unqualified_catalog {
            let shown = parts.join(".");
            return refuse(
                format!("writing to system catalog {shown} is not allowed"),
                shown,
            );
        }
        ControlFlow::Continue(())
    }

    /// Locking clauses take row locks: refused in read-only mode (where they would fail in the
    /// read-only transaction anyway), allowed with DML in read-write mode.
    fn lock(&self, lock: &LockClause) -> ControlFlow<GuardError> {
        if self.cfg.read_only {
            let construct = format!("FOR {}", lock.lock_type);
            return refuse(
                format!("locking clause {construct} is not allowed in read-only mode"),
                construct,
            );
        }
        ControlFlow::Continue(())
    }
}

/// The refusal of an object that shows other sessions, with what it would have shown.
fn refuse_cross_session(
    what: &str,
    construct: &str,
    object: &super::cross_session::CrossSessionObject,
) -> ControlFlow<GuardError> {
    refuse(
        format!(
            "{what} shows other sessions ({}); tenants share the database role and its connections, so it is closed to them",
            object.exposes
        ),
        construct,
    )
}

fn refuse(reason: String, construct: impl Into<String>) -> ControlFlow<GuardError> {
    ControlFlow::Break(GuardError::unsafe_sql(reason, construct))
}

/// Lower-cased name parts; quoting is ignored on purpose (`"SET_CONFIG"` is refused too).
fn name_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => ident.value.to_lowercase(),
            ObjectNamePart::Function(func) => func.name.value.to_lowercase(),
        })
        .collect()
}

/// `pattern` is `name`, `name*`, `schema.name` or `schema.name*`, lower-case. A schema in the
/// pattern must match the call's schema when the call is qualified; unqualified calls match
/// any pattern schema (the search path could resolve them there).
fn pattern_matches(pattern: &str, schema: Option<&str>, name: &str) -> bool {
    let (pattern_schema, pattern_name) = match pattern.rsplit_once('.') {
        Some((s, n)) => (Some(s.rsplit('.').next().unwrap_or(s)), n),
        None => (None, pattern),
    };
    if let (Some(want), Some(got)) = (pattern_schema, schema)
        && want != got
    {
        return false;
    }
    match pattern_name.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => !pattern_name.is_empty() && name == pattern_name,
    }
}

impl Visitor for Guard<'_> {
    type Break = GuardError;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<GuardError> {
        match classify(statement) {
            Class::Never(construct) => refuse(format!("{construct} is not allowed"), construct),
            Class::Op { kind, construct } => {
                self.operation(kind.operation(), &construct)?;
                match statement {
                    Statement::Insert(insert) => {
                        if let TableObject::TableName(name) = &insert.table {
                            self.write_target(name)?;
                        }
                    }
                    Statement::Update(update) => {
                        if let TableFactor::Table { name, .. } = &update.table.relation {
                            self.write_target(name)?;
                        }
                    }
                    Statement::Delete(delete) => {
                        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) =
                            &delete.from;
                        for table in from {
                            if let TableFactor::Table { name, .. } = &table.relation {
                                self.write_target(name)?;
                            }
                        }
                        for name in &delete.tables {
                            self.write_target(name)?;
                        }
                    }
                    Statement::Merge(merge) => {
                        if let TableFactor::Table { name, .. } = &merge.table {
                            self.write_target(name)?;
                        }
                    }
                    _ => {}
                }
                ControlFlow::Continue(())
            }
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<GuardError> {
        self.query_depth += 1;
        if query.with.is_some() {
            self.operation("WITH", "WITH")?;
        }
        if matches!(query.body.as_ref(), SetExpr::Table(_)) {
            self.operation("SELECT", "TABLE")?;
        }
        for lock in &query.locks {
            self.lock(lock)?;
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<GuardError> {
        self.query_depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<GuardError> {
        if select.into.is_some() {
            // `SELECT ... INTO t` creates a table: an operation of kind CREATE.
            if self.cfg.read_only {
                return refuse(
                    "SELECT INTO is not allowed in read-only mode (it creates a table)".into(),
                    "SELECT INTO",
                );
            }
            self.operation("CREATE", "SELECT INTO")?;
        }
        self.operation("SELECT", "SELECT")
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<GuardError> {
        match factor {
            // `FROM f(x)`: sqlparser keeps the function name as a relation name with `args`.
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => self.function(name),
            // `FROM LATERAL f(x)` and friends.
            TableFactor::Function { name, .. } => self.function(name),
            TableFactor::Table { name, .. } => self.relation(name),
            // `TABLE(expr)` and every other factor: their expressions are visited as usual.
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &sqlparser::ast::Expr) -> ControlFlow<GuardError> {
        if let sqlparser::ast::Expr::Function(func) = expr {
            self.function(&func.name)?;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;

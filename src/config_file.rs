//! The configuration file (`--config` or `PG_MCP_CONFIG`, `pg-mcp.toml`). Its keys are the
//! settings' environment names without `PG_MCP_`, in lower case (`max_rows = 500` is
//! `PG_MCP_MAX_ROWS=500`); a list is a TOML array, and `[databases]` maps names to URLs
//! (`PG_MCP_DATABASES`). The file's values are clap defaults, so the command line and the
//! environment override it. An unknown key is an error, not a silent no-op.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::Config;

#[derive(Parser)]
struct ConfigOnly {
    #[command(flatten)]
    config: Config,
}

/// A loaded configuration: the settings, and each one's effective raw value (by
/// environment name), to tell what a reload changed. No `Debug`: the raw values hold secrets.
pub struct Loaded {
    pub config: Config,
    pub effective: BTreeMap<String, String>,
}

/// The file's settings as `PG_MCP_*` names and raw values; every problem found, else.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    parse(&text)
}

/// [`read`] of the file's text.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, Vec<String>> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| vec![format!("not valid TOML: {}", e.message().trim())])?;
    let known = known_settings();
    let mut settings = BTreeMap::new();
    let mut errors = Vec::new();
    for (key, value) in table {
        let name = format!("PG_MCP_{}", key.to_ascii_uppercase());
        if name == "PG_MCP_CONFIG" || !known.contains(&name) {
            errors.push(format!(
                "unknown setting {key:?} (no {name}; see the README's configuration table)"
            ));
            continue;
        }
        match raw_value(&key, &value) {
            Ok(raw) => {
                settings.insert(name, raw);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

/// A TOML value as the environment variable would spell it.
fn raw_value(key: &str, value: &toml::Value) -> Result<String, String> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(format!("{key}: expected a string, number or boolean")),
    };
    match value {
        toml::Value::Array(items) => Ok(items
            .iter()
            .map(scalar)
            .collect::<Result<Vec<_>, _>>()?
            .join(",")),
        toml::Value::Table(entries) if key == "databases" => Ok(entries
            .iter()
            .map(|(name, url)| {
                url.as_str()
                    .map(|u| format!("{name}={u}"))
                    .ok_or_else(|| format!("databases.{name}: expected a connection URL string"))
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(";")),
        toml::Value::Table(_) => Err(format!(
            "{key}: a table is only allowed for [databases] (name = URL)"
        )),
        other => scalar(other),
    }
}

/// The `PG_MCP_*` names of every setting.
fn known_settings() -> Vec<String> {
    ConfigOnly::command()
        .get_arguments()
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .collect()
}

/// The configuration from `argv` (program name first, then the flags), the environment and
/// `file` (the weakest), checked; the errors, else.
pub fn resolve(argv: &[OsString], file: &BTreeMap<String, String>) -> Result<Loaded, Vec<String>> {
    let mut command = ConfigOnly::command();
    let ids: Vec<(String, String)> = command
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            Some((a.get_id().to_string(), env))
        })
        .collect();
    for (id, env) in &ids {
        if let Some(value) = file.get(env) {
            let value = value.clone();
            command = command.mut_arg(id, move |a| {
                a.default_value(clap::builder::OsStr::from(clap::builder::Str::from(value)))
            });
        }
    }
    let matches = command
        .try_get_matches_from(argv)
        .map_err(|e| vec![e.to_string().trim().to_string()])?;
    let mut effective = BTreeMap::new();
    for (id, env) in &ids {
        if let Some(raw) = matches.get_raw(id) {
            let values: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
            effective.insert(env.clone(), values.join(","));
        }
    }
    let config = ConfigOnly::from_arg_matches(&matches)
        .map_err(|e| vec![e.to_string().trim().to_string()])?
        .config;
    config.validate().map_err(|e| vec![e.message])?;
    Ok(Loaded { config, effective })
}

/// [`read`] then [`resolve`].
pub fn load(path: &Path, argv: &[OsString]) -> Result<Loaded, Vec<String>> {
    resolve(argv, &read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_settings_and_unknown_ones_are_errors() {
        let ok = parse(
            "max_rows = 7\nstateless_http = false\nallowed_origins = [\"https://a\", \"https://b\"]\n[databases]\nsecond = \"postgres://u:p@h/d\"\n",
        )
        .unwrap();
        assert_eq!(ok["PG_MCP_MAX_ROWS"], "7");
        assert_eq!(ok["PG_MCP_STATELESS_HTTP"], "false");
        assert_eq!(ok["PG_MCP_ALLOWED_ORIGINS"], "https://a,https://b");
        assert_eq!(ok["PG_MCP_DATABASES"], "second=postgres://u:p@h/d");
        let bad = parse("max_rowz = 7\nmax_rows = { a = 1 }\n").unwrap_err();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad[0].contains("max_rowz") || bad[1].contains("max_rowz"),
            "{bad:?}"
        );
        assert!(parse("max_rows = ").unwrap_err()[0].contains("TOML"));
    }

    #[test]
    fn the_file_is_the_default_under_flags() {
        let argv: Vec<OsString> = [
            "pg-mcp",
            "--database-url",
            "postgres://u:p@h/d",
            "--tenant-signing-key",
            "0123456789abcdef0123456789abcdef",
            "--max-rows",
            "9",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let file = parse(
            r#"max_rows = 7
slow_query_ms = 42
blocked_functions = ["f1", "f2"]
"#,
        )
        .unwrap();
        let loaded = resolve(&argv, &file).unwrap();
        assert_eq!(loaded.config.max_rows, 9, "a flag beats the file");
        assert_eq!(loaded.config.slow_query_ms, 42);
        assert_eq!(loaded.config.blocked_functions, vec!["f1", "f2"]);
        assert_eq!(loaded.effective["PG_MCP_SLOW_QUERY_MS"], "42");
        let Err(bad) = resolve(&argv, &parse(r#"slow_query_ms = "soon""#).unwrap()) else {
            panic!("a bad value is refused");
        };
        assert!(bad[0].contains("soon"), "{bad:?}");
    }
}

/// Where the running configuration stands, for `/health`, `/connections` and `/metrics`.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct ConfigStatus {
    /// The configuration file, when one is in use.
    pub file: Option<std::path::PathBuf>,
    /// 1 at start, one more at each applied reload.
    pub generation: u64,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// Why the last reload was refused (the configuration of `generation` stays).
    pub last_error: Option<Vec<String>>,
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Settings the file changed that apply only after a restart (their old values stay).
    pub restart_required: Vec<String>,
}

impl ConfigStatus {
    pub fn new(file: Option<std::path::PathBuf>) -> Self {
        let status = Self {
            file,
            generation: 1,
            loaded_at: chrono::Utc::now(),
            last_error: None,
            last_error_at: None,
            restart_required: Vec::new(),
        };
        status.record_metrics();
        status
    }

    pub fn record_metrics(&self) {
        metrics::gauge!("pgmcp_config_generation").set(self.generation as f64);
        metrics::gauge!("pgmcp_config_loaded_timestamp_seconds")
            .set(self.loaded_at.timestamp() as f64);
        metrics::gauge!("pgmcp_config_reload_error").set(if self.last_error.is_some() {
            1.0
        } else {
            0.0
        });
    }
}

/// The settings a reload applies to calls that start after it; every other one needs a
/// restart (a reload reports it and keeps its old value).
pub const LIVE_SETTINGS: &[&str] = &[
    "PG_MCP_DATABASE_URL",
    "PG_MCP_DATABASES",
    "PG_MCP_STATEMENT_TIMEOUT_MS",
    "PG_MCP_LOCK_TIMEOUT_MS",
    "PG_MCP_MAX_ROWS",
    "PG_MCP_MAX_RESULT_BYTES",
    "PG_MCP_MAX_QUERY_LENGTH",
    "PG_MCP_MAX_QUERY_COST",
    "PG_MCP_MAX_TRANSACTION_STATEMENTS",
    "PG_MCP_MAX_BATCH_PARAM_SETS",
    "PG_MCP_BLOCKED_FUNCTIONS",
    "PG_MCP_BLOCKED_KEYWORDS",
    "PG_MCP_ALLOW_OBSERVABLE_SESSIONS",
    "PG_MCP_HISTORY_STORE_PARAMS",
    "PG_MCP_SLOW_QUERY_MS",
    "PG_MCP_SCHEMA_OUTPUT_BUDGET_BYTES",
];

/// The settings whose effective value differs between `old` and `new`.
pub fn changed(old: &BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|k| old.get(*k) != new.get(*k))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

//! Consistency of the deployment files with the server (no database needed).
//!
//! The set of variables the server reads is collected from `src/**/*.rs`: every
//! `env = "NAME"` (clap attributes) and every `env::var("NAME")` / `env::var_os("NAME")`.
//! Then:
//! - every `PG_MCP_*` variable named in docker-compose.yml, .env.example, Dockerfile,
//!   docker-init/ and infra/ (Bicep, scripts, docs) must be one the server reads
//!   (`OTEL_*` and `POSTGRES_*` are standard names and are not checked);
//! - every `PG_MCP_*` variable the server reads is documented in .env.example;
//! - the Dockerfile exposes 8000, has a `pg-mcp healthcheck` HEALTHCHECK and a non-root USER;
//! - docker-compose.yml publishes ports on 127.0.0.1 only, and its `db` service is attached to
//!   internal networks only;
//! - the nginx configuration streams /mcp (`proxy_http_version 1.1`, `proxy_buffering off`).
//!
//! docker-compose.yml is read with a YAML parser (serde_norway) and the Dockerfile with a
//! Dockerfile parser (parse-dockerfile); the variable checks scan every file's whole text, so a
//! name in a comment or a script counts too.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use parse_dockerfile::{Command, HealthcheckArguments, HealthcheckInstruction, Instruction};
use serde::Deserialize;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every file under `dir` (recursively) whose name passes `keep`, sorted.
fn files_under(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path, keep));
        } else if keep(&path) {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifier at the start of `s` (letters, digits, underscores).
fn ident_prefix(s: &str) -> &str {
    let end = s.bytes().position(|b| !is_ident_byte(b)).unwrap_or(s.len());
    &s[..end]
}

/// Names quoted right after each occurrence of one of `openers` (e.g. `env = "`) that does not
/// continue an identifier (`my_env = "..."` is not `env = "..."`).
fn quoted_names_after(text: &str, openers: &[&str], into: &mut BTreeSet<String>) {
    for opener in openers {
        let mut from = 0;
        while let Some(at) = text[from..].find(opener) {
            let start = from + at;
            from = start + opener.len();
            if start > 0 && is_ident_byte(text.as_bytes()[start - 1]) {
                continue;
            }
            let rest = &text[from..];
            let name = ident_prefix(rest);
            if !name.is_empty() && rest[name.len()..].starts_with('"') {
                into.insert(name.to_string());
            }
        }
    }
}

/// Variables the server reads, from its sources.
fn server_variables() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    let sources = files_under(&root().join("src"), &|p| {
        p.extension().is_some_and(|e| e == "rs")
    });
    assert!(!sources.is_empty(), "no Rust sources found under src/");
    for file in sources {
        let text = fs::read_to_string(&file).unwrap();
        quoted_names_after(
            &text,
            &["env = \"", "env=\"", "env::var(\"", "env::var_os(\""],
            &mut vars,
        );
    }
    vars
}

/// Every `PG_MCP_*` token in `text`. A bare prefix (`PG_MCP_`, `PG_MCP_*`) is a mention of
/// the family, not a variable, and is skipped.
fn pg_mcp_tokens(text: &str) -> BTreeSet<String> {
    const PREFIX: &str = "PG_MCP_";
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = text[from..].find(PREFIX) {
        let start = from + at;
        from = start + PREFIX.len();
        if start > 0 && is_ident_byte(bytes[start - 1]) {
            continue;
        }
        let name = ident_prefix(&text[start..]);
        if name.len() > PREFIX.len() && !name.ends_with('_') {
            out.insert(name.to_string());
        }
    }
    out
}

/// The deployment files whose `PG_MCP_*` names must be real, relative to the repository.
fn deployment_files() -> Vec<PathBuf> {
    let root = root();
    let mut files: Vec<PathBuf> = ["docker-compose.yml", ".env.example", "Dockerfile"]
        .iter()
        .map(|f| root.join(f))
        .collect();
    files.extend(files_under(&root.join("docker-init"), &|_| true));
    files.extend(files_under(&root.join("infra"), &|p| {
        p.extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "bicep" | "sh" | "md" | "json" | "yaml" | "yml" | "conf"))
    }));
    files
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn deployment_files_name_only_variables_the_server_reads() {
    let known = server_variables();
    let mut unknown: Vec<String> = Vec::new();
    let mut seen_any = false;
    for file in deployment_files() {
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        for var in pg_mcp_tokens(&text) {
            seen_any = true;
            if !known.contains(&var) {
                unknown.push(format!("{var} (in {})", rel(&file)));
            }
        }
    }
    assert!(
        seen_any,
        "no PG_MCP_* variable found in the deployment files"
    );
    let missing: BTreeSet<&str> = unknown
        .iter()
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    assert!(
        unknown.is_empty(),
        "{} variable(s) named by the deployment files are not read anywhere in src/ \
         (no `env = \"NAME\"` nor `env::var(\"NAME\")`): {}\n\nwhere:\n  {}",
        missing.len(),
        missing.into_iter().collect::<Vec<_>>().join(", "),
        unknown.join("\n  ")
    );
}

#[test]
fn env_example_documents_every_server_variable() {
    let documented = pg_mcp_tokens(&read(".env.example"));
    let missing: Vec<String> = server_variables()
        .into_iter()
        .filter(|v| v.starts_with("PG_MCP_") && !documented.contains(v))
        .collect();
    assert!(
        missing.is_empty(),
        "{} variable(s) read by the server are not in .env.example: {}",
        missing.len(),
        missing.join(", ")
    );
}

// ---------------------------------------------------------------------------------------------
// Dockerfile, through the `parse-dockerfile` crate (continuation lines, heredocs, exec and shell
// forms, stages).

#[test]
fn dockerfile_runs_unprivileged_with_health_check_on_port_8000() {
    let text = read("Dockerfile");
    let dockerfile =
        parse_dockerfile::parse(&text).unwrap_or_else(|e| panic!("Dockerfile does not parse: {e}"));
    let runtime = dockerfile
        .stages()
        .last()
        .expect("Dockerfile has no FROM")
        .instructions;

    assert!(
        runtime.iter().any(|i| matches!(
            i,
            Instruction::Expose(e) if e.arguments.iter().any(|p| p.value == "8000" || p.value == "8000/tcp")
        )),
        "the runtime stage must EXPOSE 8000"
    );

    let health: Vec<&HealthcheckInstruction> = runtime
        .iter()
        .filter_map(|i| match i {
            Instruction::Healthcheck(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(health.len(), 1, "the runtime stage needs one HEALTHCHECK");
    let words: Vec<&str> = match &health[0].arguments {
        HealthcheckArguments::Cmd { arguments, .. } => match arguments {
            Command::Exec(words) => words.value.iter().map(|w| w.value.as_ref()).collect(),
            Command::Shell(line) => line.value.split_whitespace().collect(),
            other => panic!("HEALTHCHECK CMD in an unknown form: {other:?}"),
        },
        other => panic!("HEALTHCHECK has no CMD: {other:?}"),
    };
    assert!(
        words
            .windows(2)
            .any(|w| w[0] == "pg-mcp" && w[1] == "healthcheck"),
        "HEALTHCHECK must run `pg-mcp healthcheck`, found: {words:?}"
    );

    let user = runtime
        .iter()
        .rev()
        .find_map(|i| match i {
            Instruction::User(u) => Some(u.arguments.value.as_ref()),
            _ => None,
        })
        .expect("the runtime stage must set a non-root USER");
    let name = user.split(':').next().unwrap().trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "the runtime stage must run as a non-root user, found USER {user}"
    );
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml, through a YAML parser (serde_norway, serde_yaml's maintained fork): only
// the fields checked here are read, every other one is ignored.

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
    #[serde(default)]
    networks: BTreeMap<String, Option<Network>>,
}

#[derive(Debug, Deserialize)]
struct Service {
    #[serde(default)]
    ports: Vec<Port>,
    network_mode: Option<String>,
    networks: Option<ServiceNetworks>,
}

/// A published port: `"127.0.0.1:8000:8000"` (or a bare number), or the long syntax.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Port {
    Short(String),
    Number(u64),
    Long { host_ip: Option<String> },
}

/// A service's networks: a list of names, or a map from name to attachment options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ServiceNetworks {
    List(Vec<String>),
    Map(BTreeMap<String, serde_norway::Value>),
}

impl ServiceNetworks {
    fn names(&self) -> Vec<&str> {
        match self {
            Self::List(names) => names.iter().map(String::as_str).collect(),
            Self::Map(map) => map.keys().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct Network {
    #[serde(default)]
    internal: bool,
}

/// docker-compose.yml, parsed by [`parse_compose`].
fn compose() -> Compose {
    parse_compose(&read("docker-compose.yml"))
}

/// A compose file with YAML merge keys (`<<: [*anchor, ...]`) applied the way compose applies
/// them, so each service carries what it inherits.
fn parse_compose(text: &str) -> Compose {
    let mut doc: serde_norway::Value = serde_norway::from_str(text)
        .unwrap_or_else(|e| panic!("docker-compose.yml is not valid YAML: {e}"));
    doc.apply_merge()
        .unwrap_or_else(|e| panic!("docker-compose.yml has a bad merge key: {e}"));
    serde_norway::from_value(doc)
        .unwrap_or_else(|e| panic!("docker-compose.yml is not a compose file as expected: {e}"))
}

/// The compose model sees ports and networks however they are written: inherited through an
/// anchor, short or long syntax, networks as a list or a map.
#[test]
fn compose_model_reads_every_form() {
    let compose = parse_compose(
        r#"
x-published: &published
  ports:
    - "0.0.0.0:80:80"
    - 8080
    - target: 8000
      host_ip: 127.0.0.1
services:
  web:
    <<: [*published]
    network_mode: host
  db:
    networks:
      inner: {}
networks:
  inner:
    internal: true
  outer: {}
  bare:
"#,
    );
    let web = &compose.services["web"];
    assert!(matches!(&web.ports[..], [
        Port::Short(short),
        Port::Number(8080),
        Port::Long { host_ip: Some(ip) },
    ] if short == "0.0.0.0:80:80" && ip == "127.0.0.1"));
    assert_eq!(web.network_mode.as_deref(), Some("host"));
    assert_eq!(
        compose.services["db"].networks.as_ref().unwrap().names(),
        ["inner"]
    );
    let internal = |n: &str| compose.networks[n].as_ref().is_some_and(|n| n.internal);
    assert!(internal("inner") && !internal("outer") && !internal("bare"));
}

#[test]
fn compose_publishes_on_loopback_only() {
    let compose = compose();
    let mut published = 0;
    for (name, service) in &compose.services {
        assert_ne!(
            service.network_mode.as_deref(),
            Some("host"),
            "no service may use the host network ({name} does)"
        );
        for port in &service.ports {
            published += 1;
            match port {
                Port::Short(entry) => assert!(
                    entry.starts_with("127.0.0.1:"),
                    "docker-compose.yml publishes {entry:?} ({name}): bind published ports to 127.0.0.1"
                ),
                Port::Number(n) => panic!(
                    "docker-compose.yml publishes {n} ({name}) on every interface: bind published ports to 127.0.0.1"
                ),
                Port::Long { host_ip } => assert_eq!(
                    host_ip.as_deref(),
                    Some("127.0.0.1"),
                    "docker-compose.yml publishes a port ({name}, long syntax) without host_ip: 127.0.0.1"
                ),
            }
        }
    }
    assert!(published > 0, "docker-compose.yml publishes no port at all");
}

#[test]
fn compose_keeps_the_database_on_internal_networks_only() {
    let compose = compose();
    let db = compose
        .services
        .get("db")
        .expect("no db service in docker-compose.yml");
    assert!(db.ports.is_empty(), "the db service must not publish ports");
    assert!(
        db.network_mode.is_none(),
        "the db service must not set network_mode"
    );
    let db_networks = db
        .networks
        .as_ref()
        .expect("the db service must name its networks (default network is not internal)")
        .names();
    assert!(!db_networks.is_empty(), "the db service lists no network");
    for net in db_networks {
        let declared = compose
            .networks
            .get(net)
            .unwrap_or_else(|| panic!("network {net} of the db service is not declared"));
        assert!(
            declared.as_ref().is_some_and(|n| n.internal),
            "the db service is on network {net}, which is not `internal: true`"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// nginx

/// The body of the first `location <path> {` block of an nginx configuration.
fn nginx_location<'a>(conf: &'a str, path: &str) -> Option<&'a str> {
    let header = format!("location {path} ");
    let start = conf.find(&header)?;
    let open = start + conf[start..].find('{')?;
    let mut depth = 0;
    for (i, c) in conf[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&conf[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

#[test]
fn nginx_streams_mcp_without_buffering() {
    let raw = read("infra/nginx/pg-mcp.conf");
    let conf: String = raw
        .lines()
        .map(|l| l.split('#').next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mcp = nginx_location(&conf, "/mcp").expect("no `location /mcp` block in the nginx conf");
    let has = |directive: &str| {
        mcp.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == directive)
    };
    for directive in [
        "proxy_http_version 1.1;",
        "proxy_buffering off;",
        "proxy_cache off;",
        "proxy_set_header Connection \"\";",
    ] {
        assert!(has(directive), "location /mcp lacks `{directive}`");
    }
    let metrics =
        nginx_location(&conf, "/metrics").expect("no `location /metrics` block in the nginx conf");
    assert!(
        metrics.contains("deny all;"),
        "location /metrics must be restricted (allow ...; deny all;)"
    );
}

#[test]
fn scanners_find_what_they_should() {
    let mut vars = BTreeSet::new();
    quoted_names_after(
        r#"#[arg(long, env = "PG_MCP_A")] let b = std::env::var("PG_MCP_B"); env::var_os("X_C");"#,
        &["env = \"", "env::var(\"", "env::var_os(\""],
        &mut vars,
    );
    assert_eq!(
        vars.into_iter().collect::<Vec<_>>(),
        ["PG_MCP_A", "PG_MCP_B", "X_C"]
    );
    let tokens = pg_mcp_tokens("PG_MCP_X=1 ${PG_MCP_Y:-2} PG_MCP_* PG_MCP_ XPG_MCP_Z");
    assert_eq!(
        tokens.into_iter().collect::<Vec<_>>(),
        ["PG_MCP_X", "PG_MCP_Y"]
    );
}

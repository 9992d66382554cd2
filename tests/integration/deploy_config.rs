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

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

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

/// Dockerfile instructions as (KEYWORD, arguments), continuation lines joined, comments and
/// heredoc bodies dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut heredoc_end: Option<String> = None;
    for line in text.lines() {
        if let Some(end) = &heredoc_end {
            if line.trim() == end {
                heredoc_end = None;
            }
            continue;
        }
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        current.push(' ');
        if let Some(stripped) = trimmed.strip_suffix('\\') {
            current.push_str(stripped);
            continue;
        }
        current.push_str(trimmed);
        let instruction = std::mem::take(&mut current);
        let instruction = instruction.trim();
        if let Some(at) = instruction.find("<<") {
            let marker = instruction[at + 2..]
                .trim_start_matches('-')
                .trim_matches(|c| c == '\'' || c == '"');
            let marker = ident_prefix(marker);
            if !marker.is_empty() {
                heredoc_end = Some(marker.to_string());
            }
        }
        let (keyword, args) = instruction
            .split_once(char::is_whitespace)
            .unwrap_or((instruction, ""));
        out.push((keyword.to_ascii_uppercase(), args.trim().to_string()));
    }
    out
}

#[test]
fn dockerfile_runs_unprivileged_with_health_check_on_port_8000() {
    let instructions = dockerfile_instructions(&read("Dockerfile"));
    let last_from = instructions
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("Dockerfile has no FROM");
    let runtime = &instructions[last_from..];
    let args_of = |kw: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(k, _)| k == kw)
            .map(|(_, a)| a.as_str())
            .collect()
    };

    assert!(
        args_of("EXPOSE")
            .iter()
            .any(|a| a.split_whitespace().any(|p| p == "8000" || p == "8000/tcp")),
        "the runtime stage must EXPOSE 8000"
    );

    let health = args_of("HEALTHCHECK");
    assert_eq!(health.len(), 1, "the runtime stage needs one HEALTHCHECK");
    let cmd = health[0]
        .split_once("CMD")
        .map(|(_, c)| c)
        .unwrap_or_else(|| panic!("HEALTHCHECK has no CMD: {}", health[0]));
    let words: Vec<String> = cmd
        .split(|c: char| c.is_whitespace() || matches!(c, '[' | ']' | ',' | '"'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    assert!(
        words
            .windows(2)
            .any(|w| w[0] == "pg-mcp" && w[1] == "healthcheck"),
        "HEALTHCHECK must run `pg-mcp healthcheck`, found: {cmd}"
    );

    let users = args_of("USER");
    let user = users
        .last()
        .expect("the runtime stage must set a non-root USER");
    let name = user.split(':').next().unwrap().trim();
    assert!(
        !name.is_empty() && name != "root" && name != "0",
        "the runtime stage must run as a non-root user, found USER {user}"
    );
}

/// Indentation of a YAML line (spaces).
fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// YAML lines without comments and blank lines (good enough for docker-compose.yml).
fn yaml_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.is_empty() && !t.starts_with('#')
        })
        .collect()
}

/// The lines of the block under `lines[at]` (more indented than it).
fn block<'a>(lines: &[&'a str], at: usize) -> Vec<&'a str> {
    let base = indent(lines[at]);
    lines[at + 1..]
        .iter()
        .take_while(|l| indent(l) > base)
        .copied()
        .collect()
}

/// Index of the line `key:` at indentation `level` within `lines`.
fn find_key(lines: &[&str], key: &str, level: usize) -> Option<usize> {
    lines.iter().position(|l| {
        indent(l) == level && {
            let t = l.trim();
            t == format!("{key}:") || t.starts_with(&format!("{key}: "))
        }
    })
}

/// Entries of a list or map block: `- name` items, or `name:` keys at the first indentation.
fn entries(block_lines: &[&str]) -> Vec<String> {
    let Some(first) = block_lines.first() else {
        return Vec::new();
    };
    let level = indent(first);
    block_lines
        .iter()
        .filter(|l| indent(l) == level)
        .map(|l| {
            let t = l.trim();
            let t = t.strip_prefix("- ").unwrap_or(t);
            let t = t.split('#').next().unwrap().trim();
            let t = t.split(':').next().unwrap().trim();
            t.trim_matches(|c| c == '"' || c == '\'').to_string()
        })
        .collect()
}

fn unquote_value(line: &str) -> String {
    let t = line.trim();
    let t = t.strip_prefix("- ").unwrap_or(t);
    let t = t.split(" #").next().unwrap().trim();
    t.trim_matches(|c| c == '"' || c == '\'').to_string()
}

#[test]
fn compose_publishes_on_loopback_only() {
    let text = read("docker-compose.yml");
    let lines = yaml_lines(&text);
    assert!(
        !text.contains("network_mode: host"),
        "no service may use the host network"
    );
    let mut published = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "ports:" {
            continue;
        }
        let ports = block(&lines, i);
        for (j, item) in ports.iter().enumerate() {
            if !item.trim_start().starts_with("- ") {
                continue;
            }
            published += 1;
            let entry = unquote_value(item);
            let long_syntax = entry.ends_with(':') || entry.contains(": ");
            if !long_syntax {
                assert!(
                    entry.starts_with("127.0.0.1:"),
                    "docker-compose.yml publishes {entry:?}: bind published ports to 127.0.0.1"
                );
                continue;
            }
            // Long syntax: the item's own lines must include `host_ip: 127.0.0.1`.
            let item_lines = std::iter::once(*item).chain(
                ports[j + 1..]
                    .iter()
                    .copied()
                    .take_while(|l| indent(l) > indent(item)),
            );
            let loopback = item_lines.map(unquote_value).any(|kv| {
                kv.split_once(':').is_some_and(|(k, v)| {
                    k.trim() == "host_ip"
                        && v.trim().trim_matches(|c| c == '"' || c == '\'') == "127.0.0.1"
                })
            });
            assert!(
                loopback,
                "docker-compose.yml publishes a port (long syntax at {entry:?}) without host_ip: 127.0.0.1"
            );
        }
    }
    assert!(published > 0, "docker-compose.yml publishes no port at all");
}

#[test]
fn compose_keeps_the_database_on_internal_networks_only() {
    let text = read("docker-compose.yml");
    let lines = yaml_lines(&text);
    let services_at = find_key(&lines, "services", 0).expect("no services: in docker-compose.yml");
    let services = block(&lines, services_at);
    let level = indent(services[0]);
    let db_at = find_key(&services, "db", level).expect("no db service in docker-compose.yml");
    let db = block(&services, db_at);
    let db_level = indent(db[0]);
    assert!(
        find_key(&db, "ports", db_level).is_none(),
        "the db service must not publish ports"
    );
    assert!(
        find_key(&db, "network_mode", db_level).is_none(),
        "the db service must not set network_mode"
    );
    let nets_at = find_key(&db, "networks", db_level)
        .expect("the db service must name its networks (default network is not internal)");
    let db_networks = entries(&block(&db, nets_at));
    assert!(!db_networks.is_empty(), "the db service lists no network");

    let top_at =
        find_key(&lines, "networks", 0).expect("no top-level networks: in docker-compose.yml");
    let top = block(&lines, top_at);
    let top_level = indent(top[0]);
    for net in db_networks {
        let at = find_key(&top, &net, top_level)
            .unwrap_or_else(|| panic!("network {net} of the db service is not declared"));
        let internal = block(&top, at)
            .iter()
            .any(|l| l.trim().replace(' ', "") == "internal:true");
        assert!(
            internal,
            "the db service is on network {net}, which is not `internal: true`"
        );
    }
}

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

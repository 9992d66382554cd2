//! Test dependencies that must be present: a check that cannot run must not count as passed.
//!
//! A test whose database, model or third-party client is missing fails with a message saying
//! how to install it (`scripts/test.sh` installs everything). Outside CI a developer can opt
//! out with `PG_MCP_TEST_ALLOW_MISSING=<names>` (comma-separated: `clients`, `nginx`, `model`,
//! `database`, or `all`): the test then prints `SKIPPED ...` and returns. When `CI` is set (to
//! any value) the opt-out is ignored.

use std::io::Write;

/// Something a test needs and cannot run without.
pub struct Dependency {
    /// The name used in `PG_MCP_TEST_ALLOW_MISSING`.
    pub name: &'static str,
    pub what: &'static str,
    pub how_to_install: &'static str,
}

pub const CLIENTS: Dependency = Dependency {
    name: "clients",
    what: "the third-party MCP clients (MCP Python SDK, MCP Inspector; PG_MCP_TEST_CLIENTS_DIR)",
    how_to_install: "run scripts/test.sh, which installs them with scripts/install-client-tools.sh",
};

pub const NGINX: Dependency = Dependency {
    name: "nginx",
    what: "nginx (on PATH or in /usr/sbin)",
    how_to_install: "run scripts/test.sh, which installs it with scripts/install-client-tools.sh",
};

pub const MODEL: Dependency = Dependency {
    name: "model",
    what: "the local embeddings model all-MiniLM-L6-v2 (PG_MCP_MODEL_DIR or .cache/models)",
    how_to_install: "run scripts/fetch-model.sh (scripts/test.sh runs it)",
};

pub const DATABASE: Dependency = Dependency {
    name: "database",
    what: "the test database (PG_MCP_TEST_ADMIN_URL)",
    how_to_install: "run the tests with scripts/test.sh, which starts and seeds PostgreSQL",
};

pub const ALLOW_MISSING_VAR: &str = "PG_MCP_TEST_ALLOW_MISSING";

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Opted out outside CI: print a notice, the test returns without running.
    Skip,
    /// The default, and always in CI: the test fails.
    Fail,
}

/// Skip only if `allow` names `name` (or `all`) and `ci` is unset.
pub fn decide(allow: Option<&str>, ci: Option<&str>, name: &str) -> Decision {
    let opted_out = allow.is_some_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|n| n == name || n == "all")
    });
    if opted_out && ci.is_none() {
        Decision::Skip
    } else {
        Decision::Fail
    }
}

/// `found` if present. Otherwise panics naming the missing dependency, or, when opted out via
/// `PG_MCP_TEST_ALLOW_MISSING` outside CI, prints a SKIPPED line and returns None (the caller
/// then returns).
pub fn dependency<T>(test: &str, dep: &Dependency, found: Option<T>) -> Option<T> {
    let allow = std::env::var(ALLOW_MISSING_VAR).ok();
    let ci = std::env::var("CI").ok();
    resolve(test, dep, found, allow.as_deref(), ci.as_deref())
}

fn resolve<T>(
    test: &str,
    dep: &Dependency,
    found: Option<T>,
    allow: Option<&str>,
    ci: Option<&str>,
) -> Option<T> {
    if found.is_some() {
        return found;
    }
    match decide(allow, ci, dep.name) {
        Decision::Skip => {
            // Straight to the process's stderr: the harness captures eprintln! of passing tests.
            let line = format!(
                "SKIPPED (opted out via {ALLOW_MISSING_VAR}): {test}: {} missing\n",
                dep.what
            );
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
        Decision::Fail => {
            let ci_note = if ci.is_some() && allow.is_some() {
                format!(" ({ALLOW_MISSING_VAR} is ignored because CI is set)")
            } else {
                String::new()
            };
            panic!(
                "{test}: missing dependency `{}`: {}; {}. A check that cannot run fails rather \
                 than passing (outside CI, {ALLOW_MISSING_VAR}={} skips it instead){ci_note}.",
                dep.name, dep.what, dep.how_to_install, dep.name
            )
        }
    }
}

#[test]
fn missing_dependency_fails_by_default() {
    assert_eq!(decide(None, None, "model"), Decision::Fail);
    assert_eq!(decide(Some(""), None, "model"), Decision::Fail);
}

#[test]
fn opt_out_names_the_dependency_or_all() {
    assert_eq!(decide(Some("model"), None, "model"), Decision::Skip);
    assert_eq!(decide(Some("all"), None, "nginx"), Decision::Skip);
    assert_eq!(
        decide(Some("clients, nginx"), None, "nginx"),
        Decision::Skip
    );
    assert_eq!(
        decide(Some("clients,nginx"), None, "clients"),
        Decision::Skip
    );
    // Only the names listed: no prefixes, no other dependencies.
    assert_eq!(decide(Some("clients"), None, "nginx"), Decision::Fail);
    assert_eq!(decide(Some("models"), None, "model"), Decision::Fail);
    assert_eq!(decide(Some("mod"), None, "model"), Decision::Fail);
}

#[test]
fn opt_out_is_ignored_in_ci() {
    for ci in ["true", "1", "", "false"] {
        assert_eq!(decide(Some("all"), Some(ci), "model"), Decision::Fail);
        assert_eq!(
            decide(Some("database"), Some(ci), "database"),
            Decision::Fail
        );
    }
}

#[test]
fn present_dependency_is_returned_whatever_the_env() {
    assert_eq!(resolve("t", &MODEL, Some(7), None, Some("true")), Some(7));
    assert_eq!(resolve("t", &MODEL, Some(7), Some("all"), None), Some(7));
}

#[test]
fn opted_out_missing_dependency_is_skipped() {
    assert_eq!(resolve::<u8>("t", &NGINX, None, Some("nginx"), None), None);
}

#[test]
#[should_panic(expected = "t: missing dependency `model`: the local embeddings model")]
fn missing_dependency_panics() {
    resolve::<u8>("t", &MODEL, None, None, None);
}

#[test]
#[should_panic(expected = "ignored because CI is set")]
fn missing_dependency_panics_in_ci_despite_opt_out() {
    resolve::<u8>("t", &CLIENTS, None, Some("all"), Some("true"));
}

#[test]
#[should_panic(expected = "scripts/fetch-model.sh")]
fn panic_says_how_to_install() {
    resolve::<u8>("t", &MODEL, None, Some("clients"), None);
}

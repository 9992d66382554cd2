//! A real OpenID Provider for the OAuth tests: the npm package `oidc-provider`, run by
//! `tests/clients/oidc_provider.mjs` on a free loopback port with Node from the client tools
//! (`scripts/install-client-tools.sh`). Tokens come from its token endpoint through the
//! client-credentials grant with a resource indicator (RFC 8707), as a real client gets them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::process::{LoopbackChild, Readiness, Scratch, tail};
use super::require;

/// The provider process; dropping it kills it.
pub struct IdentityProvider {
    // Fields drop in order: the process is gone before its log is removed.
    process: LoopbackChild,
    log: Scratch,
}

/// The client tools directory with Node and oidc-provider, or a failing test.
fn installed(test: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(require::dependency(
        test,
        &require::CLIENTS,
        std::env::var_os("PG_MCP_TEST_CLIENTS_DIR"),
    ));
    let node = dir.join("bin/node");
    let modules = dir.join("oidc/node_modules");
    for path in [&node, &modules.join("oidc-provider/package.json")] {
        assert!(
            path.exists(),
            "{} is missing although PG_MCP_TEST_CLIENTS_DIR is set: run scripts/install-client-tools.sh",
            path.display()
        );
    }
    (node, modules)
}

impl IdentityProvider {
    /// Starts the provider; its tokens' default audience is `resource`, and its clients'
    /// tenants are `seattle` and `redmond` (see the script's header for the clients).
    pub async fn start(test: &str, resource: &str, seattle: &str, redmond: &str) -> Self {
        let (node, modules) = installed(test);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/oidc_provider.mjs");
        let ready = Readiness {
            what: "oidc-provider",
            path: "/.well-known/openid-configuration",
            limit: Duration::from_secs(30),
            port_taken: "EADDRINUSE",
        };
        let (process, log) = LoopbackChild::start(
            &ready,
            |port| {
                let log = Scratch::file("oidc-provider");
                let out = std::fs::File::create(log.path()).unwrap();
                let child = Command::new(&node)
                    .arg(&script)
                    .env("OIDC_MODULES", &modules)
                    .env("PORT", port.to_string())
                    .env("RESOURCE", resource)
                    .env("SEATTLE", seattle)
                    .env("REDMOND", redmond)
                    .stdout(out.try_clone().unwrap())
                    .stderr(out)
                    .stdin(Stdio::null())
                    .spawn()
                    .expect("start node");
                (child, log)
            },
            |log| tail(log.path()),
        )
        .await;
        Self { process, log }
    }

    /// `http://127.0.0.1:<port>`, the provider's issuer identifier.
    pub fn issuer(&self) -> String {
        self.process.url("")
    }

    /// An access token for `client` from the token endpoint (client credentials), asking for
    /// `scope` (if any) and `resource`; Err with the provider's error reply otherwise.
    pub async fn token(&self, client: &str, scope: &str, resource: &str) -> Result<String, Value> {
        let mut form = vec![("grant_type", "client_credentials"), ("resource", resource)];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        let reply: Value = reqwest::Client::new()
            .post(self.process.url("/token"))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&form)
            .send()
            .await
            .expect("token request")
            .json()
            .await
            .expect("token reply is JSON");
        match reply["access_token"].as_str() {
            Some(token) => Ok(token.to_string()),
            None => Err(reply),
        }
    }

    /// The provider's test counters: JWKS and introspection requests served, published kids.
    async fn counters(&self) -> Value {
        reqwest::get(self.process.url("/test/jwks-hits"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// How many JWKS requests the provider served, and the key ids it publishes.
    pub async fn jwks_hits(&self) -> (u64, Vec<String>) {
        let reply = self.counters().await;
        let kids = reply["kids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        (reply["hits"].as_u64().unwrap(), kids)
    }

    /// How many introspection requests the provider served.
    pub async fn introspections(&self) -> u64 {
        self.counters().await["introspections"].as_u64().unwrap()
    }

    /// Rotates the signing key (SIGHUP): a new key signs, the old one stays published.
    pub async fn rotate(&self) {
        self.signal("-HUP").await;
    }

    /// Unpublishes every key but the newest (SIGUSR2).
    pub async fn drop_old_keys(&self) {
        self.signal("-USR2").await;
    }

    async fn signal(&self, which: &str) {
        let (_, before) = self.jwks_hits().await;
        let status = Command::new("kill")
            .args([which, &self.process.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let changed = super::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            async || {
                let (_, kids) = self.jwks_hits().await;
                (kids != before).then_some(())
            },
        )
        .await;
        assert!(
            changed.is_some(),
            "the provider's keys did not change after {which}:\n{}",
            tail(self.log.path())
        );
    }
}

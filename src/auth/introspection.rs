//! Opaque access tokens, checked with the issuer's introspection endpoint (RFC 7662), for
//! identity providers that issue tokens which are not JWTs.
//!
//! - The server authenticates to the endpoint as a client (HTTP Basic,
//!   PG_MCP_INTROSPECTION_CLIENT_ID and _SECRET) and posts the token.
//! - Fail closed: a token is accepted only when the reply says `active: true`, carries an
//!   `exp` still in the future, names this resource in `aud` (RFC 8707) and, when it names an
//!   issuer, names PG_MCP_JWT_ISSUER. An endpoint that does not answer refuses the call.
//! - The reply's members are the claims: the tenant claim, `scope` and the operator and write
//!   claims are read from it as from a JWT's.
//! - Active replies are cached by the token's SHA-256 for PG_MCP_INTROSPECTION_CACHE_SECS, never
//!   past the token's `exp`, so a busy client does not cost a request to the identity provider
//!   per call; a token revoked at the provider is refused once its entry expires.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest013 as reqwest;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{AppError, Result};

/// One introspection request may take this long.
const TIMEOUT: Duration = Duration::from_secs(5);
/// A reply larger than this is refused.
const MAX_REPLY_BYTES: usize = 64 * 1024;
/// At most this many tokens are cached; when full, expired entries go, then all.
const CACHE_CAPACITY: usize = 10_000;

fn unauthorized(message: impl Into<String>) -> AppError {
    AppError::new(crate::error::ErrorCode::Unauthorized, message)
}

/// The introspection client.
pub struct Introspector {
    url: url::Url,
    client_id: String,
    client_secret: SecretString,
    issuer: String,
    audience: String,
    leeway_secs: u64,
    cache_for: Duration,
    http: reqwest::Client,
    cache: std::sync::Mutex<HashMap<[u8; 32], (Value, Instant)>>,
}

impl Introspector {
    /// The introspector PG_MCP_INTROSPECTION_URL asks for, or None when it is unset.
    pub fn from_config(config: &Config) -> Result<Option<Self>> {
        let Some(raw) = &config.introspection_url else {
            return Ok(None);
        };
        let url = super::jwks::checked_url(raw, "PG_MCP_INTROSPECTION_URL")?;
        let (Some(client_id), Some(client_secret)) = (
            config
                .introspection_client_id
                .clone()
                .filter(|c| !c.is_empty()),
            config.introspection_client_secret.clone(),
        ) else {
            return Err(AppError::validation(
                "PG_MCP_INTROSPECTION_URL needs PG_MCP_INTROSPECTION_CLIENT_ID and PG_MCP_INTROSPECTION_CLIENT_SECRET (this server's client at the identity provider)",
            ));
        };
        let issuer = config.jwt_issuer.clone().ok_or_else(|| {
            AppError::validation("PG_MCP_INTROSPECTION_URL needs PG_MCP_JWT_ISSUER")
        })?;
        let audience = config
            .jwt_audience
            .clone()
            .or_else(|| config.resource_url.clone())
            .ok_or_else(|| {
                AppError::validation(
                    "PG_MCP_INTROSPECTION_URL needs an audience: set PG_MCP_RESOURCE_URL",
                )
            })?;
        crate::telemetry::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            // The token and the client secret go to the configured URL only.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AppError::validation(format!("building the introspection client: {e}")))?;
        Ok(Some(Self {
            url,
            client_id,
            client_secret,
            issuer,
            audience,
            leeway_secs: config.jwt_leeway_secs,
            cache_for: Duration::from_secs(config.introspection_cache_secs),
            http,
            cache: std::sync::Mutex::new(HashMap::new()),
        }))
    }

    /// The claims of an active token for this resource, or UNAUTHORIZED saying why not.
    pub async fn verify(&self, token: &str) -> Result<Value> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((claims, until)) = self.cache.lock().expect("lock").get(&key)
            && *until > Instant::now()
        {
            return Ok(claims.clone());
        }
        let reply = self.introspect(token).await?;
        let remaining = check(&reply, &self.issuer, &self.audience, self.leeway_secs)?;
        let until = Instant::now() + self.cache_for.min(remaining);
        let mut cache = self.cache.lock().expect("lock");
        if cache.len() >= CACHE_CAPACITY {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, (reply.clone(), until));
        Ok(reply)
    }

    /// POSTs the token to the endpoint; the reply's JSON object.
    async fn introspect(&self, token: &str) -> Result<Value> {
        let fail = |why: String| {
            tracing::warn!(url = %self.url, %why, "token introspection failed");
            unauthorized(format!(
                "the token could not be checked at the identity provider's introspection endpoint: {why}"
            ))
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let mut response = self
            .http
            .post(self.url.as_str())
            .basic_auth(&self.client_id, Some(self.client_secret.expose_secret()))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        let bytes = super::jwks::read_limited(&mut response, MAX_REPLY_BYTES)
            .await
            .map_err(fail)?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(reply @ Value::Object(_)) => Ok(reply),
            _ => Err(fail("the reply is not a JSON object".into())),
        }
    }
}

/// Whether an introspection `reply` accepts the token for `audience`: how long it stays
/// valid, or UNAUTHORIZED saying why not.
fn check(reply: &Value, issuer: &str, audience: &str, leeway_secs: u64) -> Result<Duration> {
    if reply["active"] != Value::Bool(true) {
        return Err(unauthorized(
            "the token is not active (unknown, expired or revoked at the identity provider)",
        ));
    }
    if let Some(iss) = reply.get("iss")
        && iss.as_str() != Some(issuer)
    {
        return Err(unauthorized("the token's issuer is not accepted"));
    }
    let audience_ok = match reply.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(unauthorized(
            "the token's audience is not accepted (it must name this resource)",
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let Some(exp) = reply.get("exp").and_then(Value::as_u64) else {
        return Err(unauthorized(
            "the introspection reply has no exp: tokens without an expiry are not accepted",
        ));
    };
    if exp + leeway_secs <= now {
        return Err(unauthorized("the token has expired"));
    }
    Ok(Duration::from_secs(exp.saturating_sub(now).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://login.example.test";
    const AUD: &str = "https://mcp.example.test/mcp";

    fn later() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600
    }

    #[test]
    fn an_active_token_for_this_resource_is_accepted_until_its_expiry() {
        let reply = json!({"active": true, "iss": ISS, "aud": AUD, "exp": later()});
        let left = check(&reply, ISS, AUD, 0).unwrap();
        assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
        let listed = json!({"active": true, "aud": ["other", AUD], "exp": later()});
        assert!(check(&listed, ISS, AUD, 0).is_ok());
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        let exp = later();
        for (reply, why) in [
            (json!({"active": false}), "not active"),
            (
                json!({"active": "true", "aud": AUD, "exp": exp}),
                "not active",
            ),
            (
                json!({"active": true, "iss": "https://evil.test", "aud": AUD, "exp": exp}),
                "issuer",
            ),
            (
                json!({"active": true, "aud": "https://other.test/mcp", "exp": exp}),
                "audience",
            ),
            (json!({"active": true, "exp": exp}), "audience"),
            (json!({"active": true, "aud": AUD}), "no exp"),
            (json!({"active": true, "aud": AUD, "exp": 1}), "expired"),
        ] {
            let error = check(&reply, ISS, AUD, 0).unwrap_err().message;
            assert!(error.contains(why), "{reply}: {error}");
        }
    }
}

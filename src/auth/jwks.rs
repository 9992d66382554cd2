//! The issuer's signing keys (a JWKS, RFC 7517), for identity providers that rotate them:
//! found through the issuer's metadata (OpenID Connect Discovery, else RFC 8414) or named by
//! PG_MCP_JWKS_URL.
//!
//! - **Cached** until their max age (the response's `Cache-Control: max-age`, kept between
//!   PG_MCP_JWKS_MIN_REFRESH_SECS and PG_MCP_JWKS_MAX_AGE_SECS).
//! - **Refreshed** on expiry and when a token names an unknown `kid`, at most once per
//!   PG_MCP_JWKS_MIN_REFRESH_SECS, so forged key ids cannot make this server hammer the
//!   identity provider. A failed refresh keeps the keys it had.
//! - **Pinned**: each key verifies only its own algorithms (its JWK `alg`, else the ones its
//!   type and curve imply), within PG_MCP_JWT_ALGORITHMS. A JWKS never supplies a symmetric
//!   key, so an HS256 token signed with a public key as its secret cannot verify.

use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use reqwest013 as reqwest;
use serde_json::Value;

use crate::error::{AppError, Result};

/// The algorithms a JWKS key may verify when PG_MCP_JWT_ALGORITHMS names none: every
/// asymmetric one.
pub const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A JWKS or metadata document larger than this is refused.
const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// One discovery or JWKS request may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Discover the JWKS URL from the issuer's metadata.
    Issuer(String),
    /// PG_MCP_JWKS_URL.
    Url(url::Url),
}

/// How often the keys may and must be fetched again.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub min_refresh: Duration,
    pub max_age: Duration,
}

/// One verifying key with the validation (algorithms included) it is pinned to.
struct SigningKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// The keys of one fetch.
struct KeySet {
    keys: Vec<SigningKey>,
    /// `None` until a fetch succeeded.
    expires: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    /// The discovered JWKS URL, kept once found.
    jwks_uri: Option<url::Url>,
    last_error: Option<String>,
}

/// The cached key set of one issuer.
pub struct Jwks {
    source: KeySource,
    issuer: String,
    client: reqwest::Client,
    allowed: Vec<Algorithm>,
    /// Issuer, audience, leeway and required claims; each key sets its algorithms.
    base: Validation,
    freshness: Freshness,
    keys: ArcSwap<KeySet>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

/// A URL fit to fetch keys from: https, or http to a loopback host (local development and
/// tests).
pub fn checked_url(raw: &str, what: &str) -> Result<url::Url> {
    let url = url::Url::parse(raw.trim())
        .map_err(|e| AppError::validation(format!("{what} is not a URL ({raw:?}): {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(AppError::validation(format!(
            "{what} must be an https URL (http only to a loopback host): {raw:?}"
        ))),
    }
}

/// Where an issuer publishes its metadata, in the order tried: OpenID Connect Discovery
/// (the path appended), then RFC 8414 (the well-known path inserted before the issuer's path).
pub fn metadata_urls(issuer: &str) -> Result<Vec<url::Url>> {
    let base = checked_url(issuer, "PG_MCP_JWT_ISSUER")?;
    let path = base.path().trim_end_matches('/');
    let origin = base.origin().ascii_serialization();
    [
        format!("{origin}{path}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ]
    .iter()
    .map(|u| checked_url(u, "the issuer's metadata URL"))
    .collect()
}

/// The algorithms `jwk` may verify, within `allowed`; `None` when the key is not for
/// verifying signatures here (symmetric, encryption, unknown type or curve, or an `alg`
/// outside `allowed` or unfit for the key).
pub fn pinned_algorithms(jwk: &Jwk, allowed: &[Algorithm]) -> Option<Vec<Algorithm>> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let fits: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        // Symmetric keys (`oct`) and anything else never verify.
        _ => return None,
    };
    let declared = match jwk.common.key_algorithm {
        Some(alg) => vec![Algorithm::try_from(alg).ok()?],
        None => fits.clone(),
    };
    let pinned: Vec<Algorithm> = declared
        .into_iter()
        .filter(|a| fits.contains(a) && allowed.contains(a))
        .collect();
    (!pinned.is_empty()).then_some(pinned)
}

/// `max-age` of a `Cache-Control` header, in seconds.
fn max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| secs.trim().parse().ok())
            .flatten()
    })
}

fn unauthorized(message: impl Into<String>) -> AppError {
    AppError::new(crate::error::ErrorCode::Unauthorized, message)
}

impl Jwks {
    pub fn new(
        source: KeySource,
        issuer: String,
        allowed: Vec<Algorithm>,
        base: Validation,
        freshness: Freshness,
    ) -> Result<Self> {
        crate::telemetry::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            // A redirect could lead off the configured host; key material is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AppError::validation(format!("building the JWKS HTTP client: {e}")))?;
        Ok(Self {
            source,
            issuer,
            client,
            allowed,
            base,
            freshness,
            keys: ArcSwap::from_pointee(KeySet {
                keys: Vec::new(),
                expires: None,
            }),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// Fetches the keys once (at start-up), so the first caller does not wait; a failure is
    /// logged and retried when a token arrives.
    pub async fn warm_up(&self) {
        self.refresh(true).await;
    }

    /// How many keys are loaded, and the last refresh error, for `/health`.
    pub async fn status(&self) -> Value {
        let keys = self.keys.load();
        let state = self.refresh.lock().await;
        serde_json::json!({
            "keys": keys.keys.len(),
            "loaded": keys.expires.is_some(),
            "last_error": state.last_error,
        })
    }

    /// The claims of `token`, verified with the issuer's key it names.
    pub async fn verify(&self, token: &str, header: &Header) -> Result<Value> {
        if !self.allowed.contains(&header.alg) {
            return Err(unauthorized(format!(
                "JWT algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let expired = self
            .keys
            .load()
            .expires
            .is_none_or(|at| Instant::now() >= at);
        if expired {
            self.refresh(false).await;
        }
        if let Some(claims) = self.try_verify(token, header)? {
            return Ok(claims);
        }
        // An unknown key id: the issuer may have rotated its keys.
        self.refresh(false).await;
        self.try_verify(token, header)?.ok_or_else(|| {
            unauthorized(match &header.kid {
                Some(_) => "the token's key (kid) is not among the issuer's keys",
                None => "the token names no key (kid) and the issuer has several",
            })
        })
    }

    /// Verifies with the loaded keys: `None` when none of them is the token's key.
    fn try_verify(&self, token: &str, header: &Header) -> Result<Option<Value>> {
        let keys = self.keys.load();
        let candidates: Vec<&SigningKey> = keys
            .keys
            .iter()
            .filter(|k| match &header.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => k.validation.algorithms.contains(&header.alg),
            })
            .collect();
        let key = match (candidates.as_slice(), &header.kid) {
            ([], _) => return Ok(None),
            ([key], _) => *key,
            (_, None) => return Ok(None),
            // Several keys share the kid: the one pinned to the token's algorithm.
            (many, Some(_)) => match many
                .iter()
                .find(|k| k.validation.algorithms.contains(&header.alg))
            {
                Some(key) => *key,
                None => return Err(unauthorized("the token's algorithm does not fit its key")),
            },
        };
        if !key.validation.algorithms.contains(&header.alg) {
            return Err(unauthorized("the token's algorithm does not fit its key"));
        }
        super::decode_claims(token, &key.key, &key.validation).map(Some)
    }

    /// Fetches the keys again unless another caller just did (or `force` at start-up); a
    /// failure keeps the old keys.
    async fn refresh(&self, force: bool) {
        let before = self.keys.load().expires;
        let mut state = self.refresh.lock().await;
        // Another caller refreshed while this one waited for the lock.
        if self.keys.load().expires != before {
            return;
        }
        if !force
            && state
                .last_attempt
                .is_some_and(|at| at.elapsed() < self.freshness.min_refresh)
        {
            return;
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch(&mut state).await {
            Ok(set) => {
                tracing::info!(issuer = %self.issuer, keys = set.keys.len(), "loaded the issuer's signing keys");
                metrics::counter!("pgmcp_jwks_refreshes_total", "outcome" => "ok").increment(1);
                state.last_error = None;
                self.keys.store(std::sync::Arc::new(set));
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e.message, "could not refresh the issuer's signing keys; keeping the ones loaded");
                metrics::counter!("pgmcp_jwks_refreshes_total", "outcome" => "error").increment(1);
                state.last_error = Some(e.message);
            }
        }
    }

    async fn fetch(&self, state: &mut RefreshState) -> Result<KeySet> {
        let jwks_uri = match (&self.source, &state.jwks_uri) {
            (KeySource::Url(url), _) => url.clone(),
            (KeySource::Issuer(_), Some(url)) => url.clone(),
            (KeySource::Issuer(issuer), None) => {
                let url = self.discover(issuer).await?;
                state.jwks_uri = Some(url.clone());
                url
            }
        };
        let (document, headers) = self.get_json(&jwks_uri).await?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| AppError::validation(format!("{jwks_uri} is not a JWKS (no keys)")))?;
        let mut keys = Vec::new();
        for entry in entries {
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
                continue;
            };
            let Some(algorithms) = pinned_algorithms(&jwk, &self.allowed) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let mut validation = self.base.clone();
            validation.algorithms = algorithms;
            keys.push(SigningKey {
                kid: jwk.common.key_id.clone(),
                key,
                validation,
            });
        }
        if keys.is_empty() {
            return Err(AppError::validation(format!(
                "{jwks_uri} has no signing key for the accepted algorithms"
            )));
        }
        let secs = max_age(&headers).unwrap_or(self.freshness.max_age.as_secs());
        let ttl = Duration::from_secs(secs).clamp(
            self.freshness.min_refresh,
            self.freshness.max_age.max(self.freshness.min_refresh),
        );
        Ok(KeySet {
            keys,
            expires: Some(Instant::now() + ttl),
        })
    }

    /// The `jwks_uri` of the issuer's metadata, whose `issuer` must be the configured one
    /// (RFC 8414 §3.3: metadata for another issuer is refused).
    async fn discover(&self, issuer: &str) -> Result<url::Url> {
        let mut errors = Vec::new();
        for url in metadata_urls(issuer)? {
            match self.get_json(&url).await {
                Ok((metadata, _)) => {
                    if metadata.get("issuer").and_then(Value::as_str) != Some(issuer) {
                        return Err(AppError::validation(format!(
                            "{url} names another issuer than PG_MCP_JWT_ISSUER ({issuer})"
                        )));
                    }
                    let jwks_uri = metadata
                        .get("jwks_uri")
                        .and_then(Value::as_str)
                        .ok_or_else(|| AppError::validation(format!("{url} has no jwks_uri")))?;
                    return checked_url(jwks_uri, "the issuer's jwks_uri");
                }
                Err(e) => errors.push(e.message),
            }
        }
        Err(AppError::validation(format!(
            "no metadata for issuer {issuer}: {}",
            errors.join("; ")
        )))
    }

    async fn get_json(&self, url: &url::Url) -> Result<(Value, reqwest::header::HeaderMap)> {
        let fail = |why: String| AppError::validation(format!("GET {url}: {why}"));
        let mut response = self
            .client
            .get(url.as_str())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(fail(format!("HTTP {}", response.status())));
        }
        let headers = response.headers().clone();
        let body = read_limited(&mut response, MAX_DOCUMENT_BYTES)
            .await
            .map_err(fail)?;
        let value = serde_json::from_slice(&body).map_err(|e| fail(format!("not JSON: {e}")))?;
        Ok((value, headers))
    }
}

/// A response's body, refused past `max` bytes (an identity provider's answers are small; a
/// huge one must not fill this server's memory). Err says why, without the URL.
pub(super) async fn read_limited(
    response: &mut reqwest::Response,
    max: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(value: Value) -> Jwk {
        serde_json::from_value(value).unwrap()
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn keys_are_pinned_to_their_type_and_declared_algorithm() {
        let all = ASYMMETRIC.to_vec();
        let rsa = jwk(serde_json::json!({"kty": "RSA", "kid": "a", "n": N, "e": "AQAB"}));
        assert_eq!(
            pinned_algorithms(&rsa, &[Algorithm::RS256]),
            Some(vec![Algorithm::RS256])
        );
        assert_eq!(pinned_algorithms(&rsa, &all).unwrap().len(), 6);
        let rs384 = jwk(serde_json::json!({"kty": "RSA", "alg": "RS384", "n": N, "e": "AQAB"}));
        assert_eq!(
            pinned_algorithms(&rs384, &all),
            Some(vec![Algorithm::RS384])
        );
        assert_eq!(pinned_algorithms(&rs384, &[Algorithm::RS256]), None);
        // An RSA key declaring an EC algorithm fits nothing.
        let odd = jwk(serde_json::json!({"kty": "RSA", "alg": "ES256", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithms(&odd, &all), None);
        let enc = jwk(serde_json::json!({"kty": "RSA", "use": "enc", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithms(&enc, &all), None);
        let ec = jwk(
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}),
        );
        assert_eq!(pinned_algorithms(&ec, &all), Some(vec![Algorithm::ES256]));
        // A symmetric key is never taken from a JWKS, whatever it declares.
        let oct = jwk(serde_json::json!({"kty": "oct", "alg": "HS256", "k": "c2VjcmV0"}));
        assert_eq!(pinned_algorithms(&oct, &[Algorithm::HS256]), None);
    }

    #[test]
    fn metadata_is_looked_up_where_oidc_and_rfc_8414_put_it() {
        let urls: Vec<String> = metadata_urls("https://login.example.com/tenant/v2.0")
            .unwrap()
            .iter()
            .map(url::Url::to_string)
            .collect();
        assert_eq!(
            urls,
            [
                "https://login.example.com/tenant/v2.0/.well-known/openid-configuration",
                "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0",
            ]
        );
        assert!(metadata_urls("http://idp.example.com").is_err());
        assert!(metadata_urls("http://127.0.0.1:9000").is_ok());
        assert!(checked_url("ftp://localhost/keys", "x").is_err());
    }

    #[test]
    fn cache_control_max_age_is_read() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=600, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Some(600));
        headers.insert(reqwest::header::CACHE_CONTROL, "no-cache".parse().unwrap());
        assert_eq!(max_age(&headers), None);
    }
}

//! Who is calling: header trust (loopback development) or a verified bearer JWT.
//!
//! JWT verification uses `jsonwebtoken`: signature with the configured key, algorithms pinned
//! to the key type (so an HS256 token signed with an RSA public key as secret is refused, and
//! `alg: none` never verifies), `exp` required, `nbf`, `iss` and `aud` checked.
//!
//! Keys are a static HMAC secret or PEM key, or the issuer's rotating JWKS (`jwks`), found by
//! metadata discovery from PG_MCP_JWT_ISSUER or named by PG_MCP_JWKS_URL.
//!
//! Either way the result is the caller's context (`db::context`): the tenant and the further
//! values the operator declared (`PG_MCP_CONTEXT`), each from its header or claim and
//! validated by its type. A tenant header that disagrees with the token's tenant is refused.

pub mod introspection;
pub mod jwks;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::config::{AuthMode, Config};
use crate::db::context::{ContextSpec, TENANT, TenantContext, ValueType};
use crate::db::{AuthMethod, Tenant};
use crate::error::{AppError, ErrorCode, Result};

/// The tenant header in header mode, unless PG_MCP_CONTEXT_HEADERS names another.
pub const RLS_HEADER: &str = "x-rls-user-id";

/// Where one context value comes from: a header in header mode, a claim in JWT mode.
#[derive(Debug, Clone)]
struct ValueSource {
    name: String,
    ty: ValueType,
    header: http::HeaderName,
    claim: String,
}

/// Verifies callers according to the configured mode.
pub struct Authenticator {
    mode: AuthMode,
    jwt: Option<JwtVerifier>,
    /// Opaque (non-JWT) tokens, checked at the issuer (PG_MCP_INTROSPECTION_URL).
    introspection: Option<introspection::Introspector>,
    /// The declared values, the tenant first.
    sources: Vec<ValueSource>,
    default_tenant: Option<Tenant>,
    /// Header callers, stdio's and the default tenant may write (PG_MCP_HEADER_WRITES).
    header_writes: bool,
    /// A JWT caller may write with this scope (PG_MCP_WRITE_SCOPE) ...
    write_scope: String,
    /// ... or with this claim value (PG_MCP_WRITE_CLAIM).
    write_claim: Option<(String, String)>,
    /// A JWT caller is an operator with this scope (PG_MCP_OPERATOR_SCOPE) ...
    operator_scope: String,
    /// ... or this claim value (PG_MCP_OPERATOR_CLAIM).
    operator_claim: Option<(String, String)>,
    /// In header mode on a loopback bind, a caller presenting this token is an operator.
    admin_token: Option<secrecy::SecretString>,
    /// A JWT caller needs this scope for any MCP request (PG_MCP_READ_SCOPE; empty: none).
    read_scope: String,
}

/// Who sent a request: the tenant (if any) and whether it is an operator.
pub struct Identity {
    pub tenant: Option<Tenant>,
    /// May list and call the DBA tools (operator scope, or the admin token in header mode).
    pub operator: bool,
    /// Holds the read scope, when one is required (always true in header mode).
    pub may_read: bool,
}

impl Identity {
    /// Whether the caller may write (a tenant allowed to).
    pub fn may_write(&self) -> bool {
        self.tenant.as_ref().is_some_and(|t| t.may_write)
    }
}

/// Where verifying keys come from. One per process, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum JwtVerifier {
    /// PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE.
    Static {
        key: DecodingKey,
        validation: Validation,
    },
    /// The issuer's JWKS.
    Jwks(jwks::Jwks),
}

fn unauthorized(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::Unauthorized, message)
}

/// `name=target` pairs of a setting, by name; every name must be a declared value.
fn pairs<'a>(
    setting: &str,
    entries: &'a [String],
    spec: &ContextSpec,
) -> Result<Vec<(&'a str, &'a str)>> {
    entries
        .iter()
        .map(|entry| {
            let (name, target) = entry.split_once('=').ok_or_else(|| {
                AppError::validation(format!("{setting}: {entry:?} is not name=value"))
            })?;
            let (name, target) = (name.trim(), target.trim());
            if !spec.values().iter().any(|v| v.name == name) {
                return Err(AppError::validation(format!(
                    "{setting}: {name:?} is not a value declared in PG_MCP_CONTEXT"
                )));
            }
            Ok((name, target))
        })
        .collect()
}

/// A setting name PostgreSQL accepts for a custom option (`prefix.name`), outside pg-mcp's own.
fn is_custom_setting(name: &str) -> bool {
    let ident = |part: &str| {
        let mut b = part.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
    };
    matches!(name.split_once('.'), Some((prefix, rest)) if ident(prefix) && ident(rest))
        && !name.to_ascii_lowercase().starts_with("pgmcp.")
        && name.len() <= 63
}

/// The compatibility settings (`PG_MCP_COMPAT_SETTINGS`) as (value name, setting) pairs.
pub fn compat_settings(config: &Config) -> Result<Vec<(String, String)>> {
    let spec = ContextSpec::parse(&config.context)?;
    pairs("PG_MCP_COMPAT_SETTINGS", &config.compat_settings, &spec)?
        .into_iter()
        .map(|(name, setting)| {
            if is_custom_setting(setting) {
                Ok((name.to_string(), setting.to_string()))
            } else {
                Err(AppError::validation(format!(
                    "PG_MCP_COMPAT_SETTINGS: {setting:?} is not a custom setting name such as app.current_tenant"
                )))
            }
        })
        .collect()
}

impl Authenticator {
    pub fn from_config(config: &Config) -> Result<Self> {
        let spec = ContextSpec::parse(&config.context)?;
        let headers = pairs("PG_MCP_CONTEXT_HEADERS", &config.context_headers, &spec)?;
        let claims = pairs("PG_MCP_CONTEXT_CLAIMS", &config.context_claims, &spec)?;
        let sources = spec
            .values()
            .iter()
            .map(|v| {
                let default_header = if v.name == TENANT {
                    RLS_HEADER.to_string()
                } else {
                    format!("x-pgmcp-{}", v.name.replace('_', "-"))
                };
                let header = headers
                    .iter()
                    .find(|(n, _)| *n == v.name)
                    .map_or(default_header, |(_, h)| h.to_ascii_lowercase());
                let header = http::HeaderName::try_from(header.as_str()).map_err(|_| {
                    AppError::validation(format!(
                        "PG_MCP_CONTEXT_HEADERS: {header:?} is not a header name"
                    ))
                })?;
                let default_claim = if v.name == TENANT {
                    config.jwt_tenant_claim.clone()
                } else {
                    v.name.clone()
                };
                let claim = claims
                    .iter()
                    .find(|(n, _)| *n == v.name)
                    .map_or(default_claim, |(_, c)| c.to_string());
                Ok(ValueSource {
                    name: v.name.clone(),
                    ty: v.ty,
                    header,
                    claim,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let default_tenant = config
            .default_rls_user_id
            .as_deref()
            .map(|raw| {
                Ok(Tenant {
                    context: TenantContext::tenant(
                        spec.tenant_value(raw, "PG_MCP_DEFAULT_RLS_USER_ID")?,
                    ),
                    subject: None,
                    auth: AuthMethod::Default,
                    may_write: config.header_writes,
                })
            })
            .transpose()
            .map_err(|e: AppError| AppError::validation(e.message))?;
        let (jwt, introspection) = match config.auth_mode {
            AuthMode::Header => (None, None),
            AuthMode::Jwt => (
                Some(JwtVerifier::from_config(config)?),
                introspection::Introspector::from_config(config)?,
            ),
        };
        let claim_pair = |setting: Option<&str>| {
            setting.and_then(|c| {
                let (name, value) = c.split_once('=')?;
                Some((name.trim().to_string(), value.trim().to_string()))
            })
        };
        let write_claim = claim_pair(config.write_claim.as_deref());
        let operator_claim = claim_pair(config.operator_claim.as_deref());
        // Header mode trusts the admin token for operators on a loopback bind only.
        let admin_token = config
            .admin_token
            .clone()
            .filter(|t| !t.expose_secret().is_empty() && config.is_loopback());
        Ok(Self {
            mode: config.auth_mode,
            jwt,
            introspection,
            sources,
            default_tenant,
            header_writes: config.header_writes,
            write_scope: config.write_scope.trim().to_string(),
            write_claim,
            operator_scope: config.operator_scope.trim().to_string(),
            operator_claim,
            admin_token,
            read_scope: config.read_scope.trim().to_string(),
        })
    }

    /// Loads the issuer's keys at start-up when they come from a JWKS (see [`jwks::Jwks::warm_up`]).
    pub async fn warm_up(&self) {
        if let Some(JwtVerifier::Jwks(jwks)) = &self.jwt {
            jwks.warm_up().await;
        }
    }

    /// The JWKS cache's state for `/health`, when keys come from one.
    pub async fn jwks_status(&self) -> Option<Value> {
        match &self.jwt {
            Some(JwtVerifier::Jwks(jwks)) => Some(jwks.status().await),
            _ => None,
        }
    }

    /// The scopes a JWT caller is asked for: read (if required), write and operator.
    pub fn scopes(&self) -> (&str, &str, &str) {
        (&self.read_scope, &self.write_scope, &self.operator_scope)
    }

    /// Whether callers are verified bearer tokens (so scope challenges make sense).
    pub fn is_jwt(&self) -> bool {
        self.mode == AuthMode::Jwt
    }

    /// The tenant for requests that carry none (`PG_MCP_DEFAULT_RLS_USER_ID`).
    pub fn default_tenant(&self) -> Option<&Tenant> {
        self.default_tenant.as_ref()
    }

    /// The tenant header and type, for messages that tell a caller what to send.
    pub fn tenant_hint(&self) -> String {
        let tenant = &self.sources[0];
        match self.mode {
            AuthMode::Header => format!("send the {} header ({})", tenant.header, tenant.ty),
            AuthMode::Jwt => format!(
                "send a bearer token whose {:?} claim names the tenant ({})",
                tenant.claim, tenant.ty
            ),
        }
    }

    /// A tenant from an explicit id (stdio's `PG_MCP_RLS_USER_ID`), validated by its type.
    pub fn process_tenant(&self, raw: &str) -> Result<Tenant> {
        let tenant = &self.sources[0];
        let id = tenant
            .ty
            .normalize(raw)
            .map_err(|want| AppError::validation(format!("PG_MCP_RLS_USER_ID must be {want}")))?;
        Ok(Tenant {
            context: TenantContext::tenant(id),
            subject: None,
            auth: AuthMethod::Default,
            may_write: self.header_writes,
        })
    }

    /// What would let a caller write, for the FORBIDDEN message.
    pub fn write_hint(&self) -> String {
        match self.mode {
            AuthMode::Header => {
                "header callers write only with PG_MCP_HEADER_WRITES=true, for development".into()
            }
            AuthMode::Jwt => {
                let mut hint = format!("a token with scope {:?}", self.write_scope);
                if let Some((name, value)) = &self.write_claim {
                    hint.push_str(&format!(" or claim {name}={value}"));
                }
                hint
            }
        }
    }

    /// What would make a caller an operator, for the FORBIDDEN message.
    pub fn operator_hint(&self) -> String {
        match self.mode {
            AuthMode::Header => {
                "operator tools need PG_MCP_ADMIN_TOKEN as the bearer token, on a loopback bind"
                    .into()
            }
            AuthMode::Jwt => {
                let mut hint = format!(
                    "operator tools need a token with scope {:?}",
                    self.operator_scope
                );
                if let Some((name, value)) = &self.operator_claim {
                    hint.push_str(&format!(" or claim {name}={value}"));
                }
                hint
            }
        }
    }

    /// Whether verified `claims` grant writing (see [`claims_grant`]).
    fn claims_may_write(&self, claims: &Value) -> bool {
        claims_grant(claims, &self.write_scope, self.write_claim.as_ref())
    }

    /// The caller of a request: its tenant and whether it is an operator.
    pub async fn identify(&self, headers: &http::HeaderMap) -> Result<Identity> {
        match self.mode {
            AuthMode::Header => {
                let tenant = self.authenticate(headers)?;
                let operator = self.admin_token.as_ref().is_some_and(|expected| {
                    bearer_token(headers).is_ok_and(|given| {
                        bool::from(subtle::ConstantTimeEq::ct_eq(
                            given.as_bytes(),
                            expected.expose_secret().as_bytes(),
                        ))
                    })
                });
                Ok(Identity {
                    tenant,
                    operator,
                    may_read: true,
                })
            }
            AuthMode::Jwt => {
                let claims = self.verify_token(bearer_token(headers)?).await?;
                let operator =
                    claims_grant(&claims, &self.operator_scope, self.operator_claim.as_ref());
                let may_read =
                    self.read_scope.is_empty() || claims_grant(&claims, &self.read_scope, None);
                // An operator's token may name no tenant: it then reaches the DBA tools only.
                if operator && claims.get(&self.sources[0].claim).is_none() {
                    return Ok(Identity {
                        tenant: None,
                        operator,
                        may_read,
                    });
                }
                let tenant = self.tenant_from_claims(headers, &claims)?;
                Ok(Identity {
                    tenant: Some(tenant),
                    operator,
                    may_read,
                })
            }
        }
    }
}

impl Authenticator {
    /// A bearer token's verified claims: a JWT through the keys, any other token through
    /// introspection when it is configured.
    async fn verify_token(&self, token: &str) -> Result<Value> {
        if let Some(introspection) = &self.introspection
            && decode_header(token).is_err()
        {
            return introspection.verify(token).await;
        }
        let verifier = self.jwt.as_ref().expect("jwt verifier in jwt mode");
        verifier.verify(token).await
    }
}

/// Whether verified `claims` grant `scope` in `scope` (space-separated, OAuth) or `scp` (a
/// string or an array, Entra ID), or hold `claim`'s value.
fn claims_grant(claims: &Value, scope: &str, claim: Option<&(String, String)>) -> bool {
    let holds = |claim: Option<&Value>, wanted: &str| match claim {
        Some(Value::String(s)) => s.split_whitespace().any(|w| w == wanted),
        Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(wanted)),
        Some(Value::Bool(b)) => wanted == b.to_string(),
        _ => false,
    };
    let scoped =
        !scope.is_empty() && (holds(claims.get("scope"), scope) || holds(claims.get("scp"), scope));
    scoped || claim.is_some_and(|(name, value)| holds(claims.get(name), value))
}

impl Authenticator {
    /// One header's value, refusing a repeated header (which copy would count?).
    fn header<'h>(
        &self,
        headers: &'h http::HeaderMap,
        name: &http::HeaderName,
    ) -> Result<Option<&'h [u8]>> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(_), Some(_)) => Err(AppError::new(
                ErrorCode::InvalidTenant,
                format!("the {name} header appears more than once"),
            )),
            (first, _) => Ok(first.map(http::HeaderValue::as_bytes)),
        }
    }

    /// A header value as the value type, or INVALID_TENANT naming the header.
    fn header_value(&self, source: &ValueSource, raw: &[u8]) -> Result<String> {
        std::str::from_utf8(raw)
            .map_err(|_| "valid UTF-8")
            .and_then(|text| source.ty.normalize(text))
            .map_err(|want| {
                AppError::new(
                    ErrorCode::InvalidTenant,
                    format!("the {} header must be {want}", source.header),
                )
            })
    }

    /// Header mode: the caller's tenant from its headers, `None` when the request carries
    /// none and there is no default (tools then refuse).
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<Option<Tenant>> {
        let tenant_source = &self.sources[0];
        let Some(tenant) = self
            .header(headers, &tenant_source.header)?
            .map(|raw| self.header_value(tenant_source, raw))
            .transpose()?
        else {
            return Ok(self.default_tenant.clone());
        };
        let mut values = Vec::new();
        for source in &self.sources[1..] {
            if let Some(raw) = self.header(headers, &source.header)? {
                values.push((source.name.clone(), self.header_value(source, raw)?));
            }
        }
        Ok(Some(Tenant {
            context: TenantContext { tenant, values },
            subject: None,
            auth: AuthMethod::Header,
            may_write: self.header_writes,
        }))
    }

    /// The tenant of verified `claims`; a tenant header must agree with it.
    fn tenant_from_claims(&self, headers: &http::HeaderMap, claims: &Value) -> Result<Tenant> {
        let tenant_source = &self.sources[0];
        let header_tenant = self
            .header(headers, &tenant_source.header)?
            .map(|raw| self.header_value(tenant_source, raw))
            .transpose()?;
        let tenant = self.context_from_claims(claims)?;
        if header_tenant.is_some_and(|h| h != tenant.context.tenant) {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                format!(
                    "the {} header does not match the token's tenant",
                    tenant_source.header
                ),
            ));
        }
        Ok(tenant)
    }

    /// The context a verified token's claims carry: the tenant claim is required, further
    /// values are optional; a claim of the wrong type is refused, never dropped.
    fn context_from_claims(&self, claims: &Value) -> Result<Tenant> {
        let forbidden = |message: String| AppError::new(ErrorCode::Forbidden, message);
        let tenant_source = &self.sources[0];
        let tenant_claim = claims.get(&tenant_source.claim).ok_or_else(|| {
            forbidden(format!(
                "the token has no {:?} claim naming the tenant",
                tenant_source.claim
            ))
        })?;
        let tenant = tenant_source
            .ty
            .normalize_json(tenant_claim)
            .map_err(|want| {
                forbidden(format!(
                    "the token's {:?} claim must be {want}",
                    tenant_source.claim
                ))
            })?;
        let mut values = Vec::new();
        for source in &self.sources[1..] {
            if let Some(claim) = claims.get(&source.claim) {
                let value = source.ty.normalize_json(claim).map_err(|want| {
                    forbidden(format!(
                        "the token's {:?} claim must be {want}",
                        source.claim
                    ))
                })?;
                values.push((source.name.clone(), value));
            }
        }
        Ok(Tenant {
            context: TenantContext { tenant, values },
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            auth: AuthMethod::Jwt,
            may_write: self.claims_may_write(claims),
        })
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Result<&str> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    let (scheme, token) = text
        .split_once(' ')
        .ok_or_else(|| unauthorized("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthorized(
            "the Authorization header must be a Bearer token",
        ));
    }
    Ok(token.trim())
}

impl JwtVerifier {
    fn from_config(config: &Config) -> Result<Self> {
        let base = base_validation(config);
        let static_key = match (&config.jwt_secret, &config.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                return Err(AppError::validation(
                    "set either PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE, not both",
                ));
            }
            (Some(secret), None) => {
                if secret.expose_secret().len() < 32 {
                    return Err(AppError::validation(
                        "PG_MCP_JWT_SECRET must be at least 32 bytes",
                    ));
                }
                Some((
                    DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                    "HS",
                ))
            }
            (None, Some(path)) => Some(pem_key(path)?),
            (None, None) => None,
        };
        let Some((key, family)) = static_key else {
            return Self::jwks(config, base);
        };
        if config.jwks_url.is_some() {
            return Err(AppError::validation(
                "PG_MCP_JWKS_URL cannot be combined with PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE",
            ));
        }
        let algorithms: Vec<Algorithm> = if config.jwt_algorithms.is_empty() {
            vec![match family {
                "HS" => Algorithm::HS256,
                "RS" => Algorithm::RS256,
                "ES" => Algorithm::ES256,
                _ => Algorithm::EdDSA,
            }]
        } else {
            configured_algorithms(config)?
        };
        // Pin algorithms to the key's family: this is what stops HS/RS confusion.
        for alg in &algorithms {
            let name = format!("{alg:?}");
            let fits = name.starts_with(family) || (family == "RS" && name.starts_with("PS"));
            if !fits {
                return Err(AppError::validation(format!(
                    "JWT algorithm {name} does not fit the configured {family} key"
                )));
            }
        }
        let mut validation = base;
        validation.algorithms = algorithms;
        Ok(Self::Static { key, validation })
    }

    /// Keys from the issuer's JWKS: the issuer and an audience are required, since an
    /// identity provider signs tokens for many applications with the same keys.
    fn jwks(config: &Config, base: Validation) -> Result<Self> {
        let Some(issuer) = config.jwt_issuer.clone() else {
            return Err(AppError::validation(
                "PG_MCP_AUTH_MODE=jwt needs keys: PG_MCP_JWT_ISSUER (its keys are discovered), PG_MCP_JWKS_URL, PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE",
            ));
        };
        if config.jwt_audience.is_none() && config.resource_url.is_none() {
            return Err(AppError::validation(
                "keys from an issuer's JWKS need an audience: set PG_MCP_RESOURCE_URL (or PG_MCP_JWT_AUDIENCE)",
            ));
        }
        let source = match &config.jwks_url {
            Some(url) => jwks::KeySource::Url(jwks::checked_url(url, "PG_MCP_JWKS_URL")?),
            None => {
                jwks::metadata_urls(&issuer)?;
                jwks::KeySource::Issuer(issuer.clone())
            }
        };
        let allowed = if config.jwt_algorithms.is_empty() {
            jwks::ASYMMETRIC.to_vec()
        } else {
            let algorithms = configured_algorithms(config)?;
            if let Some(alg) = algorithms.iter().find(|a| !jwks::ASYMMETRIC.contains(a)) {
                return Err(AppError::validation(format!(
                    "JWT algorithm {alg:?} cannot verify with an issuer's public keys"
                )));
            }
            algorithms
        };
        let freshness = jwks::Freshness {
            min_refresh: std::time::Duration::from_secs(config.jwks_min_refresh_secs),
            max_age: std::time::Duration::from_secs(config.jwks_max_age_secs.max(1)),
        };
        Ok(Self::Jwks(jwks::Jwks::new(
            source, issuer, allowed, base, freshness,
        )?))
    }

    async fn verify(&self, token: &str) -> Result<Value> {
        let header =
            decode_header(token).map_err(|_| unauthorized("the bearer token is not a JWT"))?;
        match self {
            Self::Static { key, validation } => {
                // Checked first only to give a precise message for refused algorithms.
                if !validation.algorithms.contains(&header.alg) {
                    return Err(unauthorized(format!(
                        "JWT algorithm {:?} is not accepted",
                        header.alg
                    )));
                }
                decode_claims(token, key, validation)
            }
            Self::Jwks(jwks) => jwks.verify(token, &header).await,
        }
    }
}

/// A PEM public key and its algorithm family.
fn pem_key(path: &std::path::Path) -> Result<(DecodingKey, &'static str)> {
    let pem = std::fs::read(path).map_err(|e| {
        AppError::validation(format!(
            "cannot read PG_MCP_JWT_PUBLIC_KEY_FILE {}: {e}",
            path.display()
        ))
    })?;
    if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
        Ok((k, "RS"))
    } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
        Ok((k, "ES"))
    } else if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
        Ok((k, "EdDSA"))
    } else {
        Err(AppError::validation(
            "PG_MCP_JWT_PUBLIC_KEY_FILE is not an RSA, EC or Ed25519 public key in PEM",
        ))
    }
}

/// PG_MCP_JWT_ALGORITHMS, parsed.
fn configured_algorithms(config: &Config) -> Result<Vec<Algorithm>> {
    config
        .jwt_algorithms
        .iter()
        .map(|a| {
            a.trim()
                .parse::<Algorithm>()
                .map_err(|_| AppError::validation(format!("unknown JWT algorithm {a:?}")))
        })
        .collect()
}

/// What every token must satisfy whatever its key: `exp` (and `nbf`) within the leeway, the
/// issuer and the audience when configured.
fn base_validation(config: &Config) -> Validation {
    let mut validation = Validation {
        leeway: config.jwt_leeway_secs,
        validate_exp: true,
        validate_nbf: true,
        ..Validation::default()
    };
    let mut required = vec!["exp"];
    match &config.jwt_issuer {
        Some(iss) => {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        None => validation.iss = None,
    }
    match config
        .jwt_audience
        .as_ref()
        .or(config.resource_url.as_ref())
    {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

/// The claims of `token` verified with `key`, or UNAUTHORIZED saying why not.
fn decode_claims(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Value> {
    let data = decode::<Value>(token, key, validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind as K;
        let why = match e.kind() {
            K::ExpiredSignature => "the token has expired",
            K::ImmatureSignature => "the token is not valid yet (nbf)",
            K::InvalidIssuer => "the token's issuer is not accepted",
            K::InvalidAudience => "the token's audience is not accepted",
            K::InvalidSignature => "the token's signature does not verify",
            K::InvalidAlgorithm => "the token's algorithm is not accepted",
            K::MissingRequiredClaim(_) => "the token lacks a required claim (exp, iss or aud)",
            _ => "the token is invalid",
        };
        unauthorized(why)
    })?;
    Ok(data.claims)
}

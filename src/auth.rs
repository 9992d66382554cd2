//! Who is calling: header trust (loopback development) or a verified bearer JWT.
//!
//! JWT verification uses `jsonwebtoken`: signature with the configured key, algorithms pinned
//! to the key type (so an HS256 token signed with an RSA public key as secret is refused, and
//! `alg: none` never verifies), `exp` required, `nbf`, `iss` and `aud` checked. The tenant is
//! the configured claim; an `x-rls-user-id` header that disagrees with it is refused.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::ExposeSecret;
use serde_json::Value;
use uuid::Uuid;

use crate::config::{AuthMode, Config};
use crate::db::{AuthMethod, Tenant};
use crate::error::{AppError, ErrorCode, Result};

pub const RLS_HEADER: &str = "x-rls-user-id";

/// Parses a tenant header value strictly: a UUID in any standard spelling, normalised.
pub fn parse_tenant_header(value: &[u8]) -> Result<Uuid> {
    let text = std::str::from_utf8(value).map_err(|_| invalid_tenant())?;
    Uuid::parse_str(text.trim()).map_err(|_| invalid_tenant())
}

fn invalid_tenant() -> AppError {
    AppError::new(
        ErrorCode::InvalidTenant,
        format!(
            "the {RLS_HEADER} header must be a UUID such as f47ac10b-58cc-4372-a567-0e02b2c3d479"
        ),
    )
}

/// Verifies callers according to the configured mode.
pub struct Authenticator {
    mode: AuthMode,
    jwt: Option<JwtVerifier>,
    default_tenant: Option<Uuid>,
}

struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    tenant_claim: String,
}

fn unauthorized(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::Unauthorized, message)
}

impl Authenticator {
    pub fn from_config(config: &Config) -> Result<Self> {
        let jwt = match config.auth_mode {
            AuthMode::Header => None,
            AuthMode::Jwt => Some(JwtVerifier::from_config(config)?),
        };
        Ok(Self {
            mode: config.auth_mode,
            jwt,
            default_tenant: config.default_rls_user_id,
        })
    }

    /// The caller's tenant, `None` when the request carries none (tools then refuse).
    pub fn authenticate(&self, headers: &http::HeaderMap) -> Result<Option<Tenant>> {
        let mut values = headers.get_all(RLS_HEADER).iter();
        let header_tenant = match (values.next(), values.next()) {
            (Some(_), Some(_)) => {
                return Err(AppError::new(
                    ErrorCode::InvalidTenant,
                    format!("the {RLS_HEADER} header appears more than once"),
                ));
            }
            (Some(v), None) => Some(parse_tenant_header(v.as_bytes())?),
            (None, _) => None,
        };
        match self.mode {
            AuthMode::Header => Ok(header_tenant
                .map(|id| Tenant {
                    rls_user_id: id,
                    subject: None,
                    auth: AuthMethod::Header,
                })
                .or_else(|| {
                    self.default_tenant.map(|id| Tenant {
                        rls_user_id: id,
                        subject: None,
                        auth: AuthMethod::Default,
                    })
                })),
            AuthMode::Jwt => {
                let verifier = self.jwt.as_ref().expect("jwt verifier in jwt mode");
                let token = bearer_token(headers)?;
                let tenant = verifier.verify(token)?;
                if header_tenant.is_some_and(|h| h != tenant.rls_user_id) {
                    return Err(AppError::new(
                        ErrorCode::Forbidden,
                        format!("the {RLS_HEADER} header does not match the token's tenant"),
                    ));
                }
                Ok(Some(tenant))
            }
        }
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
        let (key, family) = match (&config.jwt_secret, &config.jwt_public_key_file) {
            (Some(secret), None) => {
                if secret.expose_secret().len() < 32 {
                    return Err(AppError::validation(
                        "PG_MCP_JWT_SECRET must be at least 32 bytes",
                    ));
                }
                (
                    DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                    "HS",
                )
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path).map_err(|e| {
                    AppError::validation(format!(
                        "cannot read PG_MCP_JWT_PUBLIC_KEY_FILE {}: {e}",
                        path.display()
                    ))
                })?;
                if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                    (k, "RS")
                } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                    (k, "ES")
                } else if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
                    (k, "EdDSA")
                } else {
                    return Err(AppError::validation(
                        "PG_MCP_JWT_PUBLIC_KEY_FILE is not an RSA, EC or Ed25519 public key in PEM",
                    ));
                }
            }
            (Some(_), Some(_)) => {
                return Err(AppError::validation(
                    "set either PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE, not both",
                ));
            }
            (None, None) => {
                return Err(AppError::validation(
                    "PG_MCP_AUTH_MODE=jwt needs PG_MCP_JWT_SECRET or PG_MCP_JWT_PUBLIC_KEY_FILE",
                ));
            }
        };
        let algorithms: Vec<Algorithm> = if config.jwt_algorithms.is_empty() {
            vec![match family {
                "HS" => Algorithm::HS256,
                "RS" => Algorithm::RS256,
                "ES" => Algorithm::ES256,
                _ => Algorithm::EdDSA,
            }]
        } else {
            config
                .jwt_algorithms
                .iter()
                .map(|a| {
                    a.trim()
                        .parse::<Algorithm>()
                        .map_err(|_| AppError::validation(format!("unknown JWT algorithm {a:?}")))
                })
                .collect::<Result<_>>()?
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
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = config.jwt_leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &config.jwt_issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &config.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Ok(Self {
            key,
            validation,
            tenant_claim: config.jwt_tenant_claim.clone(),
        })
    }

    fn verify(&self, token: &str) -> Result<Tenant> {
        // Read the header first only to give a precise message for refused algorithms.
        let header =
            decode_header(token).map_err(|_| unauthorized("the bearer token is not a JWT"))?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(unauthorized(format!(
                "JWT algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let data = decode::<Value>(token, &self.key, &self.validation).map_err(|e| {
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
        let claims = data.claims;
        let tenant = claims
            .get(&self.tenant_claim)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "the token has no {:?} claim naming the tenant",
                        self.tenant_claim
                    ),
                )
            })?;
        let id = Uuid::parse_str(tenant).map_err(|_| {
            AppError::new(
                ErrorCode::Forbidden,
                format!("the token's {:?} claim is not a UUID", self.tenant_claim),
            )
        })?;
        Ok(Tenant {
            rls_user_id: id,
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .map(str::to_string),
            auth: AuthMethod::Jwt,
        })
    }
}

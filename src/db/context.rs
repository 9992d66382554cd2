//! The tenant context: the typed values a call runs under, which the database verifies
//! (`pgmcp.enter`, `pgmcp.tenant_id()`, `pgmcp.claim(name)`, migrations/0002).
//!
//! The operator declares the values (`PG_MCP_CONTEXT`, default `tenant:uuid`): a name and a
//! type each, `tenant` always among them. Every value is validated by its type before it
//! reaches the database and rendered in one canonical spelling, so what a policy compares is
//! what the server meant, and the statement that carries it holds only characters of a fixed
//! alphabet (letters, digits and `_ . @ : + -`).

use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use crate::error::{AppError, ErrorCode, Result};

/// The value every deployment has: the tenant whose rows a call may see.
pub const TENANT: &str = "tenant";

/// Longest `text` value.
pub const MAX_TEXT_LEN: usize = 128;
/// Most values per call (the database accepts 16 pairs).
pub const MAX_VALUES: usize = 16;

/// The type of one context value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A UUID in any standard spelling, stored lower-case and hyphenated.
    Uuid,
    /// A 64-bit signed integer (a JSON number or a decimal string).
    Bigint,
    /// 1 to 128 characters of letters, digits and `_ . @ : + -`.
    Text,
}

impl ValueType {
    fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "uuid" => Some(Self::Uuid),
            "bigint" | "int8" => Some(Self::Bigint),
            "text" => Some(Self::Text),
            _ => None,
        }
    }

    /// The canonical spelling of `raw`, or why it is not a value of this type.
    pub fn normalize(self, raw: &str) -> std::result::Result<String, &'static str> {
        let raw = raw.trim();
        match self {
            Self::Uuid => Uuid::parse_str(raw)
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| "a UUID such as f47ac10b-58cc-4372-a567-0e02b2c3d479"),
            Self::Bigint => raw
                .parse::<i64>()
                .map(|n| n.to_string())
                .map_err(|_| "a whole number between -9223372036854775808 and 9223372036854775807"),
            Self::Text => {
                let fits = !raw.is_empty()
                    && raw.len() <= MAX_TEXT_LEN
                    && raw
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.@:+-".contains(&b));
                if fits {
                    Ok(raw.to_string())
                } else {
                    Err("1 to 128 characters of letters, digits and _ . @ : + -")
                }
            }
        }
    }

    /// A JSON claim as this type: strings for every type, numbers for `bigint` too.
    pub fn normalize_json(
        self,
        claim: &serde_json::Value,
    ) -> std::result::Result<String, &'static str> {
        match claim {
            serde_json::Value::String(s) => self.normalize(s),
            serde_json::Value::Number(n) if self == Self::Bigint => self.normalize(&n.to_string()),
            _ => self.normalize(""),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uuid => "uuid",
            Self::Bigint => "bigint",
            Self::Text => "text",
        })
    }
}

/// One declared value: its name in `pgmcp.claim(name)` and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSpec {
    pub name: String,
    pub ty: ValueType,
}

/// The values a deployment passes, `tenant` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextSpec {
    values: Vec<ValueSpec>,
}

impl Default for ContextSpec {
    /// The demo's context: one UUID tenant.
    fn default() -> Self {
        Self {
            values: vec![ValueSpec {
                name: TENANT.into(),
                ty: ValueType::Uuid,
            }],
        }
    }
}

fn is_value_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= 32
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl ContextSpec {
    /// Parses `name:type` entries (`PG_MCP_CONTEXT`), e.g. `tenant:bigint, user:text`.
    pub fn parse(entries: &[String]) -> Result<Self> {
        if entries.is_empty() {
            return Ok(Self::default());
        }
        let mut values: Vec<ValueSpec> = Vec::new();
        for entry in entries {
            let (name, ty) = entry.split_once(':').unwrap_or((entry, "text"));
            let name = name.trim();
            if !is_value_name(name) {
                return Err(AppError::validation(format!(
                    "PG_MCP_CONTEXT: {name:?} is not a value name (a lower-case letter, then up to 31 lower-case letters, digits or _)"
                )));
            }
            let ty = ValueType::parse(ty).ok_or_else(|| {
                AppError::validation(format!(
                    "PG_MCP_CONTEXT: the type of {name:?} must be uuid, bigint or text, not {ty:?}"
                ))
            })?;
            if values.iter().any(|v| v.name == name) {
                return Err(AppError::validation(format!(
                    "PG_MCP_CONTEXT names {name:?} twice"
                )));
            }
            values.push(ValueSpec {
                name: name.to_string(),
                ty,
            });
        }
        let Some(at) = values.iter().position(|v| v.name == TENANT) else {
            return Err(AppError::validation(
                "PG_MCP_CONTEXT must declare the tenant value, e.g. tenant:uuid",
            ));
        };
        if values.len() > MAX_VALUES {
            return Err(AppError::validation(format!(
                "PG_MCP_CONTEXT declares {} values; at most {MAX_VALUES}",
                values.len()
            )));
        }
        let tenant = values.remove(at);
        values.insert(0, tenant);
        Ok(Self { values })
    }

    /// The declared values, `tenant` first.
    pub fn values(&self) -> &[ValueSpec] {
        &self.values
    }

    /// The tenant value's type.
    pub fn tenant_type(&self) -> ValueType {
        self.values[0].ty
    }

    /// `raw` as a tenant id, or `INVALID_TENANT` saying what `source` must hold.
    pub fn tenant_value(&self, raw: &str, source: &str) -> Result<String> {
        self.tenant_type().normalize(raw).map_err(|want| {
            AppError::new(ErrorCode::InvalidTenant, format!("{source} must be {want}"))
        })
    }
}

/// The caller's verified values: the tenant and any further declared values it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantContext {
    /// The tenant id, canonical for its type.
    pub tenant: String,
    /// Further values by name, canonical for their types, in declared order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, String)>,
}

impl TenantContext {
    /// A context that carries only the tenant.
    pub fn tenant(id: impl Into<String>) -> Self {
        Self {
            tenant: id.into(),
            values: Vec::new(),
        }
    }

    /// A value by name (`tenant` included).
    pub fn get(&self, name: &str) -> Option<&str> {
        if name == TENANT {
            return Some(&self.tenant);
        }
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// What `pgmcp.enter` receives: `tenant=<id>;name=value;...`. Every part is a validated
    /// name or a value of the fixed alphabet, so the text needs no quoting.
    pub fn canonical(&self) -> String {
        let mut out = format!("{TENANT}={}", self.tenant);
        for (name, value) in &self.values {
            out.push(';');
            out.push_str(name);
            out.push('=');
            out.push_str(value);
        }
        out
    }
}

impl fmt::Display for TenantContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(entries: &[&str]) -> Result<ContextSpec> {
        ContextSpec::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_default_is_one_uuid_tenant() {
        let s = spec(&[]).unwrap();
        assert_eq!(s.tenant_type(), ValueType::Uuid);
        assert_eq!(s.values().len(), 1);
    }

    #[test]
    fn the_tenant_comes_first_whatever_the_order() {
        let s = spec(&["user:text", "tenant:bigint"]).unwrap();
        assert_eq!(s.values()[0].name, "tenant");
        assert_eq!(s.values()[1].name, "user");
        assert_eq!(s.tenant_type(), ValueType::Bigint);
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        for (entries, says) in [
            (&["user:text"][..], "must declare the tenant"),
            (&["tenant:float"][..], "uuid, bigint or text"),
            (&["Tenant:uuid"][..], "not a value name"),
            (&["tenant:uuid", "tenant:text"][..], "twice"),
            (&["tenant:uuid", "a;b:text"][..], "not a value name"),
        ] {
            let e = spec(entries).unwrap_err();
            assert!(e.message.contains(says), "{entries:?}: {}", e.message);
        }
    }

    #[test]
    fn values_are_canonical_for_their_type() {
        assert_eq!(
            ValueType::Uuid.normalize(" F47AC10B-58CC-4372-A567-0E02B2C3D479 "),
            Ok("f47ac10b-58cc-4372-a567-0e02b2c3d479".into())
        );
        assert_eq!(ValueType::Bigint.normalize("042"), Ok("42".into()));
        assert_eq!(
            ValueType::Bigint.normalize_json(&serde_json::json!(-7)),
            Ok("-7".into())
        );
        assert_eq!(
            ValueType::Text.normalize("alice@example.com"),
            Ok("alice@example.com".into())
        );
    }

    #[test]
    fn values_outside_the_alphabet_are_refused() {
        for (ty, raw) in [
            (ValueType::Text, "a;tenant=1"),
            (ValueType::Text, "it's"),
            (ValueType::Text, "a b"),
            (ValueType::Text, ""),
            (ValueType::Text, &"x".repeat(129)),
            (ValueType::Bigint, "1e3"),
            (ValueType::Bigint, "99999999999999999999"),
            (ValueType::Uuid, "not-a-uuid"),
        ] {
            assert!(ty.normalize(raw).is_err(), "{ty} {raw:?}");
        }
        assert!(
            ValueType::Text
                .normalize_json(&serde_json::json!(5))
                .is_err()
        );
        assert!(
            ValueType::Uuid
                .normalize_json(&serde_json::json!(null))
                .is_err()
        );
    }

    #[test]
    fn the_canonical_text_lists_the_tenant_first() {
        let ctx = TenantContext {
            tenant: "42".into(),
            values: vec![("user".into(), "alice".into())],
        };
        assert_eq!(ctx.canonical(), "tenant=42;user=alice");
        assert_eq!(ctx.get("user"), Some("alice"));
        assert_eq!(ctx.get("tenant"), Some("42"));
        assert_eq!(ctx.get("role"), None);
    }
}

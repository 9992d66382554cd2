//! Binds JSON tool parameters to `$n` placeholders by the types PostgreSQL inferred for them.
//!
//! The statement is prepared first (sqlx caches it per connection, so this costs nothing
//! extra), PostgreSQL reports each parameter's type, and each JSON value is converted to
//! exactly that type. A value that does not fit is a VALIDATION_ERROR naming the parameter.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgTypeInfo, PgTypeKind};
use sqlx::{Arguments, TypeInfo};
use uuid::Uuid;

use crate::error::{AppError, Result};

/// Binds `params` in order; the count must match the statement's placeholders.
pub fn bind_params(types: &[PgTypeInfo], params: &[Value]) -> Result<PgArguments> {
    if types.len() != params.len() {
        return Err(AppError::validation(format!(
            "the statement has {} placeholder(s) but {} param(s) were given",
            types.len(),
            params.len()
        )));
    }
    let mut args = PgArguments::default();
    for (i, (ty, value)) in types.iter().zip(params).enumerate() {
        bind_one(&mut args, ty, value).map_err(|msg| {
            AppError::validation(format!(
                "param ${} ({}): {msg}",
                i + 1,
                ty.name().to_lowercase()
            ))
        })?;
    }
    Ok(args)
}

type BindResult = std::result::Result<(), String>;

fn add<T>(args: &mut PgArguments, v: T) -> BindResult
where
    T: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    args.add(v).map_err(|e| e.to_string())
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn int<T: FromStr + TryFrom<i64>>(value: &Value) -> std::result::Result<T, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .and_then(|i| T::try_from(i).ok())
            .ok_or_else(|| format!("{n} is not an integer in range")),
        Value::String(s) => s
            .trim()
            .parse::<T>()
            .map_err(|_| format!("{s:?} is not an integer")),
        other => Err(format!("expected an integer, got {other}")),
    }
}

fn bind_one(args: &mut PgArguments, ty: &PgTypeInfo, value: &Value) -> BindResult {
    let base = match ty.kind() {
        PgTypeKind::Domain(base) => base.clone(),
        _ => ty.clone(),
    };
    let name = base.name().to_ascii_uppercase();
    if let PgTypeKind::Enum(_) = base.kind() {
        // Enums accept their label as text.
        return match value {
            Value::Null => add(args, Option::<String>::None),
            v => add(args, as_text(v)),
        };
    }
    if value.is_null() {
        return match name.as_str() {
            "BOOL" => add(args, Option::<bool>::None),
            "INT2" => add(args, Option::<i16>::None),
            "INT4" => add(args, Option::<i32>::None),
            "INT8" => add(args, Option::<i64>::None),
            "FLOAT4" => add(args, Option::<f32>::None),
            "FLOAT8" => add(args, Option::<f64>::None),
            "NUMERIC" => add(args, Option::<Decimal>::None),
            "UUID" => add(args, Option::<Uuid>::None),
            "DATE" => add(args, Option::<NaiveDate>::None),
            "TIMESTAMP" => add(args, Option::<NaiveDateTime>::None),
            "TIMESTAMPTZ" => add(args, Option::<DateTime<Utc>>::None),
            "JSON" | "JSONB" => add(args, Option::<sqlx::types::Json<Value>>::None),
            _ => add(args, Option::<String>::None),
        };
    }
    match name.as_str() {
        "BOOL" => match value {
            Value::Bool(b) => add(args, *b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => add(args, true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => add(args, false),
            other => Err(format!("expected a boolean, got {other}")),
        },
        "INT2" => add(args, int::<i16>(value)?),
        "INT4" => add(args, int::<i32>(value)?),
        "INT8" => add(args, int::<i64>(value)?),
        "FLOAT4" | "FLOAT8" => {
            let f = match value {
                Value::Number(n) => n.as_f64().ok_or("not a finite number")?,
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{s:?} is not a number"))?,
                other => return Err(format!("expected a number, got {other}")),
            };
            if name == "FLOAT4" {
                add(args, f as f32)
            } else {
                add(args, f)
            }
        }
        "NUMERIC" => {
            let text = as_text(value);
            let d = Decimal::from_str(text.trim())
                .or_else(|_| Decimal::from_scientific(text.trim()))
                .map_err(|_| format!("{text:?} is not a decimal number (at most 28 significant digits; for more, pass text and cast: $1::text::numeric)"))?;
            add(args, d)
        }
        "UUID" => add(
            args,
            Uuid::parse_str(as_text(value).trim()).map_err(|_| "not a UUID".to_string())?,
        ),
        "DATE" => add(
            args,
            NaiveDate::parse_from_str(as_text(value).trim(), "%Y-%m-%d")
                .map_err(|_| "expected a date like 2025-01-31".to_string())?,
        ),
        "TIMESTAMP" => add(args, parse_naive_timestamp(&as_text(value))?),
        "TIMESTAMPTZ" => {
            let text = as_text(value);
            let ts = DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| parse_naive_timestamp(&text).map(|n| n.and_utc()))?;
            add(args, ts)
        }
        "JSON" | "JSONB" => add(args, sqlx::types::Json(value.clone())),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "UNKNOWN" | "CITEXT" => add(args, as_text(value)),
        other => Err(format!(
            "parameters of type {} are not supported; cast the placeholder, e.g. $1::text::{}",
            other.to_lowercase(),
            other.to_lowercase()
        )),
    }
}

fn parse_naive_timestamp(text: &str) -> std::result::Result<NaiveDateTime, String> {
    let t = text.trim();
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(ts) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(ts);
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
        .map_err(|_| format!("expected a timestamp like 2025-01-31T12:00:00, got {t:?}"))
}

/// JSON Schema of a `params` argument: an array of any JSON values. Spelled out because the
/// derived schema for `Vec<Value>` (`items: true`) is refused by strict clients.
pub fn params_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "description": "Values for the $1, $2 ... placeholders, in order (strings, numbers, booleans, null, or JSON for json/jsonb parameters).",
        "items": {}
    })
}

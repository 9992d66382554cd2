//! Rows to JSON with faithful types.
//!
//! Extended-protocol results arrive in PostgreSQL's binary format; this module decodes that
//! format directly, by type, so every value keeps its meaning: integers stay integers,
//! numerics keep every digit (as decimal strings, since JSON numbers lose precision in most
//! clients), timestamps are ISO 8601, intervals ISO 8601 durations, json/jsonb stay JSON,
//! arrays (any depth) and composites are decoded element by element, vectors become float
//! arrays. A type this module does not know is returned as `\x`-hex rather than guessed.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, SecondsFormat};
use serde::Serialize;
use serde_json::{Map, Number, Value, json};
use sqlx::postgres::{PgColumn, PgTypeInfo, PgTypeKind};
use sqlx::{Column, TypeInfo};

/// A result column: its name and PostgreSQL type.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

impl ColumnInfo {
    pub fn from_pg(col: &PgColumn) -> Self {
        Self {
            name: col.name().to_string(),
            type_name: type_display_name(col.type_info()),
        }
    }
}

/// `int4`, `numeric`, `text[]`, `vector`, the enum's own name, ...
pub fn type_display_name(ty: &PgTypeInfo) -> String {
    let name = ty.name();
    let display = if let Some(elem) = name.strip_prefix('_') {
        format!("{elem}[]")
    } else {
        name.to_string()
    };
    display.to_ascii_lowercase()
}

const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120; // 2000-01-01 as days from 0001-01-01 (CE)

fn pg_epoch() -> chrono::NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .expect("valid date")
        .and_hms_opt(0, 0, 0)
        .expect("valid time")
}

/// Decodes one binary value of type `ty`. `None` bytes are SQL NULL.
pub fn decode(ty: &PgTypeInfo, bytes: Option<&[u8]>) -> Value {
    let Some(bytes) = bytes else {
        return Value::Null;
    };
    match ty.kind() {
        PgTypeKind::Domain(base) => return decode(base, Some(bytes)),
        PgTypeKind::Enum(_) => return text(bytes),
        PgTypeKind::Array(elem) => return decode_array(elem, bytes).unwrap_or_else(|| hex(bytes)),
        PgTypeKind::Composite(fields) => {
            return decode_composite(Some(fields), bytes).unwrap_or_else(|| hex(bytes));
        }
        _ => {}
    }
    if let Some(v) = ty.oid().and_then(|oid| decode_builtin(oid.0, bytes)) {
        return v;
    }
    match ty.name() {
        "vector" => decode_vector(bytes).unwrap_or_else(|| hex(bytes)),
        "citext" | "ltree" | "lquery" => text(bytes),
        "RECORD" => decode_composite(None, bytes).unwrap_or_else(|| hex(bytes)),
        _ => hex(bytes),
    }
}

/// Decoders for built-in types, by OID (stable for built-ins).
fn decode_builtin(oid: u32, b: &[u8]) -> Option<Value> {
    Some(match oid {
        16 => Value::Bool(*b.first()? != 0),
        18 => text(b),                                                 // "char"
        20 => json!(i64::from_be_bytes(b.try_into().ok()?)),           // int8
        21 => json!(i16::from_be_bytes(b.try_into().ok()?)),           // int2
        23 => json!(i32::from_be_bytes(b.try_into().ok()?)),           // int4
        26 | 28 | 29 => json!(u32::from_be_bytes(b.try_into().ok()?)), // oid, xid, cid
        700 => float(f32::from_be_bytes(b.try_into().ok()?) as f64),
        701 => float(f64::from_be_bytes(b.try_into().ok()?)),
        1700 => Value::String(decode_numeric(b)?),
        790 => {
            // money: int8 cents (assumes two fractional digits, the common lc_monetary)
            let cents = i64::from_be_bytes(b.try_into().ok()?);
            Value::String(format!(
                "{}{}.{:02}",
                if cents < 0 { "-" } else { "" },
                (cents / 100).unsigned_abs(),
                (cents % 100).unsigned_abs()
            ))
        }
        25 | 1042 | 1043 | 19 | 142 | 705 => text(b), // text, bpchar, varchar, name, xml, unknown
        114 => serde_json::from_slice(b).unwrap_or_else(|_| text(b)), // json
        3802 => {
            // jsonb: version byte 1, then JSON text
            let body = b.get(1..)?;
            serde_json::from_slice(body).unwrap_or_else(|_| text(body))
        }
        17 => hex(b), // bytea
        2950 => Value::String(uuid::Uuid::from_slice(b).ok()?.hyphenated().to_string()),
        1082 => decode_date(i32::from_be_bytes(b.try_into().ok()?)),
        1114 => decode_timestamp(i64::from_be_bytes(b.try_into().ok()?), false),
        1184 => decode_timestamp(i64::from_be_bytes(b.try_into().ok()?), true),
        1083 => decode_time(i64::from_be_bytes(b.try_into().ok()?))?,
        1266 => {
            // timetz: time (i64 µs) + zone offset in seconds west of UTC
            let time = decode_time(i64::from_be_bytes(b.get(0..8)?.try_into().ok()?))?;
            let west = i32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
            let east = -west;
            Value::String(format!(
                "{}{}{:02}:{:02}",
                time.as_str()?,
                if east < 0 { '-' } else { '+' },
                east.abs() / 3600,
                (east.abs() % 3600) / 60
            ))
        }
        1186 => {
            let micros = i64::from_be_bytes(b.get(0..8)?.try_into().ok()?);
            let days = i32::from_be_bytes(b.get(8..12)?.try_into().ok()?);
            let months = i32::from_be_bytes(b.get(12..16)?.try_into().ok()?);
            Value::String(iso_interval(months, days, micros))
        }
        869 | 650 => decode_inet(b)?,
        2278 => Value::Null, // void
        _ => return None,
    })
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn hex(b: &[u8]) -> Value {
    Value::String(format!("\\x{}", hex::encode(b)))
}

/// Finite floats are JSON numbers; NaN and infinities are the strings PostgreSQL prints.
fn float(f: f64) -> Value {
    Number::from_f64(f).map(Value::Number).unwrap_or_else(|| {
        Value::String(
            if f.is_nan() {
                "NaN"
            } else if f > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            }
            .into(),
        )
    })
}

/// PostgreSQL's binary numeric: ndigits, weight, sign, dscale, then base-10000 digits.
/// Returns the exact decimal text, as `numeric_out` would print it.
pub fn decode_numeric(b: &[u8]) -> Option<String> {
    let ndigits = i16::from_be_bytes(b.get(0..2)?.try_into().ok()?) as usize;
    let weight = i16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as i32;
    let sign = u16::from_be_bytes(b.get(4..6)?.try_into().ok()?);
    let dscale = u16::from_be_bytes(b.get(6..8)?.try_into().ok()?) as i32;
    match sign {
        0xC000 => return Some("NaN".into()),
        0xD000 => return Some("Infinity".into()),
        0xF000 => return Some("-Infinity".into()),
        0x0000 | 0x4000 => {}
        _ => return None,
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        let off = 8 + i * 2;
        digits.push(u16::from_be_bytes(b.get(off..off + 2)?.try_into().ok()?));
    }
    let group = |idx: i32| -> u16 {
        if idx >= 0 && (idx as usize) < digits.len() {
            digits[idx as usize]
        } else {
            0
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    // Integer part: groups 0..=weight.
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let g = group(i);
            if i == 0 {
                out.push_str(&g.to_string());
            } else {
                out.push_str(&format!("{g:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut i = weight + 1;
        while (frac.len() as i32) < dscale {
            frac.push_str(&format!("{:04}", group(i)));
            i += 1;
        }
        frac.truncate(dscale as usize);
        out.push_str(&frac);
    }
    if out == "-0" || (out.starts_with("-0.") && out[1..].chars().all(|c| c == '0' || c == '.')) {
        out.remove(0);
    }
    Some(out)
}

fn decode_date(days: i32) -> Value {
    match days {
        i32::MAX => Value::String("infinity".into()),
        i32::MIN => Value::String("-infinity".into()),
        d => NaiveDate::from_num_days_from_ce_opt(PG_EPOCH_DAYS_FROM_CE + d)
            .map(|date| Value::String(date.format("%Y-%m-%d").to_string()))
            .unwrap_or(Value::Null),
    }
}

fn decode_timestamp(micros: i64, with_tz: bool) -> Value {
    match micros {
        i64::MAX => return Value::String("infinity".into()),
        i64::MIN => return Value::String("-infinity".into()),
        _ => {}
    }
    let Some(ts) = pg_epoch().checked_add_signed(ChronoDuration::microseconds(micros)) else {
        return Value::Null;
    };
    if with_tz {
        let utc = DateTime::<chrono::Utc>::from_naive_utc_and_offset(ts, chrono::Utc);
        Value::String(utc.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    } else {
        Value::String(ts.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
    }
}

fn decode_time(micros: i64) -> Option<Value> {
    let secs = u32::try_from(micros.div_euclid(1_000_000)).ok()?;
    let nanos = (micros.rem_euclid(1_000_000) * 1000) as u32;
    if secs == 86_400 {
        return Some(Value::String("24:00:00".into()));
    }
    let t = NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?;
    Some(Value::String(t.format("%H:%M:%S%.f").to_string()))
}

/// ISO 8601 duration (`P1Y2M3DT4H5M6.5S`); components keep their own sign, as PostgreSQL's
/// `intervalstyle = iso_8601` prints them.
pub fn iso_interval(months: i32, days: i32, micros: i64) -> String {
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        s.push_str(&format!("{years}Y"));
    }
    if months != 0 {
        s.push_str(&format!("{months}M"));
    }
    if days != 0 {
        s.push_str(&format!("{days}D"));
    }
    if micros != 0 {
        s.push('T');
        let neg = micros < 0;
        let abs = micros.unsigned_abs();
        let hours = abs / 3_600_000_000;
        let minutes = (abs / 60_000_000) % 60;
        let secs = (abs / 1_000_000) % 60;
        let frac = abs % 1_000_000;
        let sign = if neg { "-" } else { "" };
        if hours != 0 {
            s.push_str(&format!("{sign}{hours}H"));
        }
        if minutes != 0 {
            s.push_str(&format!("{sign}{minutes}M"));
        }
        if secs != 0 || frac != 0 {
            if frac != 0 {
                let f = format!("{frac:06}");
                s.push_str(&format!("{sign}{secs}.{}S", f.trim_end_matches('0')));
            } else {
                s.push_str(&format!("{sign}{secs}S"));
            }
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

fn decode_inet(b: &[u8]) -> Option<Value> {
    let family = *b.first()?;
    let bits = *b.get(1)?;
    let len = *b.get(3)? as usize;
    let addr = b.get(4..4 + len)?;
    let ip = match (family, len) {
        (2, 4) => std::net::IpAddr::from(<[u8; 4]>::try_from(addr).ok()?),
        (3, 16) => std::net::IpAddr::from(<[u8; 16]>::try_from(addr).ok()?),
        _ => return None,
    };
    let full = if ip.is_ipv4() { 32 } else { 128 };
    Some(Value::String(if bits == full {
        ip.to_string()
    } else {
        format!("{ip}/{bits}")
    }))
}

/// pgvector's binary format (dim u16, unused u16, then dim big-endian f32), decoded by the
/// pgvector crate. It is given raw bytes (a vector may sit inside an array or a composite),
/// so through postgres-types' `FromSql`, which ignores the type argument. That decoder
/// slices without checking the length, so a short value is refused here first (hex, no panic).
fn decode_vector(b: &[u8]) -> Option<Value> {
    use postgres_types::{FromSql, Kind, Type};
    use std::sync::LazyLock;
    static VECTOR: LazyLock<Type> =
        LazyLock::new(|| Type::new("vector".into(), 0, Kind::Simple, "public".into()));

    let dim = usize::from(u16::from_be_bytes(b.get(0..2)?.try_into().ok()?));
    if b.len() < 4 + 4 * dim {
        return None;
    }
    let vector = pgvector::Vector::from_sql(&VECTOR, b).ok()?;
    Some(Value::Array(
        vector
            .as_slice()
            .iter()
            .map(|x| float(f64::from(*x)))
            .collect(),
    ))
}

/// Binary array: ndim, has_null, element oid, (len, lower bound) per dimension, then
/// elements as (len i32, bytes) with -1 for NULL. Multi-dimensional arrays nest.
fn decode_array(elem: &PgTypeInfo, b: &[u8]) -> Option<Value> {
    let ndim = i32::from_be_bytes(b.get(0..4)?.try_into().ok()?) as usize;
    if ndim == 0 {
        return Some(Value::Array(vec![]));
    }
    if ndim > 6 {
        return None;
    }
    let mut dims = Vec::with_capacity(ndim);
    for d in 0..ndim {
        let off = 12 + d * 8;
        dims.push(i32::from_be_bytes(b.get(off..off + 4)?.try_into().ok()?).max(0) as usize);
    }
    let mut pos = 12 + ndim * 8;
    let total: usize = dims.iter().product();
    let mut flat = Vec::with_capacity(total.min(1 << 20));
    for _ in 0..total {
        let len = i32::from_be_bytes(b.get(pos..pos + 4)?.try_into().ok()?);
        pos += 4;
        if len < 0 {
            flat.push(Value::Null);
        } else {
            let l = len as usize;
            flat.push(decode(elem, Some(b.get(pos..pos + l)?)));
            pos += l;
        }
    }
    Some(nest(&dims, &mut flat.into_iter()))
}

fn nest(dims: &[usize], items: &mut impl Iterator<Item = Value>) -> Value {
    match dims {
        [] => Value::Null,
        [n] => Value::Array(items.take(*n).collect()),
        [n, rest @ ..] => Value::Array((0..*n).map(|_| nest(rest, items)).collect()),
    }
}

/// Binary composite: nfields, then (oid, len, bytes) per field. Named composites decode to
/// objects; anonymous records to arrays (built-in field types only).
fn decode_composite(fields: Option<&[(String, PgTypeInfo)]>, b: &[u8]) -> Option<Value> {
    let n = i32::from_be_bytes(b.get(0..4)?.try_into().ok()?).max(0) as usize;
    let mut pos = 4;
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let oid = u32::from_be_bytes(b.get(pos..pos + 4)?.try_into().ok()?);
        let len = i32::from_be_bytes(b.get(pos + 4..pos + 8)?.try_into().ok()?);
        pos += 8;
        let value = if len < 0 {
            Value::Null
        } else {
            let bytes = b.get(pos..pos + len as usize)?;
            pos += len as usize;
            match fields.and_then(|f| f.get(i)) {
                Some((_, ty)) => decode(ty, Some(bytes)),
                None => decode_builtin(oid, bytes).unwrap_or_else(|| hex(bytes)),
            }
        };
        values.push(value);
    }
    Some(match fields {
        Some(f) => Value::Object(
            f.iter()
                .map(|(name, _)| name.clone())
                .zip(values)
                .collect::<Map<_, _>>(),
        ),
        None => Value::Array(values),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(ndigits.to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(dscale.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numeric_keeps_every_digit() {
        // 12345678901234567890.123456789 = groups 1234 5678 9012 3456 7890 . 1234 5678 9000
        let b = numeric_bytes(
            8,
            4,
            0,
            9,
            &[1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000],
        );
        assert_eq!(
            decode_numeric(&b).unwrap(),
            "12345678901234567890.123456789"
        );
        let b = numeric_bytes(1, -1, 0x4000, 3, &[500]);
        assert_eq!(decode_numeric(&b).unwrap(), "-0.050");
        let b = numeric_bytes(0, 0, 0, 2, &[]);
        assert_eq!(decode_numeric(&b).unwrap(), "0.00");
        let b = numeric_bytes(0, 0, 0xC000, 0, &[]);
        assert_eq!(decode_numeric(&b).unwrap(), "NaN");
        assert!(
            decode_numeric(&[1, 2]).is_none(),
            "truncated input is refused, not a panic"
        );
    }

    #[test]
    fn intervals_are_iso_8601() {
        assert_eq!(
            iso_interval(14, 3, 4 * 3_600_000_000 + 5_500_000),
            "P1Y2M3DT4H5.5S"
        );
        assert_eq!(iso_interval(0, 0, 0), "PT0S");
        assert_eq!(iso_interval(0, -1, 0), "P-1D");
    }

    #[test]
    fn dates_and_timestamps() {
        assert_eq!(decode_date(0), json!("2000-01-01"));
        assert_eq!(decode_date(i32::MAX), json!("infinity"));
        assert_eq!(
            decode_timestamp(1_500_000, true),
            json!("2000-01-01T00:00:01.500Z")
        );
        assert_eq!(decode_timestamp(0, false), json!("2000-01-01T00:00:00"));
    }

    #[test]
    fn vectors_are_float_arrays_and_short_ones_are_refused() {
        let mut b = vec![0, 3, 0, 0];
        for x in [1.0f32, 2.5, -3.0] {
            b.extend(x.to_be_bytes());
        }
        assert_eq!(decode_vector(&b), Some(json!([1.0, 2.5, -3.0])));
        assert_eq!(decode_vector(&[0, 0, 0, 0]), Some(json!([])));
        assert_eq!(
            decode_vector(&b[..b.len() - 1]),
            None,
            "truncated: no panic"
        );
        assert_eq!(decode_vector(&[0]), None);
    }
}

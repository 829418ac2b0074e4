//! Strict JSON for JOSE headers and JWT claim sets: UTF-8, one object, no duplicate member names.
//!
//! What must hold: a text in which any object — at the top level or nested — names a member
//! twice is refused, because `serde_json::Value` would silently keep the last one and two
//! parsers could then disagree on what was signed (RFC 7515 §5.2 step 4, RFC 7519 §4,
//! RFC 8725 §3.1's advice to be strict). Member names are compared after unescaping, so
//! `"a"` and `"\u0061"` are the same name. Nesting depth is bounded by serde_json's limit.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// Why a text is not a strict JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// Some object names a member twice.
    DuplicateMember,
    /// Not JSON, or JSON but not an object.
    NotObject,
}

/// Parses `bytes` as one JSON object, refusing non-UTF-8 and duplicate member names.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    // Pass 1: duplicates. Every value type is accepted by the visitor, so the only data
    // error it raises is the duplicate one; syntax errors surface as syntax errors.
    if let Err(e) = serde_json::from_str::<NoDuplicates>(text) {
        return Err(if e.is_data() {
            JsonError::DuplicateMember
        } else {
            JsonError::NotObject
        });
    }
    // Pass 2: the value itself.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JsonError::NotObject),
    }
}

/// Deserializes any JSON value, failing if an object repeats a member name.
struct NoDuplicates;

impl<'de> Deserialize<'de> for NoDuplicates {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicatesVisitor)
    }
}

struct NoDuplicatesVisitor;

impl<'de> Visitor<'de> for NoDuplicatesVisitor {
    type Value = NoDuplicates;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_i128<E: de::Error>(self, _: i128) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_u128<E: de::Error>(self, _: u128) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_unit<E: de::Error>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_none<E: de::Error>(self) -> Result<NoDuplicates, E> {
        Ok(NoDuplicates)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NoDuplicates, A::Error> {
        while seq.next_element::<NoDuplicates>()?.is_some() {}
        Ok(NoDuplicates)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoDuplicates, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value::<NoDuplicates>()?;
        }
        Ok(NoDuplicates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_refused_at_every_level() {
        assert!(parse_object(br#"{"a":1,"b":2}"#).is_ok());
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateMember)
        );
        assert_eq!(
            parse_object(br#"{"a":1,"\u0061":2}"#),
            Err(JsonError::DuplicateMember)
        );
        assert_eq!(
            parse_object(br#"{"x":[{"a":1,"a":1}]}"#),
            Err(JsonError::DuplicateMember)
        );
        assert!(parse_object(br#"{"x":[{"a":1},{"a":1}]}"#).is_ok());
    }

    #[test]
    fn only_utf8_objects() {
        assert_eq!(parse_object(b"{\"a\":\"\xff\"}"), Err(JsonError::NotUtf8));
        assert_eq!(parse_object(b"[1]"), Err(JsonError::NotObject));
        assert_eq!(parse_object(b"\"x\""), Err(JsonError::NotObject));
        assert_eq!(parse_object(b"{} {}"), Err(JsonError::NotObject));
        assert_eq!(parse_object(b"{\"a\":1"), Err(JsonError::NotObject));
        assert_eq!(parse_object(b""), Err(JsonError::NotObject));
        assert_eq!(
            parse_object(br#"{"a":"\ud800"}"#),
            Err(JsonError::NotObject)
        );
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse_object(deep.as_bytes()), Err(JsonError::NotObject));
    }
}

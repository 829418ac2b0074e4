//! Strict JSON for JOSE headers and JWT claim sets: UTF-8, one object, no duplicate member names.
//!
//! What must hold: a text in which any object — at the top level or nested — names a member
//! twice is refused, because `serde_json::Value` would silently keep the last one and two
//! parsers could then disagree on what was signed (RFC 7515 §5.2 step 4, RFC 7519 §4,
//! RFC 8725 §3.1's advice to be strict). Member names are compared after unescaping, so
//! `"a"` and `"\u0061"` are the same name. Nesting depth is bounded by serde_json's limit.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
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
///
/// One pass: the values are built by a visitor that refuses a member name its object already
/// holds (parsing once to find duplicates and again into values cost twice the time).
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    // the visitor's only data error is the duplicate one; syntax errors (and serde_json's
    // nesting limit) surface as syntax errors
    match serde_json::from_str::<Strict>(text) {
        Ok(Strict(Value::Object(m))) => Ok(m),
        Ok(_) => Err(JsonError::NotObject),
        Err(e) if e.is_data() => Err(JsonError::DuplicateMember),
        Err(_) => Err(JsonError::NotObject),
    }
}

/// Any JSON value, refused if an object in it repeats a member name.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        // JSON text has no NaN or infinity, so this is always a number
        Ok(Strict(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element::<Strict>()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom("duplicate member name"));
            }
            let Strict(v) = map.next_value::<Strict>()?;
            out.insert(key, v);
        }
        Ok(Strict(Value::Object(out)))
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

    /// The one-pass parser builds exactly the value serde_json builds, for any object without
    /// repeated names (numbers of every kind, escapes, nesting).
    #[test]
    fn values_are_those_serde_json_builds() {
        for text in [
            r#"{}"#,
            r#"{"sub":"alice","exp":1700000000,"nbf":-5,"big":18446744073709551615}"#,
            r#"{"f":1.5e3,"g":-0.0,"t":true,"n":null,"s":"\u00e9\n\"x\""}"#,
            r#"{"aud":["a","b"],"nested":{"x":[1,{"y":[]}],"z":{}}}"#,
        ] {
            let ours = parse_object(text.as_bytes()).map(Value::Object);
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, Ok(theirs), "{text}");
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_object_round_trips(m in proptest::collection::btree_map(".{0,8}", json_value(), 0..8)) {
            let object: Map<String, Value> = m.into_iter().collect();
            let text = serde_json::to_string(&object).unwrap();
            let theirs: Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(parse_object(text.as_bytes()).map(Value::Object), Ok(theirs));
            // and the same object with one member written twice is refused
            if let Some((k, v)) = object.iter().next() {
                let twice = format!(
                    "{{{}:{},{}}}",
                    serde_json::to_string(k).unwrap(),
                    v,
                    &text[1..]
                );
                proptest::prop_assert_eq!(
                    parse_object(twice.as_bytes()),
                    Err(JsonError::DuplicateMember)
                );
            }
        }
    }
}

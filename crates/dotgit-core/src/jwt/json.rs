//! Strict JSON for JOSE headers and JWT claim sets: UTF-8, one object, no duplicate member names.
//!
//! What must hold: a text in which any object — at the top level or nested — names a member
//! twice is refused, because `serde_json::Value` would silently keep the last one and two
//! parsers could then disagree on what was signed (RFC 7515 §5.2 step 4, RFC 7519 §4,
//! RFC 8725 §3.1's advice to be strict). Member names are compared after unescaping, so
//! `"a"` and `"\u0061"` are the same name. Nesting depth is bounded by serde_json's limit.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
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

/// A JSON value whose strings and member names are borrowed from the text wherever they hold no
/// escape: a token's claims are read without an allocation per string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    Array(Vec<Val<'a>>),
    Object(Obj<'a>),
}

impl<'a> Val<'a> {
    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer that fits an `i64` (as [`Value::as_i64`]).
    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Val::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The same value, owning its strings (a claim kept after the text it was read from is
    /// dropped).
    pub(crate) fn into_owned(self) -> Val<'static> {
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Number(n) => Val::Number(n),
            Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
            Val::Array(a) => Val::Array(a.into_iter().map(Val::into_owned).collect()),
            Val::Object(o) => Val::Object(Obj(o
                .0
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect())),
        }
    }

    /// The same value, owned, as serde_json builds it.
    pub(crate) fn into_value(self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(b),
            Val::Number(n) => Value::Number(n),
            Val::Str(s) => Value::String(s.into_owned()),
            Val::Array(a) => Value::Array(a.into_iter().map(Val::into_value).collect()),
            Val::Object(o) => Value::Object(o.into_map()),
        }
    }
}

/// An object's members in text order, no name twice.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

impl<'a> Obj<'a> {
    /// The member named `name` (names compared after unescaping).
    pub(crate) fn get(&self, name: &str) -> Option<&Val<'a>> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether a member is named `name`.
    pub(crate) fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The members named in `names`, their values owned, under those static names (no
    /// allocation for a name); every other member is dropped.
    pub(crate) fn into_owned_subset(self, names: &[&'static str]) -> Obj<'static> {
        let mut kept = Vec::with_capacity(names.len().min(self.0.len()));
        for (name, value) in self.0 {
            if let Some(known) = names.iter().find(|n| **n == name) {
                kept.push((Cow::Borrowed(*known), value.into_owned()));
            }
        }
        Obj(kept)
    }

    fn into_map(self) -> Map<String, Value> {
        self.0
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v.into_value()))
            .collect()
    }
}

/// Parses `bytes` as one JSON object, refusing non-UTF-8 and duplicate member names, and
/// borrowing what it can from `bytes`.
///
/// One pass: the values are built by a visitor that refuses a member name its object already
/// holds (parsing once to find duplicates and again into values cost twice the time).
pub(crate) fn parse<'a>(bytes: &'a [u8]) -> Result<Obj<'a>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::NotUtf8)?;
    // the visitor's only data error is the duplicate one; syntax errors (and serde_json's
    // nesting limit) surface as syntax errors
    match serde_json::from_str::<Strict<'a>>(text) {
        Ok(Strict(Val::Object(m))) => Ok(m),
        Ok(_) => Err(JsonError::NotObject),
        Err(e) if e.is_data() => Err(JsonError::DuplicateMember),
        Err(_) => Err(JsonError::NotObject),
    }
}

/// [`parse`], owned, as a `serde_json` map.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    parse(bytes).map(Obj::into_map)
}

/// Any JSON value, refused if an object in it repeats a member name.
struct Strict<'a>(Val<'a>);

impl<'de> Deserialize<'de> for Strict<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

/// A member name, borrowed from the text when it holds no escape.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(v)))
    }
}

/// Members an object may have before its names are checked through a hash set instead of one
/// by one (a token of thousands of tiny members must not cost a quadratic search).
const LINEAR_NAMES: usize = 16;

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Number(v.into())))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Number(v.into())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict<'de>, E> {
        // JSON text has no NaN or infinity, so this is always a number
        Ok(Strict(Number::from_f64(v).map_or(Val::Null, Val::Number)))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Str(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Str(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Str(Cow::Owned(v))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Strict<'de>, E> {
        Ok(Strict(Val::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element::<Strict<'de>>()? {
            out.push(v);
        }
        Ok(Strict(Val::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict<'de>, A::Error> {
        let mut out: Vec<(Cow<'de, str>, Val<'de>)> = Vec::new();
        let mut names: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            let repeated = match &mut names {
                Some(set) => !set.insert(name.clone()),
                None => out.iter().any(|(n, _)| *n == name),
            };
            if repeated {
                return Err(de::Error::custom("duplicate member name"));
            }
            if names.is_none() && out.len() + 1 >= LINEAR_NAMES {
                let mut set: HashSet<Cow<'de, str>> = out.iter().map(|(n, _)| n.clone()).collect();
                set.insert(name.clone());
                names = Some(set);
            }
            let Strict(v) = map.next_value::<Strict<'de>>()?;
            out.push((name, v));
        }
        Ok(Strict(Val::Object(Obj(out))))
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
    fn names_and_strings_without_escapes_are_borrowed() {
        let text = br#"{"iss":"acme","k\u0069d":"a\nb","n":{"x":"y"}}"#;
        let o = parse(text).unwrap();
        let Some(Val::Str(Cow::Borrowed("acme"))) = o.get("iss") else {
            panic!("{o:?}")
        };
        // an escaped name is compared unescaped, and an escaped string is owned
        assert_eq!(o.get("kid"), Some(&Val::Str(Cow::Owned("a\nb".into()))));
        assert!(matches!(&o.0[1].0, Cow::Owned(n) if n == "kid"));
        assert!(o.contains_key("n") && !o.contains_key("x"));
    }

    /// Past [`LINEAR_NAMES`] members the names go through a hash set: a repeat is still found,
    /// wherever the two are, escaped or not, at the top level or nested.
    #[test]
    fn duplicates_are_refused_in_objects_of_any_size() {
        for n in [LINEAR_NAMES - 2, LINEAR_NAMES - 1, LINEAR_NAMES, 40, 1_000] {
            let members: Vec<String> = (0..n).map(|i| format!(r#""m{i}":{i}"#)).collect();
            let members = members.join(",");
            assert_eq!(
                parse(format!("{{{members}}}").as_bytes()).unwrap().0.len(),
                n
            );
            let last = format!("m{}", n - 1);
            for again in ["m0", r"m\u0030", "m7", last.as_str()] {
                let twice = format!(r#"{{{members},"{again}":1}}"#);
                assert_eq!(
                    parse(twice.as_bytes()),
                    Err(JsonError::DuplicateMember),
                    "{n} {again}"
                );
            }
            let nested = format!(r#"{{"x":[{{{members},"m3":0}}]}}"#);
            assert_eq!(parse(nested.as_bytes()), Err(JsonError::DuplicateMember));
        }
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

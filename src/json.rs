//! Strict JSON for bodies the gateway judges.
//!
//! `serde_json` keeps the last of two members with the same name; other parsers keep
//! the first. A body judged on one member and read upstream on the other would let
//! `{"properties":{"owner":"x"},"properties":{"name":"a"}}` write a hidden property,
//! so every JSON body the gateway judges (OGC API item writes, CQL2 JSON filters, the
//! token API) is parsed here, and a duplicate member name at any depth is an error.
//!
//! A leaf module: pure code, no I/O; depth is bounded by `serde_json`'s recursion limit.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as one JSON value, refusing duplicate member names at any depth.
///
/// ```
/// use tilegate::json::parse_strict;
/// assert!(parse_strict(br#"{"a":{"b":1,"c":[{"d":2}]}}"#).is_ok());
/// let e = parse_strict(br#"{"properties":{"owner":"x"},"properties":{"name":"a"}}"#).unwrap_err();
/// assert!(e.to_string().contains("`properties` is given twice"), "{e}");
/// assert!(parse_strict(br#"{"a":[{"b":1,"b":2}]}"#).is_err());
/// assert!(parse_strict(b"{} {}").is_err());
/// ```
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = Strict.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Builds a `serde_json::Value`, failing on a repeated member name.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Strict)?;
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("member `{shown}` is given twice in one object")));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_equal_serde_jsons_when_there_is_no_duplicate() {
        let text = br#"{"type":"Feature","geometry":{"type":"Point","coordinates":[1.5,-2]},"properties":{"n":null,"b":true,"s":"x","big":18446744073709551615}}"#;
        let ours = parse_strict(text).expect("parses");
        let theirs: Value = serde_json::from_slice(text).expect("parses");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn duplicates_are_refused_at_any_depth() {
        for text in [
            &br#"{"a":1,"a":1}"#[..],
            br#"{"x":{"y":{"z":1,"z":2}}}"#,
            br#"[{"ok":1},{"id":1,"id":2}]"#,
            br#"{"properties":{"owner":"x"},"properties":{"name":"a"}}"#,
        ] {
            let e = parse_strict(text).expect_err("duplicate");
            assert!(e.to_string().contains("given twice"), "{e}");
        }
    }

    #[test]
    fn escaped_spellings_of_one_name_are_one_name() {
        assert!(parse_strict(br#"{"owner":1,"\u006fwner":2}"#).is_err());
    }
}

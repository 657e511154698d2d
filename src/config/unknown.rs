//! Unknown keys in `config.toml`: every one found in a single parse, each named by
//! its full key path (`path[2].geoFence`) with the nearest known key suggested.
//!
//! The raw types do not use `deny_unknown_fields`, which stops at the first
//! unknown key; instead [`serde_ignored`] reports every key the raw types did not
//! read. A reported key is always an error, never dropped: a misspelled `geofence`
//! silently ignored would be a missing fence. The known keys of each table come
//! from the raw types themselves (their serde field lists), so they cannot drift.

use serde::de::{self, Visitor};
use serde::Deserialize;

use super::raw;
use super::validate::ConfigError;

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Key(String),
    Index(usize),
}

/// The segments of an ignored key's path, root first (`Option` wrappers dropped).
pub(super) fn segments(path: &serde_ignored::Path<'_>) -> Vec<Segment> {
    use serde_ignored::Path;
    let mut out = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        Path::Seq { index, .. } => out.push(Segment::Index(*index)),
        Path::Map { key, .. } => out.push(Segment::Key(key.clone())),
        _ => {}
    }
    out
}

/// `server.tls.cert`, `path[2].upstream.tls`.
fn key_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The error for one unknown key.
pub(super) fn error(segments: &[Segment]) -> ConfigError {
    let key = key_path(segments);
    let (parent, name) = match segments.split_last() {
        Some((Segment::Key(name), parent)) => (parent, name.as_str()),
        _ => (segments, ""),
    };
    let table = match key_path(parent) {
        t if t.is_empty() => "the top level".to_owned(),
        t => format!("`{t}`"),
    };
    let message = match known_keys(parent) {
        Some(known) => match nearest(name, known) {
            Some(near) => format!("`{name}` is not a key of {table}; did you mean `{near}`?"),
            None => {
                let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                format!("`{name}` is not a key of {table}; valid: {}", list.join(", "))
            }
        },
        None => format!("`{name}` is not a key of {table}"),
    };
    ConfigError { key, message }
}

/// The known key closest to `name`, when it is a likely typo: a case difference or
/// a small edit (at most 2, or 3 in names of 12 characters or more, and always
/// less than half the name).
fn nearest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let len = name.chars().count();
    let most = (len / 4).clamp(2, 3);
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, _)| *d <= most && *d * 2 < len)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The keys the raw type at `parent` reads (array indices ignored: only
/// `[[path]]` is an array of tables).
pub(super) fn known_keys(parent: &[Segment]) -> Option<&'static [&'static str]> {
    let names: Vec<&str> = parent
        .iter()
        .filter_map(|s| match s {
            Segment::Key(k) => Some(k.as_str()),
            Segment::Index(_) => None,
        })
        .collect();
    Some(match names.as_slice() {
        [] => fields_of::<raw::RawConfig>(),
        ["server"] => fields_of::<raw::RawServer>(),
        ["server", "tls"] => fields_of::<raw::RawServerTls>(),
        ["store"] => fields_of::<raw::RawStore>(),
        ["tokens"] => fields_of::<raw::RawTokens>(),
        ["upstream"] => fields_of::<raw::RawUpstreamLimits>(),
        ["log"] => fields_of::<raw::RawLog>(),
        ["api"] => fields_of::<raw::RawApi>(),
        ["limits"] => fields_of::<raw::RawLimits>(),
        ["limits", "per_token" | "per_ip"] | ["path", "limits", "per_token" | "per_ip"] => fields_of::<raw::RawRate>(),
        ["limits", "failed_auth"] => fields_of::<raw::RawFailedAuth>(),
        ["ops"] => fields_of::<raw::RawOps>(),
        ["path"] => fields_of::<raw::RawPath>(),
        ["path", "upstream"] => fields_of::<raw::RawUpstreams>(),
        ["path", "upstream", "tls"] => fields_of::<raw::RawUpstreamTls>(),
        ["path", "limits"] => fields_of::<raw::RawPathLimits>(),
        _ => return None,
    })
}

/// The field names a derived `Deserialize` struct passes to `deserialize_struct`.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// A deserializer that only records the field list it is asked for.
struct Probe<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_come_from_the_raw_types() {
        let path = [Segment::Key("path".into()), Segment::Index(3), Segment::Key("upstream".into())];
        let keys = known_keys(&path).expect("a table");
        assert!(keys.contains(&"xyz") && keys.contains(&"tls"), "{keys:?}");
        assert!(known_keys(&[]).expect("top").contains(&"path"));
        // Every table has its list (a raw type that stopped being a plain struct
        // would give an empty one and lose its suggestions).
        let tables = [
            "server",
            "server.tls",
            "store",
            "tokens",
            "upstream",
            "log",
            "api",
            "limits",
            "limits.per_token",
            "limits.per_ip",
            "limits.failed_auth",
            "ops",
            "path",
            "path.upstream",
            "path.upstream.tls",
            "path.limits",
            "path.limits.per_token",
            "path.limits.per_ip",
        ];
        for t in tables {
            let segs: Vec<Segment> = t.split('.').map(|k| Segment::Key(k.into())).collect();
            assert!(known_keys(&segs).is_some_and(|k| !k.is_empty()), "{t}");
        }
    }

    #[test]
    fn only_near_misses_get_a_suggestion() {
        let known = ["geofence", "layers", "parent"];
        assert_eq!(nearest("geoFence", &known), Some("geofence"));
        assert_eq!(nearest("layerz", &known), Some("layers"));
        assert_eq!(nearest("colour", &known), None);
        assert_eq!(nearest("x", &["y"]), None);
        assert_eq!(nearest("trusted_proxy", &["trusted_proxies"]), Some("trusted_proxies"));
    }
}

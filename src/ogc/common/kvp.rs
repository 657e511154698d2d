//! OGC key-value-pair (KVP) parameters: parsing a query string or form body into pairs,
//! and re-encoding exactly those pairs for the upstream.
//!
//! Rules (DESIGN.md §5), shared by every KVP protocol:
//! - pairs split on `&`; empty pieces (`&&`) are ignored; a name without `=` has an empty value;
//! - names and values are percent-decoded with `application/x-www-form-urlencoded` rules
//!   (`+` is a space), names *before* case folding; malformed `%` escapes, invalid UTF-8
//!   and NUL are refused;
//! - names are case-insensitive (ASCII upper-cased into [`Pair::key`]) and must be ASCII
//!   (so that no Unicode case folding upstream can turn an unknown name into a known one);
//!   values keep their case;
//! - each protocol's aliases ([`Dialect`]) map to one canonical key; a name given twice
//!   after folding, or an alias together with a twin of another value, is refused
//!   (twins with the same value are one parameter, and both are forwarded);
//! - keys listed as repeatable (WCS `SUBSET`) may repeat and are read with [`Kvp::all`].
//!
//! [`Kvp::encode`] writes the pairs back in their original order and spelling, so the
//! upstream reads exactly the pairs that were judged.
//!
//! Pure code: no I/O.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::percent::{self, Malformed};
use super::{bad, shown};
use crate::ogc::{OgcError, Protocol};

/// Characters left unencoded when re-encoding: RFC 3986 unreserved plus `,` `:` `/` `(` `)`,
/// which OGC values use as separators and which every server reads literally. `+` is always
/// encoded (`%2B`) and a space is `%20`, so no server can read them differently.
const KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b',')
    .remove(b':')
    .remove(b'/')
    .remove(b'(')
    .remove(b')');

/// How one protocol spells its parameters.
#[derive(Clone, Copy, Debug)]
pub struct Dialect {
    /// `(alias, canonical)` pairs, both upper case.
    pub aliases: &'static [(&'static str, &'static str)],
    /// Canonical keys that may legitimately repeat.
    pub repeatable: &'static [&'static str],
    /// Refuse non-ASCII names (OGC KVP); OGC API query names may be any UTF-8.
    pub ascii_names: bool,
}

/// The most parameters one request may carry (a real one carries a few dozen).
const MAX_PARAMETERS: usize = 512;

impl Dialect {
    /// WMS: `SRS`/`CRS` (1.1.1/1.3.0) and `X`/`Y` vs `I`/`J`.
    pub const WMS: Dialect =
        Dialect { aliases: &[("SRS", "CRS"), ("X", "I"), ("Y", "J")], repeatable: &[], ascii_names: true };
    /// WMTS: no aliases (it uses `LAYER`, never `LAYERS`).
    pub const WMTS: Dialect = Dialect { aliases: &[], repeatable: &[], ascii_names: true };
    /// WFS 1.0/1.1 vs 2.0 names.
    pub const WFS: Dialect = Dialect {
        aliases: &[
            ("TYPENAME", "TYPENAMES"),
            ("MAXFEATURES", "COUNT"),
            ("FEATUREID", "RESOURCEID"),
            ("NAMESPACE", "NAMESPACES"),
        ],
        repeatable: &[],
        ascii_names: true,
    };
    /// WCS 2.0: `SUBSET` repeats, once per axis.
    pub const WCS: Dialect = Dialect { aliases: &[], repeatable: &["SUBSET"], ascii_names: true };
    /// OGC API query parameters: case-sensitive names (still refused twice after folding),
    /// any UTF-8 (queryable property names).
    pub const API: Dialect = Dialect { aliases: &[], repeatable: &[], ascii_names: false };

    /// The dialect of a protocol (tiles use [`Dialect::WMTS`]'s plain rules).
    pub fn for_protocol(protocol: Protocol) -> Dialect {
        match protocol {
            Protocol::Wms => Dialect::WMS,
            Protocol::Wfs => Dialect::WFS,
            Protocol::Wcs => Dialect::WCS,
            Protocol::Api => Dialect::API,
            Protocol::Wmts | Protocol::Mvt | Protocol::Xyz | Protocol::Martin | Protocol::Titiler => Dialect::WMTS,
        }
    }

    fn canonical<'k>(&self, upper: &'k str) -> &'k str {
        self.aliases.iter().find(|(alias, _)| *alias == upper).map_or(upper, |(_, canonical)| canonical)
    }
}

/// One parameter as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pair {
    name: String,
    key: String,
    value: String,
}

impl Pair {
    /// The decoded name as the client spelled it (forwarded as is).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The canonical upper-case key after alias mapping (`TYPENAME` → `TYPENAMES`).
    pub fn key(&self) -> &str {
        &self.key
    }
    /// The decoded value, case preserved.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// The parsed parameters of one request, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kvp {
    pairs: Vec<Pair>,
}

impl Kvp {
    /// Parses one query string or form body.
    ///
    /// ```
    /// use tilegate::ogc::{Dialect, Kvp};
    /// let kvp = Kvp::parse("service=WMS&&Layers=a%2Cb&styles&SRS=EPSG:4326", Dialect::WMS).unwrap();
    /// assert_eq!(kvp.get("LAYERS"), Some("a,b"));
    /// assert_eq!(kvp.get("STYLES"), Some(""));
    /// assert_eq!(kvp.get("CRS"), Some("EPSG:4326")); // SRS is CRS's alias
    /// assert_eq!(kvp.pairs().len(), 4);
    ///
    /// // `+` is a space, percent-encoded names are decoded before folding
    /// let kvp = Kvp::parse("LAYER%53=a+b", Dialect::WMS).unwrap();
    /// assert_eq!(kvp.get("LAYERS"), Some("a b"));
    ///
    /// // duplicates after case folding, and alias twins that disagree, are refused
    /// assert!(Kvp::parse("LAYERS=a&layers=b", Dialect::WMS).is_err());
    /// assert!(Kvp::parse("LAYERS=a&layers=a", Dialect::WMS).is_err());
    /// assert!(Kvp::parse("TYPENAME=a&TYPENAMES=b", Dialect::WFS).is_err());
    /// // alias twins that agree are one parameter (QGIS sends both in WFS 2.0)
    /// assert_eq!(Kvp::parse("TYPENAMES=ms:lakes&TYPENAME=ms:lakes", Dialect::WFS).unwrap().get("TYPENAMES"), Some("ms:lakes"));
    /// // ...except keys the protocol repeats
    /// assert_eq!(Kvp::parse("SUBSET=Lat(1,2)&subset=Long(3,4)", Dialect::WCS).unwrap().all("SUBSET").count(), 2);
    ///
    /// // malformed escapes and non-ASCII names are refused
    /// assert!(Kvp::parse("BBOX=1%2", Dialect::WMS).is_err());
    /// assert!(Kvp::parse("LAYERſ=a", Dialect::WMS).is_err());
    /// ```
    pub fn parse(input: &str, dialect: Dialect) -> Result<Kvp, OgcError> {
        Kvp::parse_parts(&[input], dialect)
    }

    /// Parses several sources (a URL query and a form body) as one parameter set:
    /// a name in two sources is a duplicate.
    pub fn parse_parts(inputs: &[&str], dialect: Dialect) -> Result<Kvp, OgcError> {
        let mut kvp = Kvp::default();
        for input in inputs {
            for piece in input.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
                let name = decode(name)?;
                let value = decode(value)?;
                kvp.push(name, value, dialect)?;
            }
        }
        Ok(kvp)
    }

    fn push(&mut self, name: String, value: String, dialect: Dialect) -> Result<(), OgcError> {
        // The duplicate check below is pairwise, and a URL holds 16,000 parameters.
        if self.pairs.len() == MAX_PARAMETERS {
            return Err(bad(format!("more than {MAX_PARAMETERS} parameters in one request")));
        }
        if name.is_empty() {
            return Err(bad(format!("a parameter has an empty name (value `{}`)", shown(&value))));
        }
        if name.chars().any(char::is_control) {
            return Err(bad(format!("parameter name `{}` contains a control character", shown(&name))));
        }
        if dialect.ascii_names && !name.is_ascii() {
            return Err(bad(format!("parameter name `{}` is not ASCII", shown(&name))));
        }
        let upper = name.to_ascii_uppercase();
        let key = dialect.canonical(&upper).to_owned();
        if !dialect.repeatable.contains(&key.as_str()) {
            if let Some(prev) = self.pairs.iter().find(|p| p.key == key) {
                // QGIS sends WFS 2.0 `TYPENAMES=a&TYPENAME=a`: alias twins that say the
                // same thing are one parameter (both are forwarded; they agree).
                let twin = !prev.name.eq_ignore_ascii_case(&name) && prev.value == value;
                if twin && !self.pairs.iter().any(|p| p.key == key && p.name.eq_ignore_ascii_case(&name)) {
                    self.pairs.push(Pair { name, key, value });
                    return Ok(());
                }
                return Err(if prev.name.eq_ignore_ascii_case(&name) {
                    bad(format!("parameter `{upper}` is given more than once"))
                } else {
                    bad(format!(
                        "`{}` and `{}` are the same parameter; send only one",
                        prev.name.to_ascii_uppercase(),
                        upper
                    ))
                });
            }
        }
        self.pairs.push(Pair { name, key, value });
        Ok(())
    }

    /// All pairs, in the order received.
    pub fn pairs(&self) -> &[Pair] {
        &self.pairs
    }

    /// The value of a canonical key, if present (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|p| p.key == key).map(|p| p.value.as_str())
    }

    /// The value of a canonical key when present and not empty.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// The non-empty value of a required key, or a 400 naming it and the operation.
    pub fn require(&self, key: &str, op_name: &str) -> Result<&str, OgcError> {
        self.get_nonempty(key).ok_or_else(|| bad(format!("{key} is required for {op_name}")))
    }

    /// Every value of a repeatable key, in order.
    pub fn all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.pairs.iter().filter(move |p| p.key == key).map(|p| p.value.as_str())
    }

    /// True when the key is present.
    pub fn contains(&self, key: &str) -> bool {
        self.pairs.iter().any(|p| p.key == key)
    }

    /// Puts a pair first (the gateway adds `SERVICE` when the client left it out).
    pub fn insert_first(&mut self, name: &str, value: &str) {
        let pair = Pair { name: name.to_owned(), key: name.to_ascii_uppercase(), value: value.to_owned() };
        self.pairs.insert(0, pair);
    }

    /// Replaces the value of every pair with this (upper-case) key.
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        for pair in self.pairs.iter_mut().filter(|p| p.key == key) {
            value.clone_into(&mut pair.value);
        }
    }

    /// Removes every pair with this (upper-case) key.
    pub fn remove(&mut self, key: &str) {
        self.pairs.retain(|p| p.key != key);
    }

    /// The pairs re-encoded as a query string, in order, names as the client spelled them.
    ///
    /// ```
    /// use tilegate::ogc::{Dialect, Kvp};
    /// let kvp = Kvp::parse("srs=EPSG%3A4326&Layers=a+b,c&x=1%2B1&empty", Dialect::WMS).unwrap();
    /// assert_eq!(kvp.encode(), "srs=EPSG:4326&Layers=a%20b,c&x=1%2B1&empty=");
    /// ```
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, pair) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.extend(utf8_percent_encode(&pair.name, KEEP));
            out.push('=');
            out.extend(utf8_percent_encode(&pair.value, KEEP));
        }
        out
    }
}

/// Decodes one name or value strictly ([`percent::decode`], `+` as a space).
fn decode(raw: &str) -> Result<String, OgcError> {
    percent::decode(raw, true).map(std::borrow::Cow::into_owned).map_err(|e| match e {
        Malformed::Escape => bad(format!("malformed percent-encoding in `{}`", shown(raw))),
        Malformed::Nul => bad(format!("`{}` contains a NUL character", shown(raw))),
        Malformed::Utf8 => bad(format!("`{}` is not valid UTF-8 once decoded", shown(raw))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Kvp, OgcError> {
        Kvp::parse(q, Dialect::WMS)
    }

    #[test]
    fn case_variants_fold_to_one_key_and_keep_their_spelling() {
        for q in ["LAYERS=a", "layers=a", "Layers=a", "lAyErS=a", "LAYERS=a&", "&&LAYERS=a&&"] {
            let kvp = parse(q).unwrap();
            assert_eq!(kvp.get("LAYERS"), Some("a"), "{q}");
            assert_eq!(kvp.pairs().len(), 1, "{q}");
        }
        assert_eq!(parse("lAyErS=a").unwrap().encode(), "lAyErS=a");
    }

    #[test]
    fn values_keep_their_case() {
        assert_eq!(parse("FORMAT=Image/PNG").unwrap().get("FORMAT"), Some("Image/PNG"));
    }

    #[test]
    fn duplicates_are_refused() {
        for q in [
            "LAYERS=a&layers=b",
            "LAYERS=a&LAYERS=a",
            "LAYERS=a&LAYER%53=b",
            "SRS=EPSG:4326&CRS=EPSG:3857",
            "X=1&I=2",
            "y=1&J=2",
            "X=1&I=1&x=1",
        ] {
            assert!(matches!(parse(q), Err(OgcError::BadRequest(_))), "{q}");
        }
        for q in ["SRS=EPSG:4326&CRS=EPSG:4326", "X=1&I=1"] {
            assert_eq!(parse(q).expect("twins that agree").pairs().len(), 2, "{q}");
        }
        let e = parse("SRS=a&crs=b").unwrap_err().to_string();
        assert!(e.contains("`SRS` and `CRS` are the same parameter"), "{e}");
    }

    #[test]
    fn parameters_are_bounded() {
        let many = |n: usize| (0..n).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
        assert_eq!(parse(&many(512)).expect("512 parameters").pairs().len(), 512);
        let e = parse(&many(513)).unwrap_err().to_string();
        assert!(e.contains("more than 512 parameters"), "{e}");
    }

    #[test]
    fn wfs_aliases() {
        let kvp = Kvp::parse("typeName=a&maxFeatures=5&featureId=a.1&namespace=x", Dialect::WFS).unwrap();
        assert_eq!(kvp.get("TYPENAMES"), Some("a"));
        assert_eq!(kvp.get("COUNT"), Some("5"));
        assert_eq!(kvp.get("RESOURCEID"), Some("a.1"));
        assert_eq!(kvp.get("NAMESPACES"), Some("x"));
        for q in ["TYPENAME=a&TYPENAMES=b", "MAXFEATURES=1&COUNT=2", "FEATUREID=a&RESOURCEID=b"] {
            assert!(Kvp::parse(q, Dialect::WFS).is_err(), "{q}");
        }
        // Aliases are per protocol: WMTS has none.
        let kvp = Kvp::parse("SRS=x&LAYERS=a", Dialect::WMTS).unwrap();
        assert_eq!(kvp.get("SRS"), Some("x"));
        assert_eq!(kvp.get("LAYER"), None);
    }

    #[test]
    fn empty_values_and_names() {
        let kvp = parse("STYLES=&TRANSPARENT").unwrap();
        assert_eq!(kvp.get("STYLES"), Some(""));
        assert_eq!(kvp.get("TRANSPARENT"), Some(""));
        assert_eq!(kvp.get_nonempty("STYLES"), None);
        assert!(parse("=value").is_err());
        assert!(parse("%3D=value").is_ok(), "a name that decodes to `=` is just an unknown name");
    }

    #[test]
    fn decoding() {
        let kvp = parse("BBOX=1%2C2%2C3%2C4&CQL=a+%3D+%27x%27&N%41ME=%E2%82%AC").unwrap();
        assert_eq!(kvp.get("BBOX"), Some("1,2,3,4"));
        assert_eq!(kvp.get("CQL"), Some("a = 'x'"));
        assert_eq!(kvp.get("NAME"), Some("€"));
        for q in ["A=%", "A=%4", "A=%zz", "A=%00", "A=%FF", "A%00=1", "A%0A=1"] {
            assert!(parse(q).is_err(), "{q}");
        }
    }

    #[test]
    fn non_ascii_names_are_refused_except_for_ogc_api() {
        assert!(parse("fılter=a").is_err());
        assert!(parse("f%C4%B1lter=a").is_err());
        let kvp = Kvp::parse("stra%C3%9Fe=a", Dialect::API).unwrap();
        assert_eq!(kvp.pairs()[0].name(), "straße");
        assert!(Kvp::parse("bbox=1&BBOX=2", Dialect::API).is_err());
    }

    #[test]
    fn wcs_subset_repeats_but_nothing_else_does() {
        let kvp = Kvp::parse("SUBSET=Lat(1,2)&SUBSET=Long(3,4)", Dialect::WCS).unwrap();
        assert_eq!(kvp.all("SUBSET").collect::<Vec<_>>(), vec!["Lat(1,2)", "Long(3,4)"]);
        assert!(Kvp::parse("COVERAGEID=a&COVERAGEID=b", Dialect::WCS).is_err());
        assert!(Kvp::parse("SUBSET=a&SUBSET=b", Dialect::WMS).is_err());
    }

    #[test]
    fn encode_round_trips_what_was_judged() {
        let q = "SERVICE=WMS&request=GetMap&LAYERS=a,b&STYLES=&CRS=EPSG:4326&BBOX=-1.5,2,3e2,4&FORMAT=image/png&CQL_FILTER=name%3D%27a%26b%27";
        let kvp = parse(q).unwrap();
        let again = parse(&kvp.encode()).unwrap();
        assert_eq!(kvp, again);
        assert!(kvp.encode().contains("CQL_FILTER=name%3D%27a%26b%27"));
    }

    #[test]
    fn insert_first_puts_the_pair_in_front() {
        let mut kvp = parse("REQUEST=GetMap").unwrap();
        kvp.insert_first("SERVICE", "WMS");
        assert_eq!(kvp.encode(), "SERVICE=WMS&REQUEST=GetMap");
        assert_eq!(kvp.get("SERVICE"), Some("WMS"));
    }
}

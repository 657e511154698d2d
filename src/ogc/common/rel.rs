//! Link relations (`rel`), read one way wherever the gateway judges a link: a link under
//! a fence loses its page relations, a link on a third host stays only when it leads away
//! (decision 77), and a `rel` this module cannot read keeps no link (decision 82).
//!
//! A `rel` is written as a string of space-separated relations (RFC 8288, OGC API), an
//! array of such strings (some servers, STAC extensions), in any case, and a registered
//! relation also as a URI: the IANA registry's (`http://www.iana.org/assignments/relation/next`,
//! Atom's form), or the OGC register's copy of it
//! (`http://www.opengis.net/def/rel/iana/1.0/next`). An extension relation is a URI of its
//! own (`http://www.opengis.net/def/rel/ogc/1.0/items`, `urn:…`, a Safe CURIE `[items]`).
//!
//! Pure code: no I/O.

/// Page relations: under a fence they tell whether more features lie beyond the page,
/// outside the fence included.
const PAGING: [&str; 5] = ["next", "prev", "previous", "first", "last"];

/// Relations that lead away from the service by nature (decision 77).
const AWAY: [&str; 16] = [
    "license",
    "about",
    "canonical",
    "describedby",
    "cite-as",
    "related",
    "via",
    "author",
    "help",
    "copyright",
    "terms-of-service",
    "privacy-policy",
    "icon",
    "enclosure",
    "preview",
    "external",
];

/// A link's `rel` as the document wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rel<'a> {
    /// No `rel` member.
    Absent,
    /// A string: one or more relations separated by whitespace.
    Text(&'a str),
    /// An array of strings, each one or more relations.
    List(Vec<&'a str>),
    /// Anything else: a number, `null`, an object, an array holding one, or two `rel`
    /// members in one link (a reader keeping the first and one keeping the last see two
    /// links). What it means is anyone's guess, so the link is not kept.
    Unreadable,
}

impl<'a> Rel<'a> {
    /// The `rel` member of a link parsed by `serde_json` (which keeps no duplicate
    /// members: the streaming filter parses links strictly, see `json::parse_strict`).
    ///
    /// ```
    /// use serde_json::json;
    /// use tilegate::ogc::common::rel::Rel;
    /// let link = json!({"rel": ["next"], "href": "x"});
    /// assert_eq!(Rel::of_json(link.get("rel")), Rel::List(vec!["next"]));
    /// assert_eq!(Rel::of_json(Some(&json!(7))), Rel::Unreadable);
    /// assert_eq!(Rel::of_json(Some(&json!(["next", 7]))), Rel::Unreadable);
    /// ```
    pub fn of_json(rel: Option<&'a serde_json::Value>) -> Rel<'a> {
        match rel {
            None => Rel::Absent,
            Some(serde_json::Value::String(s)) => Rel::Text(s),
            Some(serde_json::Value::Array(items)) => {
                let texts: Option<Vec<&str>> = items.iter().map(serde_json::Value::as_str).collect();
                texts.map_or(Rel::Unreadable, Rel::List)
            }
            Some(_) => Rel::Unreadable,
        }
    }

    /// The relations named, each in its short name when it is a registered relation in
    /// any spelling (lowercase; IANA and OGC-register URIs mapped to the short name),
    /// else the extension URI lowercased; `None` when the `rel` cannot be read.
    ///
    /// ```
    /// use tilegate::ogc::common::rel::Rel;
    /// let names = |r: Rel<'_>| r.relations().unwrap();
    /// assert_eq!(names(Rel::Text(" NEXT  alternate ")), ["next", "alternate"]);
    /// assert_eq!(names(Rel::Text("http://www.iana.org/assignments/relation/next")), ["next"]);
    /// assert_eq!(names(Rel::Text("https://www.opengis.net/def/rel/iana/1.0/License")), ["license"]);
    /// assert_eq!(
    ///     names(Rel::Text("http://www.opengis.net/def/rel/ogc/1.0/items")),
    ///     ["http://www.opengis.net/def/rel/ogc/1.0/items"]
    /// );
    /// assert_eq!(names(Rel::List(vec!["self", "prev first"])), ["self", "prev", "first"]);
    /// assert!(names(Rel::Absent).is_empty());
    /// assert_eq!(Rel::Unreadable.relations(), None);
    /// ```
    pub fn relations(&self) -> Option<Vec<String>> {
        let texts: &[&str] = match self {
            Rel::Absent => &[],
            Rel::Text(s) => std::slice::from_ref(s),
            Rel::List(items) => items,
            Rel::Unreadable => return None,
        };
        Some(texts.iter().flat_map(|t| t.split(char::is_whitespace)).filter(|w| !w.is_empty()).map(relation).collect())
    }

    /// True for a link to another page of the same answer: any relation that is a page
    /// relation in any spelling, an extension URI whose last segment names one
    /// (`urn:x:next`, `[next]`, `http://www.opengis.net/def/rel/ogc/1.0/next`), and a
    /// `rel` that cannot be read. Erring this way drops a link, never keeps one.
    ///
    /// ```
    /// use tilegate::ogc::common::rel::Rel;
    /// for paging in ["next", "NEXT", "next nofollow", "Prev", "previous", "first", "last",
    ///     "http://www.iana.org/assignments/relation/next", "https://www.opengis.net/def/rel/iana/1.0/prev",
    ///     "http://www.opengis.net/def/rel/ogc/1.0/next", "urn:ietf:params:rel:next", "[next]", "alternate\u{a0}next"] {
    ///     assert!(Rel::Text(paging).is_paging(), "{paging}");
    /// }
    /// assert!(Rel::List(vec!["self", "next"]).is_paging() && Rel::Unreadable.is_paging());
    /// for other in ["self", "alternate", "nextgen", "http://www.opengis.net/def/rel/ogc/1.0/items", "", "collection"] {
    ///     assert!(!Rel::Text(other).is_paging(), "{other}");
    /// }
    /// assert!(!Rel::Absent.is_paging() && !Rel::List(vec![]).is_paging());
    /// ```
    pub fn is_paging(&self) -> bool {
        match self.relations() {
            None => true,
            Some(names) => names.iter().any(|name| PAGING.contains(&last_segment(name))),
        }
    }

    /// True when every relation named leads away from the service by nature (decision
    /// 77: `license`, `describedby`, `cite-as`, `related`…, in any registered spelling),
    /// and there is at least one. An extension URI never leads away, whatever its last
    /// segment; nor does a `rel` that cannot be read.
    ///
    /// ```
    /// use tilegate::ogc::common::rel::Rel;
    /// assert!(Rel::Text("license").leads_away() && Rel::Text("LICENSE describedby").leads_away());
    /// assert!(Rel::Text("http://www.iana.org/assignments/relation/license").leads_away());
    /// assert!(Rel::List(vec!["license", "related"]).leads_away());
    /// assert!(!Rel::Text("license next").leads_away() && !Rel::List(vec!["license", "next"]).leads_away());
    /// assert!(!Rel::Text("http://evil.example/rel/license").leads_away());
    /// assert!(!Rel::Text("license\u{a0}self").leads_away() && !Rel::Text("license,self").leads_away());
    /// assert!(!Rel::Absent.leads_away() && !Rel::Text(" ").leads_away() && !Rel::Unreadable.leads_away());
    /// ```
    pub fn leads_away(&self) -> bool {
        match self.relations() {
            Some(names) => !names.is_empty() && names.iter().all(|name| AWAY.contains(&name.as_str())),
            None => false,
        }
    }
}

/// One relation in its canonical form: lowercase, a registered relation's URI forms
/// mapped to its short name.
fn relation(word: &str) -> String {
    let lower = word.to_lowercase();
    let short = ["http://www.iana.org/assignments/relation/", "https://www.iana.org/assignments/relation/"]
        .iter()
        .find_map(|prefix| lower.strip_prefix(prefix))
        .or_else(|| ogc_iana(&lower));
    match short {
        Some(name) if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) => {
            name.to_owned()
        }
        _ => lower,
    }
}

/// The name after the OGC register's copy of the IANA registry,
/// `http(s)://www.opengis.net/def/rel/iana/{version}/{name}`.
fn ogc_iana(lower: &str) -> Option<&str> {
    let rest = lower
        .strip_prefix("http://www.opengis.net/def/rel/iana/")
        .or_else(|| lower.strip_prefix("https://www.opengis.net/def/rel/iana/"))?;
    rest.split_once('/').map(|(_, name)| name)
}

/// The last segment of a relation: the name itself for a short name, the part after
/// the last character that is not a letter, digit, `-`, `.` or `_` for a URI or CURIE.
fn last_segment(name: &str) -> &str {
    name.rsplit(|c: char| !(c.is_alphanumeric() || "-._".contains(c))).find(|s| !s.is_empty()).unwrap_or("")
}

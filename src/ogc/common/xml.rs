//! The one hardened XML reader, and a small owned XML tree built with it.
//!
//! [`Hardened`] is how tilegate reads any XML, from clients (WFS POST bodies, FES
//! `FILTER` values) or upstreams (capabilities, DescribeFeatureType schemas): quick-xml's
//! `NsReader` with every hardening rule on in one place (see its docs). Callers map its
//! [`XmlError`] into their own error types; none configures quick-xml itself.
//!
//! [`Doc`]: capabilities filtering needs look-ahead (a WMS `<Layer>` is kept or dropped by
//! a `<Name>` child that comes after its start tag), so tokens are read into a tree,
//! edited, and written back with `quick_xml::Writer`. Everything not edited is written as
//! it was read: start tags keep their raw attribute text, text and comments their raw
//! escaping, and the declaration, processing instructions, CDATA and comments stay in
//! place. UTF-8 and ISO-8859-1 documents are written back in their own encoding.
//!
//! Pure code: no I/O, no logging.

use std::borrow::Cow;

use quick_xml::escape::{escape, partial_escape, unescape};
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesPI, BytesRef, BytesStart, BytesText, Event};
use quick_xml::name::{LocalName, QName, ResolveResult};
use quick_xml::{NsReader, Writer};

use crate::ogc::capabilities::CapabilitiesError;

/// The deepest element nesting accepted; real capabilities stay far below.
pub(crate) const MAX_DEPTH: usize = 256;

/// The most attributes one element may carry: the repeated-attribute check is pairwise
/// (attacker round 11c: 40,000 attributes on one element took the gateway 6.4 s, and a
/// 2.4 MB body 154 s, before any tier was judged).
pub(crate) const MAX_ATTRIBUTES: usize = 256;

/// The most namespace declarations in scope at once: every element name and attribute
/// is resolved against them one by one (40,000 on the root took 4.4 s).
pub(crate) const MAX_NAMESPACES: usize = 256;

// ---------------------------------------------------------------------------------
// The hardened reader: every XML document tilegate reads goes through it
// ---------------------------------------------------------------------------------

/// How the input bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Utf8 {
        bom: bool,
    },
    /// ISO-8859-1 and its kin: each byte is one character.
    Latin1,
}

/// Which DOCTYPEs a caller accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DocTypePolicy {
    Refuse,
    /// Accept one, before the root, without entity declarations or parameter entities
    /// (WMS 1.1.1 ships a DOCTYPE with an `<!ELEMENT …>` internal subset). Entities are
    /// never expanded.
    AllowWithoutEntities,
}

/// Why the hardened reader refused a document, and where: `offset` counts bytes of the
/// input as given (a byte-order mark included).
#[derive(Debug)]
pub(crate) struct XmlError {
    pub offset: u64,
    pub kind: XmlErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum XmlErrorKind {
    /// What quick-xml refuses: mismatched end tags, malformed or repeated attributes,
    /// `--` in comments, a binding of the reserved `xml`/`xmlns` prefixes…
    #[error("not well-formed: {0}")]
    Syntax(quick_xml::Error),
    #[error("not valid UTF-8")]
    InvalidUtf8,
    #[error("encoding `{0}` is not supported; UTF-8 or ISO-8859-1 expected")]
    Encoding(String),
    #[error("DOCTYPE declarations are refused")]
    DocType,
    #[error("the DOCTYPE declares entities")]
    EntityDeclaration,
    #[error(
        "the entity `&{0};` is not declared; only `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` \
         and character references are read"
    )]
    UndeclaredEntity(String),
    #[error("the character reference `&{0};` is not a valid XML character")]
    InvalidCharRef(String),
    #[error("elements nest deeper than {0}")]
    TooDeep(usize),
    #[error("an element carries more than {0} attributes")]
    TooManyAttributes(usize),
    #[error("more than {0} namespace declarations are in scope")]
    TooManyNamespaces(usize),
    #[error("more than one root element")]
    SecondRoot,
    #[error("{0} outside the root element")]
    OutsideRoot(&'static str),
    #[error("`{0}` is not a valid XML name")]
    InvalidName(String),
    #[error("`<{0}>` is never closed")]
    Unclosed(String),
    #[error("no root element")]
    NoRoot,
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            XmlErrorKind::Syntax(e) => write!(f, "not well-formed at byte {}: {e}", self.offset),
            kind => write!(f, "{kind} at byte {}", self.offset),
        }
    }
}

impl std::error::Error for XmlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            XmlErrorKind::Syntax(e) => Some(e),
            _ => None,
        }
    }
}

fn refused(offset: u64, kind: XmlErrorKind) -> XmlError {
    XmlError { offset, kind }
}

/// One checked piece of a document; quick-xml's events, with entity references
/// resolved.
#[derive(Debug)]
pub(crate) enum Token<'a> {
    Start(BytesStart<'a>),
    Empty(BytesStart<'a>),
    End(BytesEnd<'a>),
    Text(BytesText<'a>),
    CData(BytesCData<'a>),
    /// A predefined entity or character reference (`reference` is the name between `&`
    /// and `;`) and the character it stands for.
    Ref {
        reference: BytesRef<'a>,
        value: char,
    },
    Comment(BytesText<'a>),
    PI(BytesPI<'a>),
    Decl(BytesDecl<'a>),
    DocType(BytesText<'a>),
    Eof,
}

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];

/// Reads the declared encoding from the XML declaration, if any.
pub(crate) fn declared_encoding(bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"<?xml") {
        return None;
    }
    let end = bytes.windows(2).position(|w| w == b"?>")?;
    let decl = String::from_utf8_lossy(&bytes[..end]);
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    value.find(quote).map(|end| value[..end].to_owned())
}

/// How `input` is encoded: UTF-8 (checked whole), or a declared ISO-8859-1 family label
/// without a byte-order mark. UTF-16 and other labels are refused.
pub(crate) fn sniff(input: &[u8]) -> Result<Encoding, XmlError> {
    if input.starts_with(&[0xFE, 0xFF]) || input.starts_with(&[0xFF, 0xFE]) {
        return Err(refused(0, XmlErrorKind::Encoding("UTF-16".to_owned())));
    }
    let (bytes, bom) = match input.strip_prefix(UTF8_BOM) {
        Some(rest) => (rest, true),
        None => (input, false),
    };
    let declared = declared_encoding(bytes);
    let label = declared.as_deref().map(str::to_ascii_lowercase);
    match label.as_deref() {
        None | Some("utf-8" | "utf8") => match std::str::from_utf8(bytes) {
            Ok(_) => Ok(Encoding::Utf8 { bom }),
            Err(e) => {
                let offset = e.valid_up_to() + if bom { UTF8_BOM.len() } else { 0 };
                Err(refused(u64::try_from(offset).unwrap_or(u64::MAX), XmlErrorKind::InvalidUtf8))
            }
        },
        Some(
            "iso-8859-1" | "latin1" | "latin-1" | "iso_8859-1" | "iso8859-1" | "windows-1252" | "cp1252" | "us-ascii"
            | "ascii" | "iso-8859-15",
        ) if !bom => Ok(Encoding::Latin1),
        Some(_) => Err(refused(0, XmlErrorKind::Encoding(declared.unwrap_or_default()))),
    }
}

/// Bytes in `encoding` as text; `None` for invalid UTF-8.
fn decode(encoding: Encoding, bytes: &[u8]) -> Option<Cow<'_, str>> {
    match encoding {
        Encoding::Utf8 { .. } => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        Encoding::Latin1 => Some(Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect())),
    }
}

/// True for a well-formed XML name (ASCII rules; any non-ASCII byte is accepted).
fn valid_name(name: &[u8]) -> bool {
    let mut bytes = name.iter();
    bytes.next().is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b':' || !c.is_ascii())
        && bytes.all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-' | b'.') || !c.is_ascii())
}

/// XML whitespace (space, tab, CR, LF), the only text allowed outside the root.
fn is_xml_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The character a reference stands for: one of the five predefined entities, or a
/// character reference (`#233`, `#xE9`) to a character XML 1.0 allows.
fn reference_value(name: &str) -> Option<char> {
    let Some(number) = name.strip_prefix('#') else {
        return match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => None,
        };
    };
    let (digits, radix) = match number.strip_prefix('x') {
        Some(hex) => (hex, 16),
        None => (number, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let c = char::from_u32(u32::from_str_radix(digits, radix).ok()?)?;
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..).then_some(c)
}

/// The error for a reference that [`reference_value`] does not read.
fn unreadable_reference(offset: u64, name: &str) -> XmlError {
    let kind = if name.starts_with('#') {
        XmlErrorKind::InvalidCharRef(name.to_owned())
    } else {
        XmlErrorKind::UndeclaredEntity(name.to_owned())
    };
    refused(offset, kind)
}

/// The one XML reader: quick-xml's `NsReader` with every hardening rule on, whichever
/// caller reads (capabilities, FES filters, WFS bodies, DescribeFeatureType schemas).
///
/// - end tags must match (`check_end_names`), comments must not hold `--`;
/// - a DOCTYPE is refused, unless the caller's [`DocTypePolicy`] accepts one without
///   entity declarations (WMS 1.1.1);
/// - entity references other than the five predefined ones, and character references
///   to characters XML 1.0 does not allow, are refused, in text and attribute values;
/// - elements nest at most [`MAX_DEPTH`] deep;
/// - exactly one root element; outside it only whitespace, comments, processing
///   instructions, the declaration and an accepted DOCTYPE;
/// - element and attribute names are well-formed, attributes are not repeated;
/// - the input is UTF-8 or a declared ISO-8859-1 family encoding.
///
/// Every error names the byte offset where the document broke.
pub(crate) struct Hardened<'a> {
    reader: NsReader<&'a [u8]>,
    /// Bytes before what the reader sees (a UTF-8 byte-order mark), added to positions.
    base: u64,
    encoding: Encoding,
    doctype: DocTypePolicy,
    /// Names of the open elements, the innermost last, with the namespaces each declares.
    open: Vec<String>,
    declared: Vec<usize>,
    /// Namespace declarations in scope (the sum of `declared`).
    in_scope: usize,
    root_seen: bool,
    doctype_seen: bool,
}

impl<'a> Hardened<'a> {
    /// A reader over `input`, whose encoding is checked first (see [`sniff`]).
    pub(crate) fn new(input: &'a [u8], doctype: DocTypePolicy) -> Result<Hardened<'a>, XmlError> {
        let encoding = sniff(input)?;
        Ok(Hardened::over(input, encoding, doctype))
    }

    /// A reader over input whose encoding [`sniff`] found.
    fn over(input: &'a [u8], encoding: Encoding, doctype: DocTypePolicy) -> Hardened<'a> {
        let (body, base) = match input.strip_prefix(UTF8_BOM) {
            Some(rest) => (rest, UTF8_BOM.len() as u64),
            None => (input, 0),
        };
        let mut reader = NsReader::from_reader(body);
        let config = reader.config_mut();
        config.trim_text(false);
        config.check_end_names = true;
        config.check_comments = true;
        config.expand_empty_elements = false;
        config.allow_dangling_amp = false;
        config.allow_unmatched_ends = false;
        Hardened {
            reader,
            base,
            encoding,
            doctype,
            open: Vec::new(),
            declared: Vec::new(),
            in_scope: 0,
            root_seen: false,
            doctype_seen: false,
        }
    }

    /// The byte offset of the next token (after the last one read).
    pub(crate) fn position(&self) -> u64 {
        self.reader.buffer_position() + self.base
    }

    /// Resolves a qualified name (an element name or a QName-valued attribute) against
    /// the namespace bindings in scope.
    pub(crate) fn resolve_element<'n>(&self, name: QName<'n>) -> (ResolveResult<'_>, LocalName<'n>) {
        self.reader.resolve_element(name)
    }

    /// The next checked token; after the root closed and the input ended, [`Token::Eof`].
    pub(crate) fn next(&mut self) -> Result<Token<'a>, XmlError> {
        let at = self.position();
        let event = match self.reader.read_event() {
            Ok(event) => event,
            Err(e) => return Err(refused(self.reader.error_position() + self.base, XmlErrorKind::Syntax(e))),
        };
        self.check(event, at)
    }

    /// The next checked token with the namespace of its element (`Unbound` for tokens
    /// that are not tags).
    pub(crate) fn next_resolved(&mut self) -> Result<(ResolveResult<'_>, Token<'a>), XmlError> {
        let token = self.next()?;
        let resolved = match &token {
            Token::Start(e) | Token::Empty(e) => self.reader.resolve_element(e.name()).0,
            Token::End(e) => self.reader.resolve_element(e.name()).0,
            _ => ResolveResult::Unbound,
        };
        Ok((resolved, token))
    }

    /// After a [`Token::Start`], reads (and checks) everything up to and including its
    /// end tag; returns the position right after it.
    pub(crate) fn skip_element(&mut self) -> Result<u64, XmlError> {
        let depth = self.open.len();
        while self.open.len() >= depth {
            if let Token::Eof = self.next()? {
                break;
            }
        }
        Ok(self.position())
    }

    /// Bytes of the input as text in its encoding.
    fn decode<'b>(&self, bytes: &'b [u8], at: u64) -> Result<Cow<'b, str>, XmlError> {
        decode(self.encoding, bytes).ok_or_else(|| refused(at, XmlErrorKind::InvalidUtf8))
    }

    fn check(&mut self, event: Event<'a>, at: u64) -> Result<Token<'a>, XmlError> {
        let outside = self.open.is_empty();
        Ok(match event {
            Event::Start(e) => {
                let declares = self.check_start(&e, at)?;
                self.open.push(self.decode(e.name().as_ref(), at)?.into_owned());
                self.declared.push(declares);
                self.in_scope += declares;
                Token::Start(e)
            }
            Event::Empty(e) => {
                self.check_start(&e, at)?;
                Token::Empty(e)
            }
            Event::End(e) => {
                // quick-xml matched it against the innermost open element.
                self.open.pop();
                self.in_scope -= self.declared.pop().unwrap_or(0);
                Token::End(e)
            }
            Event::Text(t) => {
                if outside && !t.iter().all(is_xml_space) {
                    return Err(refused(at, XmlErrorKind::OutsideRoot("text")));
                }
                Token::Text(t)
            }
            Event::CData(c) => {
                if outside {
                    return Err(refused(at, XmlErrorKind::OutsideRoot("CDATA")));
                }
                Token::CData(c)
            }
            Event::GeneralRef(reference) => {
                if outside {
                    return Err(refused(at, XmlErrorKind::OutsideRoot("an entity reference")));
                }
                let name = self.decode(&reference, at)?;
                let value = reference_value(&name).ok_or_else(|| unreadable_reference(at, &name))?;
                Token::Ref { reference, value }
            }
            Event::DocType(d) => {
                if self.doctype == DocTypePolicy::Refuse || self.root_seen || self.doctype_seen {
                    return Err(refused(at, XmlErrorKind::DocType));
                }
                let content = self.decode(&d, at)?;
                let subset = content.find('[').map_or("", |i| &content[i..]);
                if content.contains("<!ENTITY") || subset.contains('%') {
                    return Err(refused(at, XmlErrorKind::EntityDeclaration));
                }
                self.doctype_seen = true;
                Token::DocType(d)
            }
            Event::Comment(c) => Token::Comment(c),
            Event::PI(p) => Token::PI(p),
            Event::Decl(d) => Token::Decl(d),
            Event::Eof => {
                if let Some(name) = self.open.last() {
                    return Err(refused(at, XmlErrorKind::Unclosed(name.clone())));
                }
                if !self.root_seen {
                    return Err(refused(at, XmlErrorKind::NoRoot));
                }
                Token::Eof
            }
        })
    }

    /// A start or empty tag: one root, bounded depth, valid names, readable attributes,
    /// bounded attributes and namespace declarations; returns how many it declares.
    fn check_start(&mut self, start: &BytesStart<'_>, at: u64) -> Result<usize, XmlError> {
        if self.open.is_empty() && self.root_seen {
            return Err(refused(at, XmlErrorKind::SecondRoot));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(refused(at, XmlErrorKind::TooDeep(MAX_DEPTH)));
        }
        self.root_seen = true;
        let name = start.name();
        if !valid_name(name.as_ref()) {
            return Err(refused(at, XmlErrorKind::InvalidName(self.decode(name.as_ref(), at)?.into_owned())));
        }
        // Counted first, in one pass without the pairwise check.
        let (mut attributes, mut declares) = (0, 0);
        for attr in start.attributes().with_checks(false) {
            let attr = attr.map_err(|e| refused(at, XmlErrorKind::Syntax(e.into())))?;
            attributes += 1;
            let key = attr.key.as_ref();
            declares += usize::from(key == b"xmlns" || key.starts_with(b"xmlns:"));
            if attributes > MAX_ATTRIBUTES {
                return Err(refused(at, XmlErrorKind::TooManyAttributes(MAX_ATTRIBUTES)));
            }
        }
        if self.in_scope + declares > MAX_NAMESPACES {
            return Err(refused(at, XmlErrorKind::TooManyNamespaces(MAX_NAMESPACES)));
        }
        for attr in start.attributes().with_checks(true) {
            let attr = attr.map_err(|e| refused(at, XmlErrorKind::Syntax(e.into())))?;
            if !valid_name(attr.key.as_ref()) {
                return Err(refused(at, XmlErrorKind::InvalidName(self.decode(attr.key.as_ref(), at)?.into_owned())));
            }
            let value = self.decode(&attr.value, at)?;
            attribute_pieces(&value, at, |_| {})?;
        }
        Ok(declares)
    }
}

/// One piece of a raw attribute value: literal text, or the character a reference
/// stands for.
enum AttrPiece<'v> {
    Literal(&'v str),
    Reference(char),
}

/// Walks a raw attribute value piece by piece; a reference that is not terminated or
/// that [`reference_value`] does not read is refused (at byte `at`).
fn attribute_pieces<'v>(value: &'v str, at: u64, mut piece: impl FnMut(AttrPiece<'v>)) -> Result<(), XmlError> {
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        piece(AttrPiece::Literal(&rest[..amp]));
        let after = &rest[amp + 1..];
        let Some(semicolon) = after.find(';') else {
            let error = quick_xml::escape::EscapeError::UnterminatedEntity(0..value.len());
            return Err(refused(at, XmlErrorKind::Syntax(error.into())));
        };
        let name = &after[..semicolon];
        piece(AttrPiece::Reference(reference_value(name).ok_or_else(|| unreadable_reference(at, name))?));
        rest = &after[semicolon + 1..];
    }
    piece(AttrPiece::Literal(rest));
    Ok(())
}

/// One attribute: its raw (escaped) value as written and its unescaped value.
#[derive(Debug, Clone)]
pub(crate) struct Attr {
    pub key: String,
    raw: String,
    pub value: String,
}

/// A text node (text and entity references merged), raw and unescaped.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    raw: String,
    pub value: String,
}

impl Text {
    /// Text content needs only `<`, `>` and `&` escaped; quotes stay as they are.
    pub(crate) fn new(value: &str) -> Text {
        Text { raw: partial_escape(value).into_owned(), value: value.to_owned() }
    }
    pub(crate) fn set(&mut self, value: String) {
        self.raw = partial_escape(value.as_str()).into_owned();
        self.value = value;
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Element(Element),
    Text(Text),
    CData(String),
    /// Raw comment content (no escaping applies inside comments).
    Comment(String),
    /// Raw processing-instruction content, e.g. `xml-stylesheet href="…"`.
    PI(String),
    Decl(BytesDecl<'static>),
    /// Raw DOCTYPE content, e.g. `WMT_MS_Capabilities SYSTEM "…"`.
    DocType(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Element {
    /// The qualified name as written (`ows:Identifier`).
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
    /// The start tag's raw content while no attribute changed.
    raw_start: Option<String>,
    /// Written as `<x/>` while it has no children.
    empty: bool,
}

/// The part of a qualified name after the prefix.
/// The element names of WFS, FES and GML request bodies that the gateway reads, in
/// their schema's case.
const OGC_ELEMENTS: &[&str] = &[
    // WFS operations and their parts.
    "GetCapabilities",
    "DescribeFeatureType",
    "GetFeature",
    "GetFeatureWithLock",
    "GetPropertyValue",
    "LockFeature",
    "Transaction",
    "Insert",
    "Update",
    "Replace",
    "Delete",
    "Native",
    "Query",
    "StoredQuery",
    "TypeName",
    "Lock",
    "Property",
    "Name",
    "Value",
    "ValueReference",
    "PropertyName",
    "XlinkPropertyName",
    "Sections",
    "AcceptVersions",
    "AcceptFormats",
    "AcceptLanguages",
    "UpdateSequence",
    "Parameter",
    "ListStoredQueries",
    "DescribeStoredQueries",
    "CreateStoredQuery",
    "DropStoredQuery",
    "GetGmlObject",
    // FES / OGC filter.
    "Filter",
    "And",
    "Or",
    "Not",
    "ResourceId",
    "FeatureId",
    "GmlObjectId",
    "Function",
    "Literal",
    "PropertyIsEqualTo",
    "PropertyIsNotEqualTo",
    "PropertyIsLessThan",
    "PropertyIsGreaterThan",
    "PropertyIsLessThanOrEqualTo",
    "PropertyIsGreaterThanOrEqualTo",
    "PropertyIsLike",
    "PropertyIsNull",
    "PropertyIsNil",
    "PropertyIsBetween",
    "LowerBoundary",
    "UpperBoundary",
    "BBOX",
    "Intersects",
    "Within",
    "Contains",
    "Disjoint",
    "Touches",
    "Crosses",
    "Overlaps",
    "Equals",
    "DWithin",
    "Beyond",
    "Distance",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "SortBy",
    "SortProperty",
    "SortOrder",
    // GML geometry in filters.
    "Envelope",
    "Box",
    "Point",
    "LineString",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "MultiSurface",
    "MultiCurve",
    "LinearRing",
    "exterior",
    "interior",
    "outerBoundaryIs",
    "innerBoundaryIs",
    "lowerCorner",
    "upperCorner",
    "pos",
    "posList",
    "coordinates",
    "coord",
];

/// The attribute names of WFS, FES and GML request bodies that the gateway reads, in
/// their schema's case.
const OGC_ATTRIBUTES: &[&str] = &[
    "service",
    "version",
    "outputFormat",
    "srsName",
    "typeNames",
    "typeName",
    "resultType",
    "count",
    "startIndex",
    "maxFeatures",
    "handle",
    "resolve",
    "resolveDepth",
    "resolveTimeout",
    "featureVersion",
    "propertyName",
    "aliases",
    "lockId",
    "releaseAction",
    "expiry",
    "lockAction",
    "inputFormat",
    "idgen",
    "fid",
    "rid",
    "id",
    "matchCase",
    "matchAction",
    "wildCard",
    "singleChar",
    "escapeChar",
    "escape",
    "units",
    "srsDimension",
    "storedQueryId",
    "action",
    "valueReference",
    "name",
];

fn known(names: &'static [&'static str], name: &str) -> Option<&'static str> {
    names.iter().find(|known| known.eq_ignore_ascii_case(name)).copied()
}

/// True when `name` is one of the WFS, FES and GML element or attribute names in any case.
pub(crate) fn is_ogc_name(name: &str) -> bool {
    known(OGC_ELEMENTS, name).is_some() || known(OGC_ATTRIBUTES, name).is_some()
}

/// Refuses a name that is a WFS, FES or GML element or attribute name in another case
/// (`srsname`, `fes:valuereference`, `TYPENAMES`). XML names are case-sensitive, and the
/// gateway reads them so, but MapServer compares them without regard to case and takes
/// the first match: `<Query srsname="EPSG:4326" srsName="EPSG:3857">` was read in two CRSs
/// (the gateway's metres, MapServer's degrees: a whole layer passed an empty fence), and
/// `typenames` beside `typeNames` read another layer (attacker round 6).
pub(crate) fn check_name_case(local: &str) -> Result<(), String> {
    // Some names are an element in one case and an attribute in another (`Name`/`name`,
    // `PropertyName`/`propertyName`): either spelling is a schema's.
    if OGC_ELEMENTS.contains(&local) || OGC_ATTRIBUTES.contains(&local) {
        return Ok(());
    }
    match known(OGC_ELEMENTS, local).or_else(|| known(OGC_ATTRIBUTES, local)) {
        Some(known) => Err(format!(
            "`{local}` is `{known}` in another case; OGC XML names are case-sensitive and servers differ on reading them otherwise, so write `{known}`"
        )),
        None => Ok(()),
    }
}

/// Refuses an element named like a WFS, FES or GML attribute (`<x:srsName>` inside a
/// `Query`). MapServer finds a request's parts with GDAL's `CPLGetXMLValue`, which matches
/// a child element and an attribute alike, prefixes stripped: the element was the
/// `srsName` MapServer wrote the answer in, which the gateway never judged (attacker
/// round 8: a whole layer read as metres inside a 76 m fence). Element names that are
/// also an attribute's in another case (`TypeName`, `PropertyName`, `ValueReference`,
/// `Name`) are elements.
pub(crate) fn check_element_kind(local: &str) -> Result<(), String> {
    if OGC_ELEMENTS.contains(&local) {
        return Ok(());
    }
    match known(OGC_ATTRIBUTES, local) {
        Some(attribute) => Err(format!(
            "`{local}` is the attribute `{attribute}` written as an element; servers that read elements and attributes alike would read it as that attribute"
        )),
        None => Ok(()),
    }
}

/// Refuses an attribute named like a WFS, FES or GML element (`ValueReference="secret"`
/// on a `PropertyIsLike`, `PropertyName=` on a `SortProperty`): MapServer reads it as the
/// element, before the child element the gateway judged (attacker round 8: a hidden
/// property compared and sorted on). The schema's own attributes of those names stay,
/// where the schema puts them: `valueReference` on a WFS root (`wfs_depth` 0,
/// GetPropertyValue), `typeName` on a root child (`wfs_depth` 1: `Query`, `Lock`,
/// `Update`, `Delete`), `name` on a `Function`. `wfs_depth` is `None` in a FES filter.
pub(crate) fn check_attribute_kind(attribute: &str, element: &str, wfs_depth: Option<usize>) -> Result<(), String> {
    let Some(as_element) = known(OGC_ELEMENTS, attribute) else { return Ok(()) };
    let schema = match attribute {
        "valueReference" => wfs_depth == Some(0),
        "typeName" => wfs_depth == Some(1),
        "name" => element == "Function",
        _ => false,
    };
    if schema {
        return Ok(());
    }
    Err(format!(
        "the attribute `{attribute}` on `{element}` is named like the element `{as_element}`; servers that read elements and attributes alike would read it as that element"
    ))
}

pub(crate) fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// The prefix of a qualified name with its colon (`ows:`), or `""`.
pub(crate) fn prefix(name: &str) -> &str {
    name.rsplit_once(':').map_or("", |(p, _)| &name[..p.len() + 1])
}

impl Element {
    /// A new element with no attributes.
    pub(crate) fn new(name: String) -> Element {
        Element { name, attrs: Vec::new(), children: Vec::new(), raw_start: None, empty: true }
    }

    /// A new element holding one text node.
    pub(crate) fn with_text(name: String, text: &str) -> Element {
        let mut el = Element::new(name);
        el.children.push(Node::Text(Text::new(text)));
        el
    }

    pub(crate) fn local(&self) -> &str {
        local(&self.name)
    }

    pub(crate) fn is(&self, local_name: &str) -> bool {
        self.local() == local_name
    }

    /// The unescaped value of the first attribute with this local name.
    pub(crate) fn attr(&self, local_name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| local(&a.key) == local_name).map(|a| a.value.as_str())
    }

    /// Replaces the value of the first attribute with this local name, if present.
    pub(crate) fn set_attr(&mut self, local_name: &str, value: String) {
        if let Some(index) = self.attrs.iter().position(|a| local(&a.key) == local_name) {
            self.set_attr_at(index, value);
        }
    }

    pub(crate) fn set_attr_at(&mut self, index: usize, value: String) {
        if let Some(attr) = self.attrs.get_mut(index) {
            attr.raw = escape(value.as_str()).into_owned();
            attr.value = value;
            self.raw_start = None;
        }
    }

    pub(crate) fn remove_attr_at(&mut self, index: usize) {
        if index < self.attrs.len() {
            self.attrs.remove(index);
            self.raw_start = None;
        }
    }

    pub(crate) fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    pub(crate) fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element with this local name.
    pub(crate) fn child(&self, local_name: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(local_name))
    }

    pub(crate) fn child_mut(&mut self, local_name: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.is(local_name))
    }

    /// The text content of the first child element with this local name, trimmed.
    pub(crate) fn child_text(&self, local_name: &str) -> Option<String> {
        self.child(local_name).map(|c| c.text().trim().to_owned())
    }

    /// The concatenated unescaped text and CDATA of direct children.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            match node {
                Node::Text(t) => out.push_str(&t.value),
                Node::CData(c) => out.push_str(c),
                _ => {}
            }
        }
        out
    }

    /// Appends a child element (no whitespace around it).
    pub(crate) fn push(&mut self, el: Element) {
        self.children.push(Node::Element(el));
    }

    /// Replaces the content with one text node.
    pub(crate) fn set_text(&mut self, value: &str) {
        self.children = vec![Node::Text(Text::new(value))];
    }

    /// Keeps child elements for which `keep` answers true; other nodes stay. The
    /// whitespace before a dropped element goes with it, so no blank lines remain.
    pub(crate) fn retain_elements(&mut self, mut keep: impl FnMut(&mut Element) -> bool) {
        let old = std::mem::take(&mut self.children);
        let mut kept: Vec<Node> = Vec::with_capacity(old.len());
        for mut node in old {
            if let Node::Element(el) = &mut node {
                if !keep(el) {
                    if matches!(kept.last(), Some(Node::Text(t)) if t.value.trim().is_empty()) {
                        kept.pop();
                    }
                    continue;
                }
            }
            kept.push(node);
        }
        self.children = kept;
    }

    /// The whitespace-only text right before child `index`, if any.
    fn indent_before(&self, index: usize) -> Option<String> {
        match index.checked_sub(1).and_then(|i| self.children.get(i)) {
            Some(Node::Text(t)) if t.value.trim().is_empty() => Some(t.value.clone()),
            _ => None,
        }
    }

    /// Inserts `el` right after the child at `index`, preceded by the same whitespace
    /// that precedes that child and laid out one element per line below it, so
    /// generated markup is indented like its neighbours.
    pub(crate) fn insert_after(&mut self, index: usize, mut el: Element) {
        let at = (index + 1).min(self.children.len());
        match self.indent_before(index) {
            Some(indent) => {
                el.indent(&indent);
                self.children.insert(at, Node::Element(el));
                self.children.insert(at, Node::Text(Text::new(&indent)));
            }
            None => self.children.insert(at, Node::Element(el)),
        }
    }

    /// Inserts `el` right before the child at `index`, indented like that child.
    pub(crate) fn insert_before(&mut self, index: usize, mut el: Element) {
        let at = index.min(self.children.len());
        match self.indent_before(index) {
            Some(indent) => {
                el.indent(&indent);
                self.children.insert(at, Node::Text(Text::new(&indent)));
                self.children.insert(at, Node::Element(el));
            }
            None => self.children.insert(at, Node::Element(el)),
        }
    }

    /// Appends `el` after the last child element, indented like it.
    pub(crate) fn append_element(&mut self, el: Element) {
        match self.children.iter().rposition(|n| matches!(n, Node::Element(_))) {
            Some(last) => self.insert_after(last, el),
            None => self.children.push(Node::Element(el)),
        }
    }

    /// The position of the first child element with one of these local names.
    pub(crate) fn position_of(&self, local_names: &[&str]) -> Option<usize> {
        self.children.iter().position(|n| matches!(n, Node::Element(e) if local_names.contains(&e.local())))
    }

    /// Puts each child element of a generated element on its own line, two spaces
    /// deeper than `indent` (the whitespace before this element); text-only elements
    /// stay on one line.
    fn indent(&mut self, indent: &str) {
        if !indent.contains('\n') || !self.children.iter().any(|n| matches!(n, Node::Element(_))) {
            return;
        }
        let inner = format!("{indent}  ");
        let old = std::mem::take(&mut self.children);
        for node in old {
            if let Node::Element(mut child) = node {
                child.indent(&inner);
                self.children.push(Node::Text(Text::new(&inner)));
                self.children.push(Node::Element(child));
            } else {
                self.children.push(node);
            }
        }
        self.children.push(Node::Text(Text::new(indent)));
    }

    /// Visits this element and every descendant element, parents first.
    pub(crate) fn walk_mut(&mut self, f: &mut impl FnMut(&mut Element)) {
        f(self);
        for child in self.elements_mut() {
            child.walk_mut(f);
        }
    }

    /// True when some descendant element has this local name.
    pub(crate) fn has_descendant(&self, local_name: &str) -> bool {
        self.elements().any(|c| c.is(local_name) || c.has_descendant(local_name))
    }

    /// The namespace URI bound to `prefix` (without colon; `""` for the default) on this
    /// element itself.
    pub(crate) fn namespace_declared(&self, prefix: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| if prefix.is_empty() { a.key == "xmlns" } else { a.key.strip_prefix("xmlns:") == Some(prefix) })
            .map(|a| a.value.as_str())
    }
}

/// A parsed document: nodes before the root, the root, nodes after it.
#[derive(Debug, Clone)]
pub(crate) struct Doc {
    pub before: Vec<Node>,
    pub root: Element,
    pub after: Vec<Node>,
    encoding: Encoding,
}

impl From<XmlError> for CapabilitiesError {
    fn from(e: XmlError) -> CapabilitiesError {
        let position = e.offset;
        match e.kind {
            XmlErrorKind::Syntax(source) => CapabilitiesError::Xml { position, source },
            XmlErrorKind::InvalidUtf8 => {
                CapabilitiesError::InvalidUtf8(usize::try_from(position).unwrap_or(usize::MAX))
            }
            XmlErrorKind::Encoding(label) => CapabilitiesError::Encoding(label),
            XmlErrorKind::DocType => CapabilitiesError::DocType,
            XmlErrorKind::EntityDeclaration => CapabilitiesError::EntityDeclaration,
            XmlErrorKind::UndeclaredEntity(name) | XmlErrorKind::InvalidCharRef(name) => {
                CapabilitiesError::UndeclaredEntity(name)
            }
            XmlErrorKind::TooDeep(limit) => CapabilitiesError::TooDeep(limit),
            kind => CapabilitiesError::Malformed { position, message: kind.to_string() },
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, CapabilitiesError> {
    std::str::from_utf8(bytes).map_err(|e| CapabilitiesError::InvalidUtf8(e.valid_up_to()))
}

/// Token bytes as text: the tree holds UTF-8 whatever the document's encoding.
fn text(bytes: &[u8], encoding: Encoding, at: u64) -> Result<Cow<'_, str>, CapabilitiesError> {
    decode(encoding, bytes).ok_or(CapabilitiesError::InvalidUtf8(usize::try_from(at).unwrap_or(usize::MAX)))
}

fn xml_error(position: u64, source: impl Into<quick_xml::Error>) -> CapabilitiesError {
    CapabilitiesError::Xml { position, source: source.into() }
}

/// The element for a start tag (at byte `at`), attributes unescaped; the hardened reader
/// already checked names and references.
fn element_from(
    start: &BytesStart<'_>,
    empty: bool,
    encoding: Encoding,
    at: u64,
) -> Result<Element, CapabilitiesError> {
    let name = text(start.name().as_ref(), encoding, at)?.into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| xml_error(at, e))?;
        let key = text(attr.key.as_ref(), encoding, at)?.into_owned();
        let raw = text(&attr.value, encoding, at)?.into_owned();
        let value = unescape(&raw).map_err(|e| xml_error(at, e))?.into_owned();
        attrs.push(Attr { key, raw, value });
    }
    let raw_start = Some(text(start, encoding, at)?.into_owned());
    Ok(Element { name, attrs, children: Vec::new(), raw_start, empty })
}

/// Appends text (raw and unescaped) to the last node if it is text, or as a new node.
fn push_text(nodes: &mut Vec<Node>, raw: &str, value: &str) {
    if let Some(Node::Text(t)) = nodes.last_mut() {
        t.raw.push_str(raw);
        t.value.push_str(value);
    } else {
        nodes.push(Node::Text(Text { raw: raw.to_owned(), value: value.to_owned() }));
    }
}

impl Doc {
    /// Reads a whole document into a tree through the [`Hardened`] reader; anything it
    /// refuses is an error.
    pub(crate) fn parse(input: &[u8], doctype: DocTypePolicy) -> Result<Doc, CapabilitiesError> {
        let encoding = sniff(input)?;
        let mut reader = Hardened::over(input, encoding, doctype);

        let mut before: Vec<Node> = Vec::new();
        let mut root: Option<Element> = None;
        let mut after: Vec<Node> = Vec::new();
        // Open elements; the innermost last.
        let mut stack: Vec<Element> = Vec::new();

        loop {
            let token = reader.next()?;
            let at = reader.position();
            let nodes: &mut Vec<Node> = match stack.last_mut() {
                Some(open) => &mut open.children,
                None if root.is_some() => &mut after,
                None => &mut before,
            };
            match token {
                Token::Start(start) => stack.push(element_from(&start, false, encoding, at)?),
                Token::Empty(start) => {
                    let el = element_from(&start, true, encoding, at)?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None => root = Some(el),
                    }
                }
                Token::End(_) => {
                    // INVARIANT: the hardened reader matches every end tag against an
                    // open element, so the stack is not empty; guard anyway.
                    let Some(done) = stack.pop() else {
                        return Err(CapabilitiesError::Malformed {
                            position: at,
                            message: "unexpected end tag".into(),
                        });
                    };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(done)),
                        None => root = Some(done),
                    }
                }
                Token::Text(t) => {
                    let raw = text(&t, encoding, at)?;
                    let value = unescape(&raw).map_err(|e| xml_error(at, e))?;
                    push_text(nodes, &raw, &value);
                }
                Token::Ref { reference, value } => {
                    let name = text(&reference, encoding, at)?;
                    push_text(nodes, &format!("&{name};"), value.encode_utf8(&mut [0; 4]));
                }
                Token::CData(c) => nodes.push(Node::CData(text(&c, encoding, at)?.into_owned())),
                Token::Comment(c) => nodes.push(Node::Comment(text(&c, encoding, at)?.into_owned())),
                Token::PI(pi) => nodes.push(Node::PI(text(&pi, encoding, at)?.into_owned())),
                Token::Decl(decl) => {
                    // Written back into the UTF-8 output as it was read, so a Latin-1
                    // declaration must be ASCII.
                    if encoding == Encoding::Latin1 && !decl.is_ascii() {
                        return Err(CapabilitiesError::Malformed {
                            position: at,
                            message: "the XML declaration is not ASCII".into(),
                        });
                    }
                    nodes.push(Node::Decl(decl.into_owned()));
                }
                Token::DocType(dt) => nodes.push(Node::DocType(text(&dt, encoding, at)?.into_owned())),
                Token::Eof => break,
            }
        }
        let root = root.ok_or_else(|| XmlError { offset: reader.position(), kind: XmlErrorKind::NoRoot })?;
        Ok(Doc { before, root, after, encoding })
    }

    /// The DOCTYPE node, if any.
    pub(crate) fn doctype_mut(&mut self) -> Option<&mut String> {
        self.before.iter_mut().find_map(|n| match n {
            Node::DocType(d) => Some(d),
            _ => None,
        })
    }

    /// The namespace URI of the root element.
    pub(crate) fn root_namespace(&self) -> Option<&str> {
        let name = &self.root.name;
        let p = prefix(name).trim_end_matches(':');
        self.root.namespace_declared(p)
    }

    /// Writes the document back, encoded as it was read.
    pub(crate) fn write(&self) -> Result<Vec<u8>, CapabilitiesError> {
        let mut writer = Writer::new(Vec::new());
        for node in &self.before {
            write_node(&mut writer, node)?;
        }
        write_element(&mut writer, &self.root)?;
        for node in &self.after {
            write_node(&mut writer, node)?;
        }
        let out = writer.into_inner();
        Ok(match self.encoding {
            Encoding::Utf8 { bom: false } => out,
            Encoding::Utf8 { bom: true } => [&[0xEF, 0xBB, 0xBF][..], &out].concat(),
            Encoding::Latin1 => encode_latin1(&out)?,
        })
    }

    /// Every node of the document, for checks that look at everything.
    pub(crate) fn visit(&self, f: &mut impl FnMut(NodeRef<'_>)) {
        for node in self.before.iter().chain(self.after.iter()) {
            visit_node(node, f);
        }
        visit_element(&self.root, f);
    }

    /// Every node of the document, mutably.
    pub(crate) fn nodes_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.before.iter_mut().chain(self.after.iter_mut())
    }
}

/// A read-only view of one piece of a document that can hold a URL.
pub(crate) enum NodeRef<'a> {
    Attr(&'a Attr),
    Text(&'a str),
}

fn visit_node(node: &Node, f: &mut impl FnMut(NodeRef<'_>)) {
    match node {
        Node::Element(e) => visit_element(e, f),
        Node::Text(t) => f(NodeRef::Text(&t.value)),
        Node::CData(s) | Node::Comment(s) | Node::PI(s) | Node::DocType(s) => f(NodeRef::Text(s)),
        Node::Decl(_) => {}
    }
}

fn visit_element(el: &Element, f: &mut impl FnMut(NodeRef<'_>)) {
    for attr in &el.attrs {
        f(NodeRef::Attr(attr));
    }
    for child in &el.children {
        visit_node(child, f);
    }
}

/// UTF-8 back to one byte per character; characters above U+00FF (only possible from
/// character references we unescaped) become character references again.
fn encode_latin1(utf8_bytes: &[u8]) -> Result<Vec<u8>, CapabilitiesError> {
    let text = utf8(utf8_bytes)?;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(format!("&#x{:X};", u32::from(c)).as_bytes()),
        }
    }
    Ok(out)
}

type XmlWriter = Writer<Vec<u8>>;

fn write_event(writer: &mut XmlWriter, event: Event<'_>) -> Result<(), CapabilitiesError> {
    writer.write_event(event).map_err(|e| CapabilitiesError::Write(e.to_string()))
}

fn write_node(writer: &mut XmlWriter, node: &Node) -> Result<(), CapabilitiesError> {
    match node {
        Node::Element(e) => write_element(writer, e),
        Node::Text(t) => write_event(writer, Event::Text(BytesText::from_escaped(t.raw.as_str()))),
        Node::CData(c) => {
            // A `]]>` inside is split across two sections by quick-xml.
            for section in BytesCData::escaped(c) {
                write_event(writer, Event::CData(section))?;
            }
            Ok(())
        }
        Node::Comment(c) => write_event(writer, Event::Comment(BytesText::from_escaped(c.as_str()))),
        Node::PI(p) => write_event(writer, Event::PI(BytesPI::new(p.as_str()))),
        Node::Decl(d) => write_event(writer, Event::Decl(d.clone())),
        Node::DocType(d) => write_event(writer, Event::DocType(BytesText::from_escaped(d.as_str()))),
    }
}

fn write_element(writer: &mut XmlWriter, el: &Element) -> Result<(), CapabilitiesError> {
    let start = match &el.raw_start {
        Some(raw) => BytesStart::from_content(raw.as_str(), el.name.len()),
        None => {
            let mut start = BytesStart::new(el.name.as_str());
            for attr in &el.attrs {
                // Values read from single-quoted attributes may hold a raw `"`.
                let raw = attr.raw.replace('"', "&quot;");
                start
                    .push_attribute(Attribute { key: QName(attr.key.as_bytes()), value: Cow::Owned(raw.into_bytes()) });
            }
            start
        }
    };
    if el.children.is_empty() && el.empty {
        return write_event(writer, Event::Empty(start));
    }
    write_event(writer, Event::Start(start))?;
    for child in &el.children {
        write_node(writer, child)?;
    }
    write_event(writer, Event::End(BytesEnd::new(el.name.as_str())))
}

// ---------------------------------------------------------------------------------
// The canonical form: client XML is forwarded as the gateway read it
// ---------------------------------------------------------------------------------

/// Re-writes a client's XML document (a WFS POST body, a FES `FILTER` value) in one
/// spelling of what [`Hardened`] read. The gateway judges this form and forwards it, so
/// the bytes it judged are the bytes the upstream parses, and every lexical device that
/// strict and loose parsers read differently is gone before either reads (decision 81):
///
/// - UTF-8 without a byte-order mark; the declaration is `<?xml version="1.0"
///   encoding="UTF-8"?>` when `declaration`, else none;
/// - comments, processing instructions and whitespace outside the root are dropped;
/// - each run of character data is one text node: text, CDATA sections and references
///   merged, line ends normalised (XML 1.0 §2.11), written with `&amp;`, `&lt;`, `&gt;`,
///   and `&#xD;` for a carriage return a reference wrote; no other reference, no CDATA
///   (MapServer reads a `PropertyName` from its first text node only);
/// - tags are `<name a="v">`: names as written, one space before each attribute, double
///   quotes; values normalised as XML 1.0 §3.3.3 does (a literal tab, CR or LF is a space),
///   written with `&amp;`, `&lt;`, `&gt;`, `&quot;`, and `&#x9;`, `&#xA;`, `&#xD;` for
///   whitespace a reference wrote;
/// - namespace declarations stay where they were written; an empty element stays `<a/>`.
///
/// It is idempotent (`canonical(canonical(x)) == canonical(x)`: fuzz target `wfs_xml`).
/// Refuses what [`Hardened`] refuses (DOCTYPE always).
pub(crate) fn canonical(input: &[u8], declaration: bool) -> Result<String, XmlError> {
    let mut reader = Hardened::new(input, DocTypePolicy::Refuse)?;
    let mut out = String::with_capacity(input.len() + 40);
    if declaration {
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    }
    // Character data waiting to be written as one node.
    let mut text = String::new();
    loop {
        let at = reader.position();
        match reader.next()? {
            Token::Start(e) => {
                escape_text(&mut out, &mut text);
                canonical_start(&mut out, &e, &reader, at)?;
                out.push('>');
            }
            Token::Empty(e) => {
                escape_text(&mut out, &mut text);
                canonical_start(&mut out, &e, &reader, at)?;
                out.push_str("/>");
            }
            Token::End(e) => {
                escape_text(&mut out, &mut text);
                out.push_str("</");
                out.push_str(&reader.decode(e.name().as_ref(), at)?);
                out.push('>');
            }
            // Outside the root only whitespace reaches here (the reader refuses the rest).
            Token::Text(_) if reader.open.is_empty() => {}
            Token::Text(t) => push_line_ends(&mut text, &reader.decode(&t, at)?),
            Token::CData(c) => push_line_ends(&mut text, &reader.decode(&c, at)?),
            Token::Ref { value, .. } => text.push(value),
            Token::Comment(_) | Token::PI(_) | Token::Decl(_) | Token::DocType(_) => {}
            Token::Eof => break,
        }
    }
    Ok(out)
}

/// `<name` and the attributes, canonical (see [`canonical`]).
fn canonical_start(out: &mut String, e: &BytesStart<'_>, reader: &Hardened<'_>, at: u64) -> Result<(), XmlError> {
    out.push('<');
    out.push_str(&reader.decode(e.name().as_ref(), at)?);
    for attr in e.attributes() {
        let attr = attr.map_err(|err| refused(at, XmlErrorKind::Syntax(err.into())))?;
        out.push(' ');
        out.push_str(&reader.decode(attr.key.as_ref(), at)?);
        out.push_str("=\"");
        let raw = reader.decode(&attr.value, at)?;
        // Literal whitespace is a space; whitespace a reference wrote stays a reference.
        attribute_pieces(&raw, at, |piece| match piece {
            AttrPiece::Literal(literal) => push_attr_literal(out, literal),
            AttrPiece::Reference('\t') => out.push_str("&#x9;"),
            AttrPiece::Reference('\n') => out.push_str("&#xA;"),
            AttrPiece::Reference('\r') => out.push_str("&#xD;"),
            AttrPiece::Reference(c) => push_attr_char(out, c),
        })?;
        out.push('"');
    }
    Ok(())
}

/// Literal attribute text: whitespace normalised, markup escaped.
fn push_attr_literal(out: &mut String, literal: &str) {
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CR LF is one line end, and a line end in a value is a space.
            '\r' if chars.peek() == Some(&'\n') => {}
            '\t' | '\n' | '\r' => out.push(' '),
            c => push_attr_char(out, c),
        }
    }
}

fn push_attr_char(out: &mut String, c: char) {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '"' => out.push_str("&quot;"),
        c => out.push(c),
    }
}

/// Literal character data with its line ends normalised: CR LF and a lone CR are LF.
fn push_line_ends(text: &mut String, literal: &str) {
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\r' => text.push('\n'),
            c => text.push(c),
        }
    }
}

/// Writes the waiting character data as one escaped text node; a CR left in it came
/// from a reference and stays one.
fn escape_text(out: &mut String, text: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    text.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(s: &str) -> String {
        let doc = Doc::parse(s.as_bytes(), DocTypePolicy::Refuse).expect("parses");
        String::from_utf8(doc.write().expect("writes")).expect("utf-8")
    }

    fn canon(s: &str) -> String {
        canonical(s.as_bytes(), false).expect("canonical")
    }

    #[test]
    fn the_canonical_form_has_one_spelling_for_what_was_read() {
        let cases = [
            // Comments, PIs and CDATA split nothing: one text node.
            ("<a>na<!-- x -->me<?pi y?><![CDATA[d]]></a>", "<a>named</a>"),
            // References written out, markup escaped, quotes left alone in text.
            ("<a>&#x6E;&#97;me &amp; &lt;&gt; &quot;&apos;</a>", "<a>name &amp; &lt;&gt; \"'</a>"),
            // Line ends normalised; a CR a reference wrote stays a reference.
            ("<a>x\r\ny\rz&#13;</a>", "<a>x\ny\nz&#xD;</a>"),
            // Attributes: one space, double quotes, literal whitespace is a space.
            ("<a  x='1\"2'\n\ty=\"a\r\nb\tc\" />", "<a x=\"1&quot;2\" y=\"a b c\"/>"),
            ("<a x='&#10;&#9;&#13;&#x41;&lt;&amp;&gt;'/>", "<a x=\"&#xA;&#x9;&#xD;A&lt;&amp;&gt;\"/>"),
            // Namespaces stay as declared; whitespace and comments outside the root go.
            (
                "\u{feff}<?xml version='1.0'?>\n<!-- c -->\n<p:a xmlns:p=\"urn:x\"><p:b/></p:a>\n<!-- d -->\n",
                "<p:a xmlns:p=\"urn:x\"><p:b/></p:a>",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(canon(input), want, "{input:?}");
            assert_eq!(canon(want), want, "canonical form of {want:?} is itself");
        }
        assert_eq!(
            canonical(b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>", true).expect("latin-1"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><a>\u{e9}</a>"
        );
    }

    #[test]
    fn the_canonical_form_refuses_what_the_reader_refuses() {
        for bad in ["<!DOCTYPE a><a/>", "<a>&foo;</a>", "<a x='&#0;'/>", "<a/><b/>", "<a>", "<a x='1' x='2'/>"] {
            assert!(canonical(bad.as_bytes(), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn untouched_documents_are_written_back_byte_for_byte() {
        let s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- hi -->\n<a  x='1&amp;2'\n   y=\"&#233;\">t&amp;u&#233;<![CDATA[<raw>]]><b/><?pi x?></a>\n";
        assert_eq!(roundtrip(s), s);
    }

    #[test]
    fn changed_attributes_are_escaped() {
        let mut doc = Doc::parse(b"<a href='x'/>", DocTypePolicy::Refuse).expect("parses");
        doc.root.set_attr("href", "http://gw/?a=1&b=\"2\"".to_owned());
        assert_eq!(doc.write().expect("writes"), b"<a href=\"http://gw/?a=1&amp;b=&quot;2&quot;\"/>".to_vec());
    }

    #[test]
    fn cdata_holding_the_end_marker_is_split_safely() {
        let mut doc = Doc::parse(b"<a/>", DocTypePolicy::Refuse).expect("parses");
        doc.root.children.push(Node::CData("x]]>y".to_owned()));
        let out = String::from_utf8(doc.write().expect("writes")).expect("utf-8");
        assert_eq!(out, "<a><![CDATA[x]]]]><![CDATA[>y]]></a>");
        let again = Doc::parse(out.as_bytes(), DocTypePolicy::Refuse).expect("parses again");
        assert_eq!(again.root.text(), "x]]>y");
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "<a><b></a>",
            "<a><b>",
            "<a>x < y</a>",
            "<a/><b/>",
            "<a></a>text",
            "",
            "just text",
            "<a x='1' x='2'/>",
            "<a x/>",
            "<a>&foo;</a>",
            "<a>&#0;</a>",
        ] {
            assert!(Doc::parse(bad.as_bytes(), DocTypePolicy::Refuse).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn errors_say_where_the_document_broke() {
        let err = Doc::parse(b"<a>\n  <b>\n</a>", DocTypePolicy::Refuse).expect_err("mismatched");
        assert!(matches!(err, CapabilitiesError::Xml { position: 8..=14, .. }), "{err:?}");
        assert!(std::error::Error::source(&err).is_some(), "the quick-xml cause is kept");
        let err = Doc::parse(b"<a><b>", DocTypePolicy::Refuse).expect_err("unclosed");
        assert_eq!(err.to_string(), "upstream document is not well-formed XML at byte 6: `<b>` is never closed");
    }

    #[test]
    fn doctype_is_refused_unless_allowed_and_entity_free() {
        let plain = "<!DOCTYPE a SYSTEM \"a.dtd\" [ <!ELEMENT b EMPTY> ]><a/>";
        assert!(matches!(Doc::parse(plain.as_bytes(), DocTypePolicy::Refuse), Err(CapabilitiesError::DocType)));
        assert!(Doc::parse(plain.as_bytes(), DocTypePolicy::AllowWithoutEntities).is_ok());
        let laughs = "<!DOCTYPE a [ <!ENTITY l \"lol\"> <!ENTITY l2 \"&l;&l;\"> ]><a>&l2;</a>";
        assert!(matches!(
            Doc::parse(laughs.as_bytes(), DocTypePolicy::AllowWithoutEntities),
            Err(CapabilitiesError::EntityDeclaration)
        ));
        let xxe = "<!DOCTYPE a [ <!ENTITY % p SYSTEM \"http://evil/x\"> %p; ]><a/>";
        assert!(Doc::parse(xxe.as_bytes(), DocTypePolicy::AllowWithoutEntities).is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH + 1), "</a>".repeat(MAX_DEPTH + 1));
        assert!(matches!(Doc::parse(deep.as_bytes(), DocTypePolicy::Refuse), Err(CapabilitiesError::TooDeep(_))));
    }

    #[test]
    fn latin1_documents_round_trip_their_bytes() {
        let mut input = b"<?xml version='1.0' encoding='ISO-8859-1'?><a t='M\xfcnchen'>K\xf6ln</a>".to_vec();
        let doc = Doc::parse(&input, DocTypePolicy::Refuse).expect("parses");
        assert_eq!(doc.root.text(), "K\u{f6}ln");
        assert_eq!(doc.write().expect("writes"), input);
        input.extend_from_slice(b"\xff");
        assert!(Doc::parse(&input, DocTypePolicy::Refuse).is_err(), "text after the root");
    }

    #[test]
    fn latin1_error_offsets_count_the_original_bytes() {
        let input = b"<?xml version='1.0' encoding='ISO-8859-1'?><a t='M\xfcnchen'>K\xf6ln</a><b/>";
        let at = input.len() as u64 - 4;
        let e = Doc::parse(input, DocTypePolicy::Refuse).expect_err("two roots");
        assert!(matches!(e, CapabilitiesError::Malformed { position, .. } if position == at), "{e:?}");
    }

    #[test]
    fn invalid_utf8_and_utf16_are_refused() {
        assert!(matches!(Doc::parse(b"<a>\xff</a>", DocTypePolicy::Refuse), Err(CapabilitiesError::InvalidUtf8(3))));
        assert!(matches!(
            Doc::parse(b"\xff\xfe<\0a\0/\0>\0", DocTypePolicy::Refuse),
            Err(CapabilitiesError::Encoding(_))
        ));
        assert!(matches!(
            Doc::parse(b"<?xml version='1.0' encoding='Shift_JIS'?><a/>", DocTypePolicy::Refuse),
            Err(CapabilitiesError::Encoding(_))
        ));
    }

    /// Reads a whole document through the hardened reader; the number of tokens.
    fn harden(input: &[u8], doctype: DocTypePolicy) -> Result<usize, XmlError> {
        let mut reader = Hardened::new(input, doctype)?;
        let mut tokens = 0;
        while !matches!(reader.next()?, Token::Eof) {
            tokens += 1;
        }
        Ok(tokens)
    }

    fn refusal(input: &str, doctype: DocTypePolicy) -> XmlError {
        harden(input.as_bytes(), doctype).expect_err(input)
    }

    const BILLION_LAUGHS: &str = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n \
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n \
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n<lolz>&lol3;</lolz>";

    #[test]
    fn hardened_billion_laughs_is_refused_under_either_doctype_policy() {
        let e = refusal(BILLION_LAUGHS, DocTypePolicy::Refuse);
        assert!(matches!(e.kind, XmlErrorKind::DocType), "{e}");
        assert_eq!(e.offset, 22, "the DOCTYPE starts after the declaration and its newline");
        let e = refusal(BILLION_LAUGHS, DocTypePolicy::AllowWithoutEntities);
        assert!(matches!(e.kind, XmlErrorKind::EntityDeclaration), "{e}");
        // Without its DOCTYPE the bomb is only an undeclared entity.
        let e = refusal("<lolz>&lol3;</lolz>", DocTypePolicy::Refuse);
        assert!(matches!(&e.kind, XmlErrorKind::UndeclaredEntity(n) if n == "lol3"), "{e}");
        assert_eq!(e.offset, 6);
    }

    #[test]
    fn hardened_external_entities_are_refused() {
        for xxe in [
            "<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
            "<!DOCTYPE a [<!ENTITY % p SYSTEM \"http://evil/x\"> %p;]><a/>",
            "<!DOCTYPE a SYSTEM \"http://evil/x.dtd\" [ %p; ]><a/>",
        ] {
            assert!(matches!(refusal(xxe, DocTypePolicy::Refuse).kind, XmlErrorKind::DocType), "{xxe}");
            let e = refusal(xxe, DocTypePolicy::AllowWithoutEntities);
            assert!(matches!(e.kind, XmlErrorKind::EntityDeclaration), "{xxe}: {e}");
        }
    }

    #[test]
    fn hardened_undeclared_entities_and_bad_character_references_are_refused() {
        let e = refusal("<a>x&nbsp;y</a>", DocTypePolicy::Refuse);
        assert!(matches!(&e.kind, XmlErrorKind::UndeclaredEntity(n) if n == "nbsp"), "{e}");
        assert_eq!(
            e.to_string(),
            "the entity `&nbsp;` is not declared; only `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and \
             character references are read at byte 4"
        );
        let e = refusal("<a x='1&e;'/>", DocTypePolicy::Refuse);
        assert!(matches!(&e.kind, XmlErrorKind::UndeclaredEntity(n) if n == "e"), "in an attribute: {e}");
        for bad in ["<a>&#0;</a>", "<a>&#1;</a>", "<a>&#xFFFE;</a>", "<a>&#X41;</a>", "<a>&#+65;</a>", "<a x='&#0;'/>"]
        {
            assert!(matches!(refusal(bad, DocTypePolicy::Refuse).kind, XmlErrorKind::InvalidCharRef(_)), "{bad}");
        }
        assert!(matches!(refusal("<a x='a & b;'/>", DocTypePolicy::Refuse).kind, XmlErrorKind::UndeclaredEntity(_)));
        assert!(
            matches!(refusal("<a x='a &amp'/>", DocTypePolicy::Refuse).kind, XmlErrorKind::Syntax(_)),
            "unterminated"
        );
        let ok = "<a x='&lt;&#233;&#x1F600;'>&amp;&lt;&gt;&quot;&apos;&#9;&#xE9;</a>";
        assert!(harden(ok.as_bytes(), DocTypePolicy::Refuse).is_ok());
    }

    #[test]
    fn hardened_doctype_is_refused_unless_the_policy_allows_one_before_the_root() {
        let dtd = "<!DOCTYPE a SYSTEM \"a.dtd\" [ <!ELEMENT a EMPTY> ]><a/>";
        assert!(matches!(refusal(dtd, DocTypePolicy::Refuse).kind, XmlErrorKind::DocType));
        assert!(harden(dtd.as_bytes(), DocTypePolicy::AllowWithoutEntities).is_ok());
        for twice in ["<!DOCTYPE a><!DOCTYPE a><a/>", "<a/><!DOCTYPE a>"] {
            let e = refusal(twice, DocTypePolicy::AllowWithoutEntities);
            assert!(matches!(e.kind, XmlErrorKind::DocType), "{twice}: {e}");
        }
    }

    /// Attacker round 11c: attributes and namespace declarations by the ten thousand
    /// cost the gateway seconds (pairwise checks); they are counted first and bounded.
    #[test]
    fn attributes_and_namespaces_are_bounded() {
        let with = |n: usize, attr: &dyn Fn(usize) -> String| {
            format!("<a {}/>", (0..n).map(attr).collect::<Vec<_>>().join(" "))
        };
        let plain = |i: usize| format!("a{i}=\"1\"");
        let ns = |i: usize| format!("xmlns:p{i}=\"urn:{i}\"");
        assert!(harden(with(MAX_ATTRIBUTES, &plain).as_bytes(), DocTypePolicy::Refuse).is_ok());
        let started = std::time::Instant::now();
        for (n, attr, what) in [
            (MAX_ATTRIBUTES + 1, &plain as &dyn Fn(usize) -> String, "attributes"),
            (200_000, &plain, "attributes"),
            (200_000, &ns, "attributes"),
        ] {
            let e = refusal(&with(n, attr), DocTypePolicy::Refuse);
            assert!(matches!(e.kind, XmlErrorKind::TooManyAttributes(MAX_ATTRIBUTES)), "{n} {what}: {e}");
        }
        eprintln!("refusing 400,000 attributes took {:?}", started.elapsed());
        // Declarations in scope add up over nested elements, and end with them.
        let nested = |levels: usize| {
            let open: String = (0..levels)
                .map(|l| {
                    format!(
                        "<e{l} {}>",
                        (0..64).map(|i| format!("xmlns:p{l}x{i}=\"urn:{i}\"")).collect::<Vec<_>>().join(" ")
                    )
                })
                .collect();
            let close: String = (0..levels).rev().map(|l| format!("</e{l}>")).collect();
            format!("{open}{close}")
        };
        assert!(harden(nested(4).as_bytes(), DocTypePolicy::Refuse).is_ok());
        let e = refusal(&nested(5), DocTypePolicy::Refuse);
        assert!(matches!(e.kind, XmlErrorKind::TooManyNamespaces(MAX_NAMESPACES)), "{e}");
        let siblings = format!("<r>{}</r>", nested(4).repeat(3));
        assert!(harden(siblings.as_bytes(), DocTypePolicy::Refuse).is_ok(), "out of scope again");
    }

    #[test]
    fn hardened_depth_bomb_is_refused_at_max_depth() {
        let nest = |n: usize| format!("{}{}", "<a>".repeat(n), "</a>".repeat(n));
        assert!(harden(nest(MAX_DEPTH).as_bytes(), DocTypePolicy::Refuse).is_ok());
        let e = refusal(&nest(MAX_DEPTH + 1), DocTypePolicy::Refuse);
        assert!(matches!(e.kind, XmlErrorKind::TooDeep(MAX_DEPTH)), "{e}");
        assert_eq!(e.offset, 3 * MAX_DEPTH as u64);
        let empty_too = format!("{}<b/>{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(matches!(refusal(&empty_too, DocTypePolicy::Refuse).kind, XmlErrorKind::TooDeep(_)));
        // A million levels are refused at the first one too many, without recursion.
        let bomb = "<a>".repeat(1_000_000);
        assert!(matches!(refusal(&bomb, DocTypePolicy::Refuse).kind, XmlErrorKind::TooDeep(_)));
    }

    #[test]
    fn hardened_two_roots_are_refused() {
        for two in ["<a/><b/>", "<a></a><a></a>", "<a/>\n<!-- x -->\n<b>t</b>"] {
            assert!(matches!(refusal(two, DocTypePolicy::Refuse).kind, XmlErrorKind::SecondRoot), "{two}");
        }
        assert_eq!(refusal("<a/><b/>", DocTypePolicy::Refuse).offset, 4);
        assert!(matches!(refusal("", DocTypePolicy::Refuse).kind, XmlErrorKind::NoRoot));
        assert!(matches!(refusal("<?xml version='1.0'?><!-- -->", DocTypePolicy::Refuse).kind, XmlErrorKind::NoRoot));
    }

    #[test]
    fn hardened_text_after_the_root_is_refused_but_whitespace_comments_and_pis_are_not() {
        for (after, what) in [("x", "text"), ("&amp;", "an entity reference"), ("<![CDATA[x]]>", "CDATA")] {
            let e = refusal(&format!("<a/>{after}"), DocTypePolicy::Refuse);
            assert!(matches!(e.kind, XmlErrorKind::OutsideRoot(w) if w == what), "{after}: {e}");
            assert_eq!(e.offset, 4);
        }
        assert!(matches!(refusal("text<a/>", DocTypePolicy::Refuse).kind, XmlErrorKind::OutsideRoot("text")));
        // Only XML whitespace: a no-break space after the root is text.
        assert!(matches!(refusal("<a/>\u{a0}", DocTypePolicy::Refuse).kind, XmlErrorKind::OutsideRoot("text")));
        assert!(harden(b"<a/> \r\n\t<!-- c --><?pi x?>\n", DocTypePolicy::Refuse).is_ok());
    }

    #[test]
    fn hardened_mismatched_and_unclosed_tags_are_refused() {
        let e = refusal("<a>\n  <b>\n</a>", DocTypePolicy::Refuse);
        assert!(matches!(e.kind, XmlErrorKind::Syntax(_)), "{e}");
        assert!(e.to_string().starts_with("not well-formed at byte "), "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the quick-xml cause is kept");
        let e = refusal("<a><b>", DocTypePolicy::Refuse);
        assert!(matches!(&e.kind, XmlErrorKind::Unclosed(n) if n == "b"), "{e}");
        assert_eq!(e.to_string(), "`<b>` is never closed at byte 6");
        for bad in
            ["</a>", "<a x='1' x='2'/>", "<a x/>", "<1a/>", "<a 1x='1'/>", "<a><!-- x -- y --></a>", "<a>x &</a>"]
        {
            assert!(harden(bad.as_bytes(), DocTypePolicy::Refuse).is_err(), "{bad}");
        }
    }

    #[test]
    fn hardened_bad_utf8_and_unknown_encodings_are_refused() {
        let e = harden(b"<a>ok\xff</a>", DocTypePolicy::Refuse).expect_err("bad UTF-8");
        assert!(matches!(e.kind, XmlErrorKind::InvalidUtf8) && e.offset == 5, "{e}");
        let e = harden(b"\xEF\xBB\xBF<a>\xc3</a>", DocTypePolicy::Refuse).expect_err("bad UTF-8 after a BOM");
        assert_eq!(e.offset, 6, "offsets count the byte-order mark");
        for bad in [&b"\xff\xfe<\0a\0/\0>\0"[..], b"<?xml version='1.0' encoding='Shift_JIS'?><a/>"] {
            let e = harden(bad, DocTypePolicy::Refuse).expect_err("encoding");
            assert!(matches!(e.kind, XmlErrorKind::Encoding(_)), "{e}");
        }
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><a t='M\xfcnchen'>K\xf6ln</a>";
        assert!(harden(latin1, DocTypePolicy::Refuse).is_ok());
        let mut reader = Hardened::new(b"\xEF\xBB\xBF<a/>", DocTypePolicy::Refuse).expect("a BOM is fine");
        assert!(matches!(reader.next(), Ok(Token::Empty(_))));
        assert_eq!(reader.position(), 7, "positions count the byte-order mark");
    }

    #[test]
    fn doc_refuses_a_doctype_and_an_entity_bomb_through_the_hardened_reader() {
        let e = Doc::parse(BILLION_LAUGHS.as_bytes(), DocTypePolicy::Refuse).expect_err("DOCTYPE");
        assert_eq!(e.to_string(), "upstream document has a DOCTYPE; only WMS 1.1.1 may carry one");
        let e = Doc::parse(BILLION_LAUGHS.as_bytes(), DocTypePolicy::AllowWithoutEntities).expect_err("entities");
        assert_eq!(e.to_string(), "upstream document declares entities in its DOCTYPE");
        let e = Doc::parse(b"<lolz>&lol3;</lolz>", DocTypePolicy::Refuse).expect_err("undeclared");
        assert_eq!(e.to_string(), "upstream document uses the undeclared entity `&lol3;`");
    }

    #[test]
    fn capabilities_with_a_control_character_reference_or_a_no_break_space_after_the_root_are_refused() {
        // Both passed before the readers were unified.
        assert!(Doc::parse(b"<a>&#1;</a>", DocTypePolicy::Refuse).is_err());
        assert!(Doc::parse("<a/>\u{a0}".as_bytes(), DocTypePolicy::Refuse).is_err());
    }

    #[test]
    fn removing_an_element_takes_its_indentation_along() {
        let mut doc = Doc::parse(b"<a>\n  <b/>\n  <c/>\n</a>", DocTypePolicy::Refuse).expect("parses");
        doc.root.retain_elements(|e| !e.is("b"));
        assert_eq!(doc.write().expect("writes"), b"<a>\n  <c/>\n</a>".to_vec());
    }
}

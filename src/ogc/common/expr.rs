//! Which properties a filter expression names (FES XML, CQL2 text/ECQL, CQL2 JSON).
//!
//! The OGC classifier calls these to fill `Operation::properties`; the policy then
//! refuses a request that names a property outside the token's property fence.
//!
//! The one rule here: when in doubt, report more or refuse. A name reported that is
//! not really a property only over-denies; a property that is missed leaks data. So
//! anything these readers do not fully understand is an [`UnreadableFilter`], and
//! the request is refused. Pure code: no I/O, no logging.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use quick_xml::events::BytesStart;

use super::kvp::Kvp;
use super::xml::{DocTypePolicy, Hardened, Token};
use super::{bad, unsupported, xml_property};
use crate::ogc::OgcError;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A filter expression the gateway cannot read; the request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the {language} expression: {message}")]
pub struct UnreadableFilter {
    pub language: &'static str,
    pub message: String,
}

const FES: &str = "FES";
const CQL2_TEXT: &str = "CQL2 text";
const CQL2_JSON: &str = "CQL2 JSON";

fn unreadable(language: &'static str, message: impl Into<String>) -> UnreadableFilter {
    UnreadableFilter { language, message: message.into() }
}

/// Appends `name` unless it is already listed (first occurrence wins the order).
fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

// ---------------------------------------------------------------------------------
// FES XML
// ---------------------------------------------------------------------------------

/// Property names referenced by an OGC Filter Encoding (FES 1.1/2.0) XML document.
///
/// Collects the text of every `PropertyName` and `ValueReference` element, in any
/// namespace. A namespace prefix is dropped (`ns:name` names the property `name`);
/// XPath beyond a qualified name (`a/b`, `@id`, `a[1]`, `*`) is refused, and so are
/// DOCTYPE declarations and entities other than the five predefined ones.
///
/// ```
/// use tilegate::ogc::common::expr::fes_properties;
/// let xml = r#"<Filter xmlns="http://www.opengis.net/fes/2.0">
///   <PropertyIsEqualTo><ValueReference>ns:name</ValueReference><Literal>x</Literal></PropertyIsEqualTo>
/// </Filter>"#;
/// assert_eq!(fes_properties(xml).unwrap(), vec!["name".to_string()]);
/// assert!(fes_properties("<Filter><PropertyName>a/b</PropertyName></Filter>").is_err());
/// ```
pub fn fes_properties(xml: &str) -> Result<Vec<String>, UnreadableFilter> {
    read_fes(xml).map(|fes| fes.properties)
}

/// The element's and its attributes' names in their schema's case (MapServer reads
/// `fes:valuereference` as `ValueReference`: `common::xml::check_name_case`), no attribute
/// twice in two cases, and elements and attributes of their schema's kind (MapServer
/// reads a `ValueReference="…"` attribute as the operand: `check_attribute_kind`).
fn check_fes_names(start: &quick_xml::events::BytesStart<'_>) -> Result<(), UnreadableFilter> {
    let local = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    crate::ogc::common::xml::check_name_case(&local).map_err(|e| unreadable(FES, e))?;
    crate::ogc::common::xml::check_element_kind(&local).map_err(|e| unreadable(FES, e))?;
    let mut seen: Vec<String> = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| unreadable(FES, e.to_string()))?;
        let raw = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        if let Some(prefix) = raw.strip_prefix("xmlns:") {
            if crate::ogc::common::xml::is_ogc_name(prefix) {
                return Err(unreadable(FES, format!("the namespace prefix `{prefix}` is an OGC name")));
            }
            continue;
        }
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        if seen.iter().any(|k| k.eq_ignore_ascii_case(&key)) {
            return Err(unreadable(FES, format!("attribute `{key}` is given twice")));
        }
        crate::ogc::common::xml::check_name_case(&key).map_err(|e| unreadable(FES, e))?;
        crate::ogc::common::xml::check_attribute_kind(&key, &local, None).map_err(|e| unreadable(FES, e))?;
        seen.push(key);
    }
    Ok(())
}

/// What one FES document names: properties, and the `name`s of its `Function`s.
struct Fes {
    properties: Vec<String>,
    functions: Vec<String>,
}

/// Reads a FES document once, through the shared hardened reader (no DOCTYPE, no
/// entities beyond the predefined ones, one root, bounded depth).
fn read_fes(xml: &str) -> Result<Fes, UnreadableFilter> {
    let mut reader =
        Hardened::new(xml.as_bytes(), DocTypePolicy::Refuse).map_err(|e| unreadable(FES, e.to_string()))?;
    let mut fes = Fes { properties: Vec::new(), functions: Vec::new() };
    // Text of the PropertyName/ValueReference element being read, if inside one.
    let mut current: Option<String> = None;
    loop {
        let at = reader.position();
        match reader.next().map_err(|e| unreadable(FES, e.to_string()))? {
            Token::Start(_) | Token::Empty(_) if current.is_some() => {
                return Err(unreadable(FES, "an element inside a property name"));
            }
            Token::Start(start) => {
                check_fes_names(&start)?;
                if is_property_element(start.local_name().as_ref()) {
                    current = Some(String::new());
                }
                function_name(&start, at, &mut fes.functions)?;
            }
            Token::Empty(start) => {
                check_fes_names(&start)?;
                if is_property_element(start.local_name().as_ref()) {
                    return Err(unreadable(FES, "an empty property name"));
                }
                function_name(&start, at, &mut fes.functions)?;
            }
            Token::End(_) => {
                if let Some(text) = current.take() {
                    let name = fes_local_name(&text)?;
                    push_unique(&mut fes.properties, name);
                }
            }
            Token::Text(text) => {
                if let Some(current) = current.as_mut() {
                    let text =
                        text.decode().map_err(|e| unreadable(FES, format!("text at byte {at} is not UTF-8: {e}")))?;
                    current.push_str(&text);
                }
            }
            Token::CData(data) => {
                if let Some(current) = current.as_mut() {
                    let text =
                        data.decode().map_err(|e| unreadable(FES, format!("CDATA at byte {at} is not UTF-8: {e}")))?;
                    current.push_str(&text);
                }
            }
            Token::Ref { value, .. } => {
                if let Some(current) = current.as_mut() {
                    current.push(value);
                }
            }
            Token::Comment(_) | Token::Decl(_) | Token::PI(_) | Token::DocType(_) => {}
            Token::Eof => break,
        }
    }
    Ok(fes)
}

fn is_property_element(local: &[u8]) -> bool {
    local == b"PropertyName" || local == b"ValueReference"
}

/// Records the `name` of a FES `Function` element (a nameless one as `""`).
fn function_name(start: &BytesStart<'_>, at: u64, functions: &mut Vec<String>) -> Result<(), UnreadableFilter> {
    if start.local_name().as_ref() != b"Function" {
        return Ok(());
    }
    let mut name: Option<String> = None;
    for attr in start.attributes() {
        let attr = attr.map_err(|e| unreadable(FES, format!("a Function at byte {at}: {e}")))?;
        if attr.key.local_name().as_ref() == b"name" {
            if name.is_some() {
                return Err(unreadable(FES, format!("the Function at byte {at} names itself twice")));
            }
            let value =
                attr.unescape_value().map_err(|e| unreadable(FES, format!("a Function name at byte {at}: {e}")))?;
            name = Some(value.into_owned());
        }
    }
    functions.push(name.unwrap_or_default());
    Ok(())
}

/// The property a FES property reference names: a plain or prefixed name.
fn fes_local_name(text: &str) -> Result<&str, UnreadableFilter> {
    let text = text.trim();
    if text.is_empty() {
        return Err(unreadable(FES, "an empty property name"));
    }
    if let Some(bad) = text
        .chars()
        .find(|c| matches!(c, '/' | '@' | '[' | ']' | '(' | ')' | '*' | '=' | '|' | '$') || c.is_whitespace())
    {
        return Err(unreadable(
            FES,
            format!("property reference `{text}` is an XPath expression (`{bad}`); only `name` or `prefix:name` is accepted"),
        ));
    }
    let mut parts = text.split(':');
    let (first, second, third) = (parts.next(), parts.next(), parts.next());
    let local = match (first, second, third) {
        (Some(name), None, _) => name,
        (Some(prefix), Some(name), None) if !prefix.is_empty() => name,
        _ => return Err(unreadable(FES, format!("property reference `{text}` is not a qualified name"))),
    };
    if local.is_empty() || local.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '.') {
        return Err(unreadable(FES, format!("property reference `{text}` is not a qualified name")));
    }
    Ok(local)
}

// ---------------------------------------------------------------------------------
// CQL2 text / ECQL
// ---------------------------------------------------------------------------------

/// Property names referenced by a CQL2 text (or GeoServer ECQL) expression.
///
/// A small tokenizer, not a full parser. An identifier in operand position is a
/// property unless it is a literal keyword (`TRUE`, `FALSE`, `NULL`), a logical
/// keyword (`AND`, `OR`, `NOT`), a function or WKT name (followed by `(`), or a
/// distance unit in the last argument of `DWITHIN`/`BEYOND`. Words in operator
/// position (after an operand) must be known operators (`LIKE`, `IN`, `BETWEEN`,
/// `IS`, `DURING`, …). Double-quoted identifiers are always properties. Names are
/// returned as written (a prefix such as `ns:` is kept, so it is checked as is).
/// Anything else — unknown characters, unterminated quotes, unbalanced parentheses,
/// a backslash before a quote — is refused.
///
/// ```
/// use tilegate::ogc::common::expr::cql2_text_properties;
/// let names = cql2_text_properties(r#"name LIKE 'A%' AND S_INTERSECTS(geom, POINT(1 2)) AND "pop" > 5"#);
/// assert_eq!(names.unwrap(), vec!["name", "geom", "pop"]);
/// ```
pub fn cql2_text_properties(text: &str) -> Result<Vec<String>, UnreadableFilter> {
    let tokens = tokenize_cql(text)?;
    classify_cql(&tokens)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    /// A bare identifier, possibly hyphenated (`a-b`).
    Word(&'a str),
    /// A double-quoted identifier, unescaped.
    Quoted(String),
    /// A string or number literal.
    Literal,
    /// An ECQL date or date-time literal (`2006-11-30T01:30:00Z`).
    DateTime,
    LParen,
    RParen,
    Comma,
    /// An operator or other punctuation (`=`, `<=`, `/`, …).
    Op(&'a str),
}

static DATETIME: LazyLock<regex::Regex> = LazyLock::new(|| {
    // INVARIANT: a constant, valid pattern.
    regex::Regex::new(r"^\d{4}-\d{2}-\d{2}(T\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?").unwrap()
});

static NUMBER: LazyLock<regex::Regex> = LazyLock::new(|| {
    // INVARIANT: a constant, valid pattern.
    regex::Regex::new(r"^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?").unwrap()
});

static DURATION: LazyLock<regex::Regex> = LazyLock::new(|| {
    // INVARIANT: a constant, valid pattern.
    regex::Regex::new(r"^(?i)P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$").unwrap()
});

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_'
}

fn is_ident_part(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':')
}

fn tokenize_cql(text: &str) -> Result<Vec<Tok<'_>>, UnreadableFilter> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        // INVARIANT: `i < text.len()` and `i` is on a char boundary, so a char follows.
        let c = rest.chars().next().unwrap();
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        match c {
            '\'' | '"' => {
                let (body, len) = quoted(rest, c)?;
                if c == '\'' {
                    tokens.push(Tok::Literal);
                } else {
                    if body.is_empty() {
                        return Err(unreadable(CQL2_TEXT, format!("empty quoted identifier at offset {i}")));
                    }
                    tokens.push(Tok::Quoted(body));
                }
                i += len;
            }
            '(' => {
                tokens.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Tok::Comma);
                i += 1;
            }
            '0'..='9' | '.' => {
                let len = if let Some(m) = DATETIME.find(rest) {
                    tokens.push(Tok::DateTime);
                    m.end()
                } else if let Some(m) = NUMBER.find(rest) {
                    tokens.push(Tok::Literal);
                    m.end()
                } else {
                    return Err(unreadable(CQL2_TEXT, format!("unexpected `{c}` at offset {i}")));
                };
                if rest[len..].starts_with(is_ident_part) {
                    return Err(unreadable(CQL2_TEXT, format!("a number runs into a word at offset {i}")));
                }
                i += len;
            }
            '<' | '>' | '!' => {
                let two = bytes.get(i + 1).copied();
                let len = match (c, two) {
                    ('<', Some(b'=' | b'>')) | ('>', Some(b'=')) | ('!', Some(b'=')) => 2,
                    ('!', _) => return Err(unreadable(CQL2_TEXT, format!("unexpected `!` at offset {i}"))),
                    _ => 1,
                };
                tokens.push(Tok::Op(&text[i..i + len]));
                i += len;
            }
            '=' | '+' | '-' | '*' | '/' | '%' | '^' => {
                tokens.push(Tok::Op(&text[i..i + 1]));
                i += 1;
            }
            c if is_ident_start(c) => {
                let mut end = 0;
                let mut chars = rest.char_indices().peekable();
                while let Some((at, ch)) = chars.next() {
                    let joins =
                        ch == '-' && chars.peek().is_some_and(|&(_, next)| next.is_alphanumeric() || next == '_');
                    if is_ident_part(ch) || joins {
                        end = at + ch.len_utf8();
                    } else {
                        break;
                    }
                }
                tokens.push(Tok::Word(&rest[..end]));
                i += end;
            }
            other => {
                return Err(unreadable(CQL2_TEXT, format!("unexpected character `{other}` at offset {i}")));
            }
        }
    }
    Ok(tokens)
}

/// Reads a `'…'` or `"…"` token at the start of `rest`, where a doubled quote
/// stands for one quote. Returns the body and the token's length in bytes.
///
/// A backslash right before a quote is refused: dialects differ on whether it
/// escapes the quote, and a reader that disagrees with the upstream on where a
/// literal ends could miss a property hidden after it.
fn quoted(rest: &str, quote: char) -> Result<(String, usize), UnreadableFilter> {
    let mut body = String::new();
    let mut chars = rest.char_indices().skip(1).peekable();
    let mut previous = '\0';
    while let Some((at, ch)) = chars.next() {
        if ch == quote {
            if previous == '\\' {
                return Err(unreadable(CQL2_TEXT, "a backslash before a quote is ambiguous; double the quote instead"));
            }
            if chars.peek().is_some_and(|&(_, next)| next == quote) {
                chars.next();
                body.push(quote);
                previous = '\0';
                continue;
            }
            return Ok((body, at + 1));
        }
        body.push(ch);
        previous = ch;
    }
    let what = if quote == '\'' { "string literal" } else { "quoted identifier" };
    Err(unreadable(CQL2_TEXT, format!("unterminated {what}")))
}

const WKT_WORDS: &[&str] = &[
    "POINT",
    "LINESTRING",
    "POLYGON",
    "MULTIPOINT",
    "MULTILINESTRING",
    "MULTIPOLYGON",
    "GEOMETRYCOLLECTION",
    "ENVELOPE",
];

const DISTANCE_UNITS: &[&str] = &["METERS", "KILOMETERS", "FEET", "MILES", "NAUTICAL MILES", "STATUTE MILES"];

/// What may stand before `(` in CQL2 text / ECQL: keywords that take a parenthesised
/// list, WKT geometry literals, and the standard predicates and functions whose
/// arguments are operands the gateway reads (properties are collected and fenced).
/// Anything else (GeoServer's `property`, `env`, `querySingle`, `strEndsWith`, `exec`,
/// the CVE-2023-25157 and CVE-2024-36401 families) is refused: deny by default.
const CQL_CALLS: &[&str] = &[
    "NOT",
    "AND",
    "OR",
    "IN",
    "POINT",
    "LINESTRING",
    "POLYGON",
    "MULTIPOINT",
    "MULTILINESTRING",
    "MULTIPOLYGON",
    "GEOMETRYCOLLECTION",
    "ENVELOPE",
    "BBOX",
    "INTERSECTS",
    "DISJOINT",
    "CONTAINS",
    "WITHIN",
    "TOUCHES",
    "CROSSES",
    "OVERLAPS",
    "EQUALS",
    "RELATE",
    "DWITHIN",
    "BEYOND",
    "S_INTERSECTS",
    "S_DISJOINT",
    "S_CONTAINS",
    "S_WITHIN",
    "S_TOUCHES",
    "S_CROSSES",
    "S_OVERLAPS",
    "S_EQUALS",
    "T_AFTER",
    "T_BEFORE",
    "T_CONTAINS",
    "T_DISJOINT",
    "T_DURING",
    "T_EQUALS",
    "T_FINISHEDBY",
    "T_FINISHES",
    "T_INTERSECTS",
    "T_MEETS",
    "T_METBY",
    "T_OVERLAPPEDBY",
    "T_OVERLAPS",
    "T_STARTEDBY",
    "T_STARTS",
    "TIMESTAMP",
    "DATE",
    "INTERVAL",
    "A_EQUALS",
    "A_CONTAINS",
    "A_CONTAINEDBY",
    "A_OVERLAPS",
    "CASEI",
    "ACCENTI",
];

/// CQL2 JSON `op` values: the same standard set, in CQL2 JSON's spelling.
const CQL2_JSON_OPS: &[&str] = &[
    "and",
    "or",
    "not",
    "=",
    "<>",
    "<",
    ">",
    "<=",
    ">=",
    "like",
    "between",
    "in",
    "isnull",
    "casei",
    "accenti",
    "s_intersects",
    "s_disjoint",
    "s_contains",
    "s_within",
    "s_touches",
    "s_crosses",
    "s_overlaps",
    "s_equals",
    "t_after",
    "t_before",
    "t_contains",
    "t_disjoint",
    "t_during",
    "t_equals",
    "t_finishedby",
    "t_finishes",
    "t_intersects",
    "t_meets",
    "t_metby",
    "t_overlappedby",
    "t_overlaps",
    "t_startedby",
    "t_starts",
    "a_equals",
    "a_contains",
    "a_containedby",
    "a_overlaps",
];

/// Words that may follow an operand; after them an operand is expected.
const INFIX_WORDS: &[&str] =
    &["AND", "OR", "LIKE", "ILIKE", "BETWEEN", "IN", "IS", "DIV", "BEFORE", "AFTER", "DURING", "TEQUALS"];

struct Paren<'a> {
    /// The function (or WKT, or keyword) name before the parenthesis, upper case.
    function: Option<Cow<'a, str>>,
    argument: usize,
}

fn classify_cql(tokens: &[Tok<'_>]) -> Result<Vec<String>, UnreadableFilter> {
    let mut names = Vec::new();
    let mut parens: Vec<Paren<'_>> = Vec::new();
    let mut expect_operand = true;
    let mut i = 0;
    let word_at = |k: usize| match tokens.get(k) {
        Some(Tok::Word(w)) => Some(w.to_uppercase()),
        _ => None,
    };
    while i < tokens.len() {
        match &tokens[i] {
            Tok::Word(word) => {
                let upper = word.to_uppercase();
                let next = tokens.get(i + 1);
                if next == Some(&Tok::LParen) {
                    // A function call, a WKT literal, `IN (…)`, `NOT (…)`: the name is
                    // not a property; the arguments are scanned. Only functions whose
                    // arguments the gateway can judge are passed (see `CQL_CALLS`).
                    if !CQL_CALLS.contains(&upper.as_str()) {
                        return Err(unreadable(
                            CQL2_TEXT,
                            format!(
                                "function `{word}` is not passed through the gateway: functions can read properties by name, other layers or the server's environment; the standard spatial, temporal and array predicates, CASEI and ACCENTI are"
                            ),
                        ));
                    }
                    parens.push(Paren { function: Some(Cow::Owned(upper)), argument: 0 });
                    expect_operand = true;
                    i += 2;
                    continue;
                }
                if WKT_WORDS.contains(&upper.as_str()) {
                    match word_at(i + 1).as_deref() {
                        Some("EMPTY") => {
                            expect_operand = false;
                            i += 2;
                            continue;
                        }
                        Some("Z" | "M" | "ZM") if tokens.get(i + 2) == Some(&Tok::LParen) => {
                            parens.push(Paren { function: Some(Cow::Owned(upper)), argument: 0 });
                            expect_operand = true;
                            i += 3;
                            continue;
                        }
                        _ => {}
                    }
                }
                if is_distance_unit(&parens, &upper) {
                    expect_operand = false;
                } else if expect_operand {
                    match upper.as_str() {
                        "TRUE" | "FALSE" | "NULL" => expect_operand = false,
                        "NOT" | "AND" | "OR" => {}
                        "INCLUDE" | "EXCLUDE" if tokens.len() == 1 => expect_operand = false,
                        _ if is_duration(tokens, i, word) => expect_operand = false,
                        _ => {
                            push_unique(&mut names, word);
                            if word.contains('-') {
                                // A dialect that reads `a-b` as `a - b` would see two
                                // properties; report them too.
                                for part in word.split('-').filter(|p| p.starts_with(is_ident_start)) {
                                    push_unique(&mut names, part);
                                }
                            }
                            expect_operand = false;
                        }
                    }
                } else {
                    match upper.as_str() {
                        "NOT" => {}
                        "EXISTS" | "DOES-NOT-EXIST" => {}
                        "BEFORE"
                            if word_at(i + 1).as_deref() == Some("OR")
                                && word_at(i + 2).as_deref() == Some("DURING") =>
                        {
                            expect_operand = true;
                            i += 3;
                            continue;
                        }
                        "DURING"
                            if word_at(i + 1).as_deref() == Some("OR")
                                && word_at(i + 2).as_deref() == Some("AFTER") =>
                        {
                            expect_operand = true;
                            i += 3;
                            continue;
                        }
                        w if INFIX_WORDS.contains(&w) => expect_operand = true,
                        _ => {
                            return Err(unreadable(CQL2_TEXT, format!("unexpected word `{word}` after an operand")));
                        }
                    }
                }
            }
            Tok::Quoted(name) => {
                push_unique(&mut names, name);
                expect_operand = false;
            }
            Tok::Literal | Tok::DateTime => expect_operand = false,
            Tok::LParen => {
                parens.push(Paren { function: None, argument: 0 });
                expect_operand = true;
            }
            Tok::RParen => {
                if parens.pop().is_none() {
                    return Err(unreadable(CQL2_TEXT, "unbalanced `)`"));
                }
                expect_operand = false;
            }
            Tok::Comma => {
                let Some(paren) = parens.last_mut() else {
                    return Err(unreadable(CQL2_TEXT, "a `,` outside parentheses"));
                };
                paren.argument += 1;
                expect_operand = true;
            }
            Tok::Op(_) => expect_operand = true,
        }
        i += 1;
    }
    if !parens.is_empty() {
        return Err(unreadable(CQL2_TEXT, "unbalanced `(`"));
    }
    Ok(names)
}

/// A distance unit: only as the fourth argument of `DWITHIN`/`BEYOND`.
fn is_distance_unit(parens: &[Paren<'_>], upper: &str) -> bool {
    let Some(paren) = parens.last() else {
        return false;
    };
    let in_distance = matches!(paren.function.as_deref(), Some("DWITHIN" | "BEYOND" | "S_DWITHIN" | "S_BEYOND"));
    in_distance && paren.argument == 3 && DISTANCE_UNITS.iter().any(|u| u.split(' ').any(|part| part == upper))
}

/// An ISO 8601 duration that is one end of an ECQL period (`date/P1D`, `P1D/date`).
fn is_duration(tokens: &[Tok<'_>], i: usize, word: &str) -> bool {
    if !DURATION.is_match(word) || word.len() < 2 {
        return false;
    }
    let slash = Tok::Op("/");
    let after_date = i >= 2 && tokens[i - 1] == slash && tokens[i - 2] == Tok::DateTime;
    let before_date = tokens.get(i + 1) == Some(&slash) && tokens.get(i + 2) == Some(&Tok::DateTime);
    after_date || before_date
}

// ---------------------------------------------------------------------------------
// CQL2 JSON
// ---------------------------------------------------------------------------------

/// Property names referenced by a CQL2 JSON expression.
///
/// Every `{"property": "name"}` member anywhere in the document names a property,
/// including every one of duplicated keys (a JSON reader that keeps the first and
/// one that keeps the last must both be covered). A `property` member whose value
/// is not a string is refused.
///
/// ```
/// use tilegate::ogc::common::expr::cql2_json_properties;
/// let json = r#"{"op":"=","args":[{"property":"name"},"x"]}"#;
/// assert_eq!(cql2_json_properties(json).unwrap(), vec!["name"]);
/// ```
pub fn cql2_json_properties(json: &str) -> Result<Vec<String>, UnreadableFilter> {
    let mut names = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_str(json);
    Walk { names: &mut names }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|e| unreadable(CQL2_JSON, e.to_string()))?;
    Ok(names)
}

/// A CQL2 JSON `function` object: `name` must be one of the standard functions
/// (`casei`, `accenti`); its `args` are walked for properties like any expression.
struct Function<'n> {
    names: &'n mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Function<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Function<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CQL2 JSON function object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut named, mut seen_args) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "name" if !named => {
                    let name: Cow<'de, str> = map.next_value()?;
                    if !matches!(name.to_ascii_lowercase().as_str(), "casei" | "accenti") {
                        return Err(de::Error::custom(format!(
                            "function `{name}` is not passed through the gateway; CASEI and ACCENTI are"
                        )));
                    }
                    named = true;
                }
                "args" if !seen_args => {
                    map.next_value_seed(Walk { names: &mut *self.names })?;
                    seen_args = true;
                }
                other => return Err(de::Error::custom(format!("unexpected member `{other}` in a function"))),
            }
        }
        if !named {
            return Err(de::Error::custom("a function without a name"));
        }
        Ok(())
    }
}

/// The kinds of object a CQL2 JSON expression is built of (OGC 21-065 `cql2.json`
/// schema), by the members each may hold. An object's members must all belong to one
/// kind: an upstream picks the kind from the first member it looks for (pygeofilter
/// takes `type`+`coordinates` before `property` before `op`), so an object mixing
/// kinds, or holding a member no kind has (`Property`, `lower`, `filter`), could be
/// read as something the gateway did not judge. Every such object is refused.
const JSON_SHAPES: &[&[&str]] = &[
    &["op", "args"],
    &["property"],
    &["function"],
    &["type", "coordinates", "bbox"],
    &["type", "geometries", "bbox"],
    &["bbox"],
    &["date"],
    &["timestamp"],
    &["interval"],
];

/// Whether an object whose members are `seen` and then `key` is one of the
/// [`JSON_SHAPES`]. Members are compared exactly: JSON names are case-sensitive in
/// every CQL2 reader.
fn json_shape(seen: &[Cow<'_, str>], key: &str) -> Result<(), String> {
    if JSON_SHAPES.iter().any(|shape| shape.contains(&key) && seen.iter().all(|m| shape.contains(&m.as_ref()))) {
        return Ok(());
    }
    if JSON_SHAPES.iter().any(|shape| shape.contains(&key)) {
        let before = seen.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ");
        return Err(format!("member `{key}` cannot stand beside {before} in one object; write one object per operand"));
    }
    Err(format!(
        "unknown member `{key}`; a CQL2 JSON object is an operation (`op`, `args`), a `property`, a \
         `function`, a GeoJSON geometry, a `bbox`, a `date`, a `timestamp` or an `interval`"
    ))
}

/// Visits a JSON value without building it, collecting `property` members.
struct Walk<'n> {
    names: &'n mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CQL2 JSON expression")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk { names: &mut *self.names })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Parsers differ on which of two same-named members wins (see `crate::json`).
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if seen.contains(&key) {
                return Err(de::Error::custom(format!("member `{key}` is given twice in one object")));
            }
            json_shape(&seen, &key).map_err(de::Error::custom)?;
            seen.push(key.clone());
            if key == "op" {
                let op: Cow<'de, str> =
                    map.next_value().map_err(|_| de::Error::custom("an `op` member whose value is not a string"))?;
                if !CQL2_JSON_OPS.iter().any(|o| o.eq_ignore_ascii_case(&op)) {
                    return Err(de::Error::custom(format!(
                        "operator `{op}` is not passed through the gateway; the standard CQL2 operators are"
                    )));
                }
            } else if key == "function" {
                // The older CQL2 JSON form `{"function":{"name":"casei","args":[…]}}`.
                map.next_value_seed(Function { names: &mut *self.names })?;
            } else if key == "property" {
                let name: Cow<'de, str> = map
                    .next_value()
                    .map_err(|_| de::Error::custom("a `property` member whose value is not a string"))?;
                if name.is_empty() {
                    return Err(de::Error::custom("an empty `property` name"));
                }
                push_unique(self.names, &name);
            } else {
                map.next_value_seed(Walk { names: &mut *self.names })?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------
// KVP filter parameters (the OGC classifiers' entry points)
// ---------------------------------------------------------------------------------

/// Collects the properties named by `FILTER` (FES XML; WFS 2.0 parenthesised lists of
/// filters are read one by one) and `CQL_FILTER` (CQL2 text / ECQL). Whether these
/// parameters are allowed at all was decided by the allowlist before; here a filter
/// the readers cannot read is refused.
pub(crate) fn kvp_filter_properties(kvp: &Kvp, out: &mut Vec<String>) -> Result<(), OgcError> {
    let numbers = ["FILTER", "CQL_FILTER"].iter().filter_map(|k| kvp.get_nonempty(k)).map(count_numbers).sum();
    check_filter_size(numbers, "FILTER/CQL_FILTER")?;
    if let Some(filter) = kvp.get_nonempty("FILTER") {
        let trimmed = filter.trim();
        let groups: Vec<&str> = match trimmed.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            Some(inner) => inner.split(")(").collect(),
            None => vec![trimmed],
        };
        for group in groups {
            let fes = read_fes(group).map_err(|e| filter_error("FILTER", e))?;
            for function in &fes.functions {
                check_function_name(function, "FILTER")?;
            }
            for p in fes.properties {
                out.push(xml_property(&p, "FILTER")?);
            }
        }
    }
    if let Some(cql) = kvp.get_nonempty("CQL_FILTER") {
        check_text_functions(cql, "CQL_FILTER")?;
        out.extend(cql2_text_properties(cql).map_err(|e| filter_error("CQL_FILTER", e))?);
    }
    Ok(())
}

/// Re-writes a `FILTER` value (FES XML; a WFS 2.0 parenthesised list read filter by
/// filter, as [`kvp_filter_properties`] reads it) in the canonical form of
/// [`crate::ogc::common::xml::canonical`], before it is judged: the filter the gateway
/// reads is the one it forwards (decision 81).
pub(crate) fn canonical_kvp_filter(kvp: &mut Kvp) -> Result<(), OgcError> {
    let Some(filter) = kvp.get_nonempty("FILTER") else { return Ok(()) };
    let canonical = canonical_filter(filter)?;
    kvp.set("FILTER", &canonical);
    Ok(())
}

/// One `FILTER` value in canonical form (see [`canonical_kvp_filter`]).
pub(crate) fn canonical_filter(filter: &str) -> Result<String, OgcError> {
    let trimmed = filter.trim();
    let (groups, listed): (Vec<&str>, bool) = match trimmed.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => (inner.split(")(").collect(), true),
        None => (vec![trimmed], false),
    };
    let mut out = String::with_capacity(filter.len());
    for group in groups {
        let group = crate::ogc::common::xml::canonical(group.as_bytes(), false)
            .map_err(|e| filter_error("FILTER", unreadable(FES, e.to_string())))?;
        if listed {
            out.push('(');
            out.push_str(&group);
            out.push(')');
        } else {
            out.push_str(&group);
        }
    }
    Ok(out)
}

/// The most numbers a request's filters may hold together (coordinates, literals):
/// 2,048 two-dimensional positions. A spatial operator costs the server work per
/// feature and vertex (attacker round 10: one FES `Intersects` polygon of 30,000
/// vertices took MapServer 11 s of CPU, 300,000 about 57 s, against 0.12 s for five).
pub(crate) const MAX_FILTER_NUMBERS: usize = 4096;

/// The numbers in a filter's text: maximal runs of digits, signs, points and
/// exponents that hold a digit.
pub(crate) fn count_numbers(text: impl AsRef<[u8]>) -> usize {
    let mut count = 0;
    let mut digit = false;
    let mut in_run = false;
    for &b in text.as_ref() {
        if b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E') {
            in_run = true;
            digit |= b.is_ascii_digit();
        } else {
            count += usize::from(in_run && digit);
            (in_run, digit) = (false, false);
        }
    }
    count + usize::from(in_run && digit)
}

/// Refuses a filter holding more than [`MAX_FILTER_NUMBERS`] numbers.
pub(crate) fn check_filter_size(numbers: usize, param: &str) -> Result<(), OgcError> {
    if numbers > MAX_FILTER_NUMBERS {
        return Err(bad(format!(
            "{param}: the filter holds {numbers} numbers, more than {MAX_FILTER_NUMBERS} (a geometry of at most {} positions)",
            MAX_FILTER_NUMBERS / 2
        )));
    }
    Ok(())
}

/// Filter functions that read *other* layers (GeoServer's `querySingle`,
/// `queryCollection`): a filter naming them could reach data the path does not cover.
pub(crate) const CROSS_LAYER_FUNCTIONS: &[&str] = &["querysingle", "querycollection"];

/// Refuses a text filter (CQL, CQL2) that mentions a cross-layer function anywhere,
/// in any case. Blunt on purpose: a literal containing the name is refused too.
pub(crate) fn check_text_functions(text: &str, param: &str) -> Result<(), OgcError> {
    let lower = text.to_ascii_lowercase();
    match CROSS_LAYER_FUNCTIONS.iter().find(|f| lower.contains(*f)) {
        Some(f) => Err(unsupported(format!("{param}: the `{f}` function reads other layers and is refused"))),
        None => Ok(()),
    }
}

/// Converts an `UnreadableFilter` into a 400 naming the parameter.
pub(crate) fn filter_error(param: &str, err: UnreadableFilter) -> OgcError {
    bad(format!("{param}: {err}"))
}

/// FES `<Function>` elements are refused, whatever their name: GeoTools evaluates
/// them, and they read properties by name (`property`), other layers (`querySingle`),
/// the server's environment (`env`) or run what CVE-2024-36401 ran. The cross-layer
/// ones get their own message.
pub(crate) fn check_function_name(name: &str, param: &str) -> Result<(), OgcError> {
    let lower = name.to_ascii_lowercase();
    match CROSS_LAYER_FUNCTIONS.iter().find(|f| lower.contains(*f)) {
        Some(f) => Err(unsupported(format!("{param}: the `{f}` function reads other layers and is refused"))),
        None => Err(unsupported(format!(
            "{param}: filter function `{}` is refused; functions can read properties by name, other layers or the server's environment",
            crate::ogc::common::shown(name)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ogc::common::kvp::Dialect;

    /// A filter as a percent-encoded query value.
    fn query(filter: &str) -> String {
        percent_encoding::utf8_percent_encode(filter, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    fn fes(xml: &str) -> Result<Vec<String>, UnreadableFilter> {
        fes_properties(xml)
    }

    #[test]
    fn fes_collects_property_names_and_value_references_in_any_namespace() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"<ogc:Filter xmlns:ogc="http://www.opengis.net/ogc"><ogc:PropertyIsEqualTo>
                   <ogc:PropertyName>name</ogc:PropertyName><ogc:Literal>x</ogc:Literal>
                   </ogc:PropertyIsEqualTo></ogc:Filter>"#,
                &["name"],
            ),
            (
                r#"<fes:Filter xmlns:fes="http://www.opengis.net/fes/2.0"><fes:And>
                   <fes:PropertyIsLike wildCard="*" singleChar="." escapeChar="!"><fes:ValueReference>topp:state_name</fes:ValueReference><fes:Literal>N*</fes:Literal></fes:PropertyIsLike>
                   <fes:BBOX><fes:ValueReference>the_geom</fes:ValueReference><gml:Envelope xmlns:gml="http://www.opengis.net/gml/3.2"/></fes:BBOX>
                   <fes:PropertyIsEqualTo><fes:ValueReference>state_name</fes:ValueReference><fes:Literal>x</fes:Literal></fes:PropertyIsEqualTo>
                   </fes:And></fes:Filter>"#,
                &["state_name", "the_geom"],
            ),
            (
                "<Filter><PropertyIsEqualTo><Function name=\"strToLowerCase\"><PropertyName> pop </PropertyName></Function><Literal>x</Literal></PropertyIsEqualTo></Filter>",
                &["pop"],
            ),
            ("<Filter><PropertyName>na<!-- split -->me</PropertyName></Filter>", &["name"]),
            ("<Filter><PropertyName><![CDATA[secret]]></PropertyName></Filter>", &["secret"]),
            ("<Filter><PropertyName>&#115;ecret</PropertyName></Filter>", &["secret"]),
            ("<Filter><Literal>PropertyName</Literal></Filter>", &[]),
            ("<?xml version=\"1.0\"?><Filter/>", &[]),
        ];
        for (xml, expected) in cases {
            assert_eq!(fes(xml).unwrap(), *expected, "{xml}");
        }
    }

    #[test]
    fn fes_refuses_what_it_cannot_read_safely() {
        let cases = [
            "<Filter><PropertyName>a/b</PropertyName></Filter>",
            "<Filter><PropertyName>@gml:id</PropertyName></Filter>",
            "<Filter><ValueReference>a[1]</ValueReference></Filter>",
            "<Filter><ValueReference>*</ValueReference></Filter>",
            "<Filter><ValueReference>a:b:c</ValueReference></Filter>",
            "<Filter><ValueReference>:b</ValueReference></Filter>",
            "<Filter><ValueReference>a b</ValueReference></Filter>",
            "<Filter><PropertyName></PropertyName></Filter>",
            "<Filter><PropertyName/></Filter>",
            "<Filter><PropertyName><b>x</b></PropertyName></Filter>",
            "<!DOCTYPE x [<!ENTITY e \"secret\">]><Filter><PropertyName>&e;</PropertyName></Filter>",
            "<Filter><PropertyName>&e;</PropertyName></Filter>",
            "<Filter><PropertyName>name</Filter>",
            // Attacker round 8: names of the other kind, which MapServer reads as the operand.
            "<Filter><PropertyIsLike ValueReference=\"owner\"><ValueReference>name</ValueReference><Literal>a</Literal></PropertyIsLike></Filter>",
            "<Filter xmlns:x=\"urn:x\"><PropertyIsEqualTo x:PropertyName=\"owner\"><PropertyName>name</PropertyName><Literal>a</Literal></PropertyIsEqualTo></Filter>",
            "<Filter><PropertyIsEqualTo valueReference=\"owner\"><ValueReference>name</ValueReference><Literal>a</Literal></PropertyIsEqualTo></Filter>",
            "<Filter><PropertyIsEqualTo><ValueReference>name</ValueReference><srsName>a</srsName></PropertyIsEqualTo></Filter>",
            "<Filter>",
            "",
            "not xml",
        ];
        for xml in cases {
            assert!(fes(xml).is_err(), "{xml} should be refused");
        }
    }

    const BILLION_LAUGHS: &str = r#"<!DOCTYPE Filter [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;&l;&l;&l;&l;">]><Filter><PropertyName>&l2;</PropertyName></Filter>"#;

    #[test]
    fn fes_refuses_a_doctype_and_an_entity_bomb_through_the_hardened_reader() {
        let e = fes(BILLION_LAUGHS).unwrap_err();
        assert_eq!(e.to_string(), "cannot read the FES expression: DOCTYPE declarations are refused at byte 0");
        let e = fes("<Filter><PropertyName>&l2;</PropertyName></Filter>").unwrap_err();
        assert!(e.to_string().contains("the entity `&l2;` is not declared"), "{e}");
        // The KVP entry point says which parameter it was.
        let kvp = Kvp::parse(&format!("FILTER={}", query(BILLION_LAUGHS)), Dialect::WFS);
        let err = kvp_filter_properties(&kvp.unwrap(), &mut Vec::new()).unwrap_err();
        assert!(
            matches!(&err, OgcError::BadRequest(m) if m.starts_with("FILTER: cannot read the FES expression: DOCTYPE")),
            "{err:?}"
        );
    }

    #[test]
    fn fes_filter_with_a_second_root_or_text_after_it_is_refused() {
        // The FES reader accepted both before the readers were unified.
        assert!(fes("<Filter/><Filter><PropertyName>secret</PropertyName></Filter>").is_err());
        assert!(fes("<Filter><PropertyName>name</PropertyName></Filter>trailing").is_err());
        assert!(fes("<Filter><Literal a='&e;'>x</Literal></Filter>").is_err(), "an entity in an attribute");
    }

    #[test]
    fn cross_layer_functions_in_a_filter_parameter_are_refused_in_the_same_pass() {
        let filter = r#"<Filter><PropertyIsEqualTo><Function name="querySingle"><Literal>x</Literal></Function><PropertyName>name</PropertyName></PropertyIsEqualTo></Filter>"#;
        let kvp = Kvp::parse(&format!("FILTER={}", query(filter)), Dialect::WFS).unwrap();
        let err = kvp_filter_properties(&kvp, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, OgcError::NotSupported(_)), "{err:?}");
        let twice = r#"<Filter><Function name="a" fes:name="querySingle" xmlns:fes="x"/></Filter>"#;
        assert!(fes(twice).is_err(), "a Function named twice");
    }

    fn cql(text: &str) -> Vec<String> {
        cql2_text_properties(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn cql2_text_finds_properties() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("name = 'x'", &["name"]),
            ("name='it''s' AND pop>5", &["name", "pop"]),
            (r#""AND" = 1 OR "a""b" = 2"#, &["AND", "a\"b"]),
            ("'name' = 'x'", &[]),
            ("'a'' OR secret = ''b' = name", &["name"]),
            ("pop BETWEEN 1 AND 5", &["pop"]),
            ("pop NOT BETWEEN 1 AND 5", &["pop"]),
            ("name NOT LIKE 'a%' OR name ILIKE 'b'", &["name"]),
            ("kind IN ('a', 'b') AND NOT other IS NULL", &["kind", "other"]),
            ("kind NOT IN (1, 2)", &["kind"]),
            ("x IS NOT NULL", &["x"]),
            ("flag = TRUE OR flag = false", &["flag"]),
            ("S_INTERSECTS(geom, POLYGON((0 0, 1 0, 1 1, 0 0)))", &["geom"]),
            ("INTERSECTS(the_geom, MULTIPOINT((1 2), (3 4)))", &["the_geom"]),
            ("S_WITHIN(geom, ENVELOPE(0, 1, 2, 3))", &["geom"]),
            ("BBOX(geom, 1, 2, 3, 4, 'EPSG:4326')", &["geom"]),
            ("DWITHIN(geom, POINT(1 2), 10, meters)", &["geom"]),
            ("DWITHIN(geom, POINT(1 2), 10, statute miles)", &["geom"]),
            ("S_INTERSECTS(geom, POINT Z (1 2 3)) AND S_DISJOINT(geom, POINT EMPTY)", &["geom"]),
            ("point = 5", &["point"]),
            ("T_INTERSECTS(dtg, INTERVAL('2020-01-01', '..'))", &["dtg"]),
            ("T_AFTER(dtg, TIMESTAMP('2020-01-01T00:00:00Z'))", &["dtg"]),
            ("dtg AFTER 2006-11-30T01:30:00Z", &["dtg"]),
            ("dtg DURING 2006-11-30T00:30:00Z/2006-12-31T00:30:00+01:00", &["dtg"]),
            ("dtg DURING 2006-11-30T00:30:00Z/P1DT2H", &["dtg"]),
            ("dtg BEFORE OR DURING P10D/2006-11-30", &["dtg"]),
            ("dtg DURING OR AFTER 2006-11-30", &["dtg"]),
            ("a / P1D > 2", &["a", "P1D"]),
            ("CASEI(road_class) IN (CASEI('Οδός'), casei('Straße'))", &["road_class"]),
            ("ACCENTI(etat_vol) = accenti('débárquér')", &["etat_vol"]),
            ("A_CONTAINS(layer_ids, ('a', 'b'))", &["layer_ids"]),
            ("(a + b) * -2 >= c DIV 3 % d ^ 2", &["a", "b", "c", "d"]),
            ("a <> b AND c != d AND e <= f", &["a", "b", "c", "d", "e", "f"]),
            ("straße = 'x' AND _x1 = 1.5e3 AND y = .5", &["straße", "_x1", "y"]),
            ("ns:name = 'x'", &["ns:name"]),
            ("a.b = 1", &["a.b"]),
            ("a-b = 1", &["a-b", "a", "b"]),
            ("attr EXISTS AND other DOES-NOT-EXIST", &["attr", "other"]),
            ("INCLUDE", &[]),
            ("include = 1", &["include"]),
            ("meters = 1", &["meters"]),
            ("name = 'x' AND name = 'y'", &["name"]),
            ("NOT (a = 1)", &["a"]),
        ];
        for (text, expected) in cases {
            assert_eq!(cql(text), *expected, "{text}");
        }
    }

    #[test]
    fn cql2_text_refuses_what_it_cannot_read_safely() {
        let cases = [
            // Functions outside the standard set (deny by default): GeoServer evaluates
            // `property('owner')` as the hidden property `owner`.
            "property('owner') LIKE 'a%'",
            "strToLowerCase(name) = 'x'",
            "strEndsWith(name, 'x'') = true OR 1=1 --') = true",
            "env('secret') = 'x'",
            "exec(java.lang.Runtime.getRuntime(), 'id') = 1",
            "name = 'x",
            "\"name = 1",
            "name = 'a\\' OR secret = 1 OR b = ''",
            "\"a\\\"\" = 1",
            "a = 1)",
            "(a = 1",
            "f(a, b",
            "a = 1; DROP",
            "a = #1",
            "a = 10km",
            "a b",
            "a SECRET 1",
            "a = 1 ,",
            "\"\" = 1",
            "a = 1 & b",
            "a = 1 | b",
            "a = `b`",
        ];
        for text in cases {
            assert!(cql2_text_properties(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn cql2_json_finds_every_property_member() {
        let cases: &[(&str, &[&str])] = &[
            (r#"{"op":"=","args":[{"property":"name"},"x"]}"#, &["name"]),
            (
                r#"{"op":"and","args":[{"op":"s_intersects","args":[{"property":"geom"},{"type":"Point","coordinates":[1,2]}]},
                   {"op":"like","args":[{"function":{"name":"casei","args":[{"property":"road"}]}},"a%"]}]}"#,
                &["geom", "road"],
            ),
            (r#"{"op":"=","args":[{"property":"a"},{"property":"a"}]}"#, &["a"]),
            (r#"{"op":"=","args":[{"propert\u0079":"secret"},1]}"#, &["secret"]),
            (r#"{"op":"=","args":["property",{"date":"property"}]}"#, &[]),
            (r#"{"op":"=","args":[{"property":"na\"me"},1]}"#, &["na\"me"]),
            (
                r#"{"op":"and","args":[{"op":"s_intersects","args":[{"property":"g"},{"bbox":[0,0,1,1]}]},
                   {"op":"s_within","args":[{"property":"g"},{"bbox":[0,0,1,1],"type":"Polygon","coordinates":[]}]},
                   {"op":"s_within","args":[{"property":"g"},{"type":"GeometryCollection","geometries":[]}]},
                   {"op":"t_intersects","args":[{"property":"t"},{"interval":["2020-01-01",".."]}]},
                   {"op":">","args":[{"property":"d"},{"date":"2020-01-01"}]},
                   {"op":">","args":[{"property":"ts"},{"timestamp":"2020-01-01T00:00:00Z"}]}]}"#,
                &["g", "t", "d", "ts"],
            ),
            ("true", &[]),
        ];
        for (json, expected) in cases {
            assert_eq!(cql2_json_properties(json).unwrap(), *expected, "{json}");
        }
    }

    #[test]
    fn cql2_json_refuses_what_it_cannot_read() {
        let cases = [
            r#"{"op":"property","args":["owner"]}"#,
            r#"{"op":"=","args":[{"function":{"name":"property","args":["owner"]}},"x"]}"#,
            r#"{"op":"=","args":[{"function":{"args":[]}},"x"]}"#,
            r#"{"op":"=","args":[{"property":"first","property":"second"},1]}"#,
            r#"{"op":"=","args":[{"property":1},1]}"#,
            r#"{"op":"=","args":[{"property":{"property":"x"}},1]}"#,
            r#"{"op":"=","args":[{"property":""},1]}"#,
            r#"{"op":"=","args":[{"property":"a"},1]"#,
            // Members no CQL2 object has, and objects mixing kinds: an upstream picks
            // one kind by its own order of looking and may read what was not judged.
            r#"{"op":"=","args":[{"Property":"owner"},"x"]}"#,
            r#"{"op":"=","args":[{"PROPERTY":"owner"},"x"]}"#,
            r#"{"op":"=","args":[{"lower":{"property":"name"}},"x"]}"#,
            r#"{"filter":{"op":"=","args":[{"property":"name"},"x"]}}"#,
            r#"{"op":"=","args":[{"property":"name","op":"like"},"x"]}"#,
            r#"{"op":"=","args":[{"type":"Point","coordinates":[0,0],"property":"name"},"x"]}"#,
            r#"{"op":"s_intersects","args":[{"property":"geom"},{"type":"Point","coordinates":[0,0],"crs":{}}]}"#,
            r#"{"op":"=","args":[{"date":"2020-01-01","timestamp":"2020-01-01T00:00:00Z"},"x"]}"#,
            r#"{"op":"=","args":[{"property":"name"},"x"],"filter-lang":"cql2-json"}"#,
            r#"{"op":"="} {"#,
            "",
        ];
        for json in cases {
            assert!(cql2_json_properties(json).is_err(), "{json} should be refused");
        }
    }

    /// Regression: a repeated member is read differently by different parsers.
    #[test]
    fn cql2_json_with_a_repeated_member_is_unreadable() {
        let dup = r#"{"op":"=","args":[{"property":"name"},"a"],"args":[{"property":"owner"},"b"]}"#;
        assert!(cql2_json_properties(dup).is_err());
    }
}

//! Schema trimming: WFS DescribeFeatureType (XML Schema) and OGC API
//! `/queryables` and `/schema` (JSON Schema) lose the properties a token may not see.
//!
//! Both work on the bytes: what is kept is copied as the upstream wrote it, and only
//! the removed declarations disappear. Geometry declarations are always kept (a
//! property fence of `[]` means "geometry only").
//!
//! Pure code: no I/O, no logging. It must never pass a document it could not read
//! (an error instead), and never keep a declaration because it could not name it.

use std::ops::Range;

use quick_xml::events::BytesStart;
use quick_xml::name::{QName, ResolveResult};
use serde_json::Value;

use super::FilterError;
use crate::ogc::common::xml::{DocTypePolicy, Hardened, Token, XmlError};

/// GML property types that hold geometry (GML 2, 3.1, 3.2).
const GML_GEOMETRY_TYPES: &[&[u8]] = &[
    b"GeometryPropertyType",
    b"GeometricPrimitivePropertyType",
    b"PointPropertyType",
    b"MultiPointPropertyType",
    b"LineStringPropertyType",
    b"MultiLineStringPropertyType",
    b"CurvePropertyType",
    b"MultiCurvePropertyType",
    b"CompositeCurvePropertyType",
    b"PolygonPropertyType",
    b"MultiPolygonPropertyType",
    b"SurfacePropertyType",
    b"MultiSurfacePropertyType",
    b"CompositeSurfacePropertyType",
    b"PolyhedralSurfacePropertyType",
    b"TriangulatedSurfacePropertyType",
    b"TinPropertyType",
    b"SolidPropertyType",
    b"MultiSolidPropertyType",
    b"CompositeSolidPropertyType",
    b"MultiGeometryPropertyType",
    b"GeometryAssociationType",
    b"LinearRingPropertyType",
    b"BoxPropertyType",
    b"EnvelopePropertyType",
];

/// Removes from a DescribeFeatureType response the property declarations (`element`s
/// inside a feature type's `complexType`, named or anonymous, in any XSD prefix)
/// whose `name` is not allowed, keeping those typed with a GML geometry property
/// type. A declaration without a `name` (a `ref`) is removed; declarations nested
/// inside a property's own inline type go or stay with that property.
///
/// Top-level element declarations, imports and everything else are kept byte for
/// byte; a removed declaration takes its leading whitespace with it. The document is
/// read through the shared hardened reader (`ogc::common::xml::Hardened`): DOCTYPE
/// declarations, undeclared entities, a second root and deep nesting are refused.
///
/// ```
/// use tilegate::filter::trim_describe_feature_type;
/// let xsd = br#"<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:gml="http://www.opengis.net/gml">
/// <xsd:complexType name="roadsType"><xsd:sequence>
///   <xsd:element name="geom" type="gml:MultiLineStringPropertyType"/>
///   <xsd:element name="name" type="xsd:string"/>
///   <xsd:element name="secret" type="xsd:string"/>
/// </xsd:sequence></xsd:complexType></xsd:schema>"#;
/// let out = trim_describe_feature_type(xsd, &["name".to_string()]).unwrap();
/// let out = String::from_utf8(out).unwrap();
/// assert!(out.contains(r#"name="geom""#) && out.contains(r#"name="name""#) && !out.contains("secret"));
/// ```
pub fn trim_describe_feature_type(xml: &[u8], allowed: &[String]) -> Result<Vec<u8>, FilterError> {
    let mut reader = Hardened::new(xml, DocTypePolicy::Refuse).map_err(invalid)?;
    let mut out = Vec::with_capacity(xml.len());
    let mut copied = 0usize;
    // For each open element: is it a complexType.
    let mut open: Vec<bool> = Vec::new();
    loop {
        let before = to_usize(reader.position());
        let token = reader.next().map_err(invalid)?;
        let after = to_usize(reader.position());
        match token {
            Token::Start(ref start) | Token::Empty(ref start) => {
                let is_empty = matches!(token, Token::Empty(_));
                let local = start.local_name();
                // A property declaration is an element inside exactly one complexType:
                // the feature type, named or anonymous. Deeper ones belong to a property.
                let is_property = local.as_ref() == b"element" && open.iter().filter(|&&c| c).count() == 1;
                if is_property && !keep_declaration(&reader, start, allowed)? {
                    // A removed declaration is still read through: nothing it holds
                    // escapes the hardened reader's checks.
                    let end = if is_empty { after } else { to_usize(reader.skip_element().map_err(invalid)?) };
                    let mut from = before;
                    while from > copied && xml.get(from - 1).is_some_and(u8::is_ascii_whitespace) {
                        from -= 1;
                    }
                    out.extend_from_slice(xml.get(copied..from).unwrap_or_default());
                    copied = end;
                    continue;
                }
                if !is_empty {
                    open.push(local.as_ref() == b"complexType");
                }
            }
            Token::End(_) => {
                open.pop();
            }
            Token::Eof => break,
            _ => {}
        }
    }
    out.extend_from_slice(xml.get(copied..).unwrap_or_default());
    Ok(out)
}

/// The hardened reader's refusal, with its byte offset.
fn invalid(e: XmlError) -> FilterError {
    FilterError::InvalidXml { offset: e.offset, reason: e.kind.to_string() }
}

fn to_usize(position: u64) -> usize {
    usize::try_from(position).unwrap_or(usize::MAX)
}

/// Whether a property declaration stays: its name is allowed or it holds geometry.
fn keep_declaration(reader: &Hardened<'_>, start: &BytesStart<'_>, allowed: &[String]) -> Result<bool, FilterError> {
    let attribute = |name: &str| -> Result<Option<String>, FilterError> {
        let attr = start
            .try_get_attribute(name)
            .map_err(|e| FilterError::InvalidXml { offset: reader.position(), reason: e.to_string() })?;
        attr.map(|a| {
            a.unescape_value().map(|v| v.into_owned()).map_err(|e| FilterError::InvalidXml {
                offset: reader.position(),
                reason: format!("attribute `{name}`: {e}"),
            })
        })
        .transpose()
    };
    if let Some(name) = attribute("name")? {
        if allowed.contains(&name) {
            return Ok(true);
        }
    }
    let Some(type_name) = attribute("type")? else {
        return Ok(false);
    };
    let (namespace, local) = reader.resolve_element(QName(type_name.trim().as_bytes()));
    let in_gml = match namespace {
        ResolveResult::Bound(ns) => ns.as_ref().starts_with(b"http://www.opengis.net/gml"),
        // A server that forgot to declare the usual prefix.
        ResolveResult::Unknown(prefix) => prefix == b"gml",
        ResolveResult::Unbound => false,
    };
    Ok(in_gml && GML_GEOMETRY_TYPES.contains(&local.as_ref()))
}

/// Trims a JSON DescribeFeatureType (GeoServer's `outputFormat=application/json`:
/// `featureTypes[].properties[]`, each with a `name`) to the allowed properties and the
/// geometry ones (a `type` in the `gml:` namespace); any other JSON schema document goes
/// to [`trim_queryables`].
///
/// ```
/// use tilegate::filter::trim_json_schema;
/// let json = br#"{"featureTypes":[{"typeName":"states","properties":[{"name":"the_geom","type":"gml:MultiPolygon"},{"name":"STATE_NAME","type":"xsd:string"},{"name":"owner","type":"xsd:string"}]}]}"#;
/// let out = String::from_utf8(trim_json_schema(json, &["STATE_NAME".to_string()]).unwrap()).unwrap();
/// assert!(out.contains("the_geom") && out.contains("STATE_NAME") && !out.contains("owner"));
/// ```
pub fn trim_json_schema(json: &[u8], allowed: &[String]) -> Result<Vec<u8>, FilterError> {
    let mut doc: Value = crate::json::parse_strict(json).map_err(FilterError::InvalidSchemaJson)?;
    let Some(types) = doc.get_mut("featureTypes") else {
        return trim_queryables(json, allowed);
    };
    let types = types.as_array_mut().ok_or(FilterError::SchemaNotObject)?;
    for feature_type in types.iter_mut() {
        let Some(properties) = feature_type.get_mut("properties").and_then(Value::as_array_mut) else { continue };
        properties.retain(|p| {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let geometry = p.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("gml:"));
            geometry || allowed.iter().any(|a| a == name)
        });
    }
    serde_json::to_vec(&doc).map_err(FilterError::InvalidSchemaJson)
}

/// Trims an OGC API `/queryables` or `/schema` JSON Schema: removes the members of
/// the root `properties` object that are not allowed, and their names from the root
/// `required` array.
///
/// Geometry entries stay: the member named `geometry`, and any member whose schema
/// has a `format` starting with `geometry-`, a `$ref` to a geojson.org schema, or
/// `"x-ogc-role": "primary-geometry"`. Only the root object is trimmed (nested
/// schemas describe values of kept properties). Kept members are copied as written;
/// the trimmed object keeps the whitespace before each kept member.
///
/// ```
/// use tilegate::filter::trim_queryables;
/// let json = br#"{"type":"object","properties":{"geometry":{"$ref":"https://geojson.org/schema/Point.json"},"name":{"type":"string"},"secret":{"type":"string"}},"required":["name","secret"]}"#;
/// let out = trim_queryables(json, &["name".to_string()]).unwrap();
/// assert_eq!(out, br#"{"type":"object","properties":{"geometry":{"$ref":"https://geojson.org/schema/Point.json"},"name":{"type":"string"}},"required":["name"]}"#);
/// ```
pub fn trim_queryables(json: &[u8], allowed: &[String]) -> Result<Vec<u8>, FilterError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(json).map_err(FilterError::InvalidSchemaJson)?;
    let scan = Scan { s: json };
    let open = scan.ws(0);
    if scan.at(open) != b'{' {
        return Err(FilterError::SchemaNotObject);
    }
    let (root, _close) = scan.members(open)?;

    // Trim every root `properties` object first: it decides which names `required` keeps.
    let mut kept_names: Vec<String> = allowed.to_vec();
    let mut replacements: Vec<Option<Vec<u8>>> = vec![None; root.len()];
    for (member, replacement) in root.iter().zip(replacements.iter_mut()) {
        if member.key == "properties" && scan.at(member.value.start) == b'{' {
            let (properties, inner_close) = scan.members(member.value.start)?;
            let mut keep = Vec::with_capacity(properties.len());
            for property in &properties {
                let schema: Value =
                    serde_json::from_slice(&json[property.value.clone()]).map_err(FilterError::InvalidSchemaJson)?;
                let kept = allowed.contains(&property.key) || is_geometry_schema(&property.key, &schema);
                if kept && !kept_names.contains(&property.key) {
                    kept_names.push(property.key.clone());
                }
                keep.push(kept);
            }
            *replacement = Some(scan.rewrite_object(member.value.start, &properties, &keep, inner_close));
        }
    }
    for (member, replacement) in root.iter().zip(replacements.iter_mut()) {
        if member.key == "required" && scan.at(member.value.start) == b'[' {
            *replacement = Some(scan.rewrite_required(member.value.start, &kept_names)?);
        }
    }

    let mut out = Vec::with_capacity(json.len());
    out.extend_from_slice(&json[..=open]);
    for (member, replacement) in root.iter().zip(&replacements) {
        out.extend_from_slice(&json[member.lead..member.value.start]);
        match replacement {
            Some(bytes) => out.extend_from_slice(bytes),
            None => out.extend_from_slice(&json[member.value.clone()]),
        }
        out.push(b',');
    }
    if !root.is_empty() {
        out.pop();
    }
    let tail = root.last().map_or(open + 1, |m| m.value.end);
    out.extend_from_slice(&json[tail..]);
    Ok(out)
}

fn is_geometry_schema(key: &str, schema: &Value) -> bool {
    if key == "geometry" {
        return true;
    }
    let text = |name: &str| schema.get(name).and_then(Value::as_str);
    text("format").is_some_and(|f| f.starts_with("geometry-"))
        || text("$ref").is_some_and(|r| r.contains("geojson.org/schema/"))
        || text("x-ogc-role") == Some("primary-geometry")
}

/// One member of a JSON object, by byte ranges of the scanned document.
struct Member {
    /// Where the member starts, including its leading whitespace (after `{` or `,`).
    lead: usize,
    key: String,
    value: Range<usize>,
}

/// A span scanner over a document already validated as JSON.
///
/// INVARIANT: on a document serde_json accepted, every index it computes stays
/// within the document and ranges are ordered, so its slicing cannot panic.
struct Scan<'a> {
    s: &'a [u8],
}

impl Scan<'_> {
    /// The byte at `i`, or 0 past the end (never reached on valid JSON).
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    fn ws(&self, mut i: usize) -> usize {
        while matches!(self.at(i), b' ' | b'\t' | b'\n' | b'\r') {
            i += 1;
        }
        i
    }

    /// `i` is at an opening quote; returns the index after the closing one.
    fn string_end(&self, mut i: usize) -> usize {
        i += 1;
        while i < self.s.len() {
            match self.s[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        self.s.len()
    }

    /// `i` is at the start of a value; returns the index after it.
    fn value_end(&self, mut i: usize) -> usize {
        match self.at(i) {
            b'"' => self.string_end(i),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while i < self.s.len() {
                    match self.s[i] {
                        b'"' => {
                            i = self.string_end(i);
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return i + 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                self.s.len()
            }
            _ => {
                while i < self.s.len() && !matches!(self.s[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                i
            }
        }
    }

    /// The members of the object opening at `open`, and the index of its `}`.
    fn members(&self, open: usize) -> Result<(Vec<Member>, usize), FilterError> {
        let mut members = Vec::new();
        let mut i = open + 1;
        loop {
            let lead = i;
            i = self.ws(i);
            if self.at(i) == b'}' {
                return Ok((members, i));
            }
            let key_end = self.string_end(i);
            let key: String = serde_json::from_slice(&self.s[i..key_end]).map_err(FilterError::InvalidSchemaJson)?;
            let value_start = self.ws(self.ws(key_end) + 1);
            let value_end = self.value_end(value_start);
            members.push(Member { lead, key, value: value_start..value_end });
            i = self.ws(value_end);
            if self.at(i) == b',' {
                i += 1;
            } else {
                return Ok((members, i));
            }
        }
    }

    /// The object at `open` with only the members marked in `keep`.
    fn rewrite_object(&self, open: usize, members: &[Member], keep: &[bool], close: usize) -> Vec<u8> {
        let mut out = vec![b'{'];
        let mut first = true;
        for (member, _) in members.iter().zip(keep).filter(|(_, &k)| k) {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&self.s[member.lead..member.value.end]);
        }
        let tail = members.last().map_or(open + 1, |m| m.value.end);
        out.extend_from_slice(&self.s[tail..=close]);
        out
    }

    /// The `required` array at `open` with only the names in `kept`.
    fn rewrite_required(&self, open: usize, kept: &[String]) -> Result<Vec<u8>, FilterError> {
        let mut out = vec![b'['];
        let mut i = self.ws(open + 1);
        let mut first = true;
        while self.at(i) != b']' && i < self.s.len() {
            let end = self.value_end(i);
            let name: Option<String> = serde_json::from_slice(&self.s[i..end]).ok();
            if name.is_some_and(|n| kept.contains(&n)) {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(&self.s[i..end]);
            }
            i = self.ws(end);
            if self.at(i) == b',' {
                i = self.ws(i + 1);
            }
        }
        out.push(b']');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    const GEOSERVER_DFT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:gml="http://www.opengis.net/gml/3.2" xmlns:topp="http://www.openplans.org/topp" elementFormDefault="qualified" targetNamespace="http://www.openplans.org/topp">
  <xsd:import namespace="http://www.opengis.net/gml/3.2" schemaLocation="http://schemas.opengis.net/gml/3.2.1/gml.xsd"/>
  <xsd:complexType name="statesType">
    <xsd:complexContent>
      <xsd:extension base="gml:AbstractFeatureType">
        <xsd:sequence>
          <xsd:element maxOccurs="1" minOccurs="0" name="the_geom" nillable="true" type="gml:MultiSurfacePropertyType"/>
          <xsd:element maxOccurs="1" minOccurs="0" name="STATE_NAME" nillable="true" type="xsd:string"/>
          <xsd:element maxOccurs="1" minOccurs="0" name="PERSONS" nillable="true" type="xsd:double"/>
          <xsd:element name="ADDRESS">
            <xsd:complexType><xsd:sequence><xsd:element name="street" type="xsd:string"/></xsd:sequence></xsd:complexType>
          </xsd:element>
        </xsd:sequence>
      </xsd:extension>
    </xsd:complexContent>
  </xsd:complexType>
  <xsd:element name="states" substitutionGroup="gml:AbstractFeature" type="topp:statesType"/>
</xsd:schema>"#;

    fn declared(xml: &[u8]) -> Vec<String> {
        let text = String::from_utf8(xml.to_vec()).unwrap();
        text.split("name=\"").skip(1).map(|s| s.split('"').next().unwrap().to_string()).collect()
    }

    #[test]
    fn hidden_property_declarations_are_removed() {
        let out = trim_describe_feature_type(GEOSERVER_DFT.as_bytes(), &allowed(&["PERSONS"])).unwrap();
        assert_eq!(declared(&out), vec!["statesType", "the_geom", "PERSONS", "states"]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("<xsd:import namespace"));
        assert!(
            text.contains("<xsd:sequence>\n          <xsd:element maxOccurs=\"1\" minOccurs=\"0\" name=\"the_geom\"")
        );
        assert!(text.contains("type=\"xsd:double\"/>\n        </xsd:sequence>"), "{text}");
    }

    #[test]
    fn nested_declarations_go_and_stay_with_their_property() {
        let out = trim_describe_feature_type(GEOSERVER_DFT.as_bytes(), &allowed(&["ADDRESS"])).unwrap();
        assert_eq!(declared(&out), vec!["statesType", "the_geom", "ADDRESS", "street", "states"]);
        let out = trim_describe_feature_type(GEOSERVER_DFT.as_bytes(), &allowed(&["street"])).unwrap();
        assert_eq!(declared(&out), vec!["statesType", "the_geom", "states"]);
    }

    #[test]
    fn anonymous_feature_types_are_trimmed_too() {
        let xsd = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:gml="http://www.opengis.net/gml/3.2">
<xs:element name="roads" substitutionGroup="gml:AbstractFeature"><xs:complexType><xs:complexContent>
<xs:extension base="gml:AbstractFeatureType"><xs:sequence>
<xs:element name="geom" type="gml:CurvePropertyType"/><xs:element name="name" type="xs:string"/>
<xs:element ref="gml:name"/><xs:element name="secret" type="xs:string"/>
</xs:sequence></xs:extension></xs:complexContent></xs:complexType></xs:element></xs:schema>"#;
        let out = trim_describe_feature_type(xsd.as_bytes(), &allowed(&["name"])).unwrap();
        assert_eq!(declared(&out), vec!["roads", "geom", "name"]);
        assert!(!String::from_utf8(out).unwrap().contains("ref="));
    }

    #[test]
    fn an_empty_fence_keeps_geometry_only_in_any_prefix() {
        let mapserver = r#"<schema xmlns="http://www.w3.org/2001/XMLSchema" xmlns:g="http://www.opengis.net/gml">
<complexType name="roadsType"><complexContent><extension base="g:AbstractFeatureType"><sequence>
<element name="msGeometry" type="g:GeometryPropertyType" minOccurs="0"/>
<element name="pt" type=" g:PointPropertyType "/>
<element name="name" type="string"/>
<element name="fake" type="gml:PointPropertyType" xmlns:gml="http://example.com/not-gml"/>
<element name="ref" type="g:FeaturePropertyType"/>
</sequence></extension></complexContent></complexType>
<element name="roads" type="roadsType"/></schema>"#;
        let out = trim_describe_feature_type(mapserver.as_bytes(), &[]).unwrap();
        assert_eq!(declared(&out), vec!["roadsType", "msGeometry", "pt", "roads"]);
    }

    #[test]
    fn unchanged_when_everything_is_allowed() {
        let all = allowed(&["STATE_NAME", "PERSONS", "ADDRESS"]);
        assert_eq!(trim_describe_feature_type(GEOSERVER_DFT.as_bytes(), &all).unwrap(), GEOSERVER_DFT.as_bytes());
    }

    #[test]
    fn escaped_names_are_compared_unescaped() {
        let xsd = r#"<schema><complexType><sequence><element name="a&amp;b"/><element name="&#115;ecret"/></sequence></complexType></schema>"#;
        let out = trim_describe_feature_type(xsd.as_bytes(), &allowed(&["a&b"])).unwrap();
        assert_eq!(
            out,
            br#"<schema><complexType><sequence><element name="a&amp;b"/></sequence></complexType></schema>"#
        );
    }

    #[test]
    fn unreadable_xml_is_refused() {
        for xml in [
            "",
            "<schema>",
            "<schema><complexType></schema>",
            "<!DOCTYPE schema [<!ENTITY x \"y\">]><schema/>",
            "<schema><complexType><sequence><element name=\"&x;\"/></sequence></complexType></schema>",
            "<schema><complexType><sequence><element name=\"a\"><b></element></sequence></complexType></schema>",
        ] {
            assert!(trim_describe_feature_type(xml.as_bytes(), &[]).is_err(), "{xml}");
        }
    }

    #[test]
    fn describe_feature_type_refuses_a_doctype_and_an_entity_bomb_through_the_hardened_reader() {
        let bomb = r#"<!DOCTYPE schema [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;&l;&l;&l;&l;&l;">]><schema><complexType><sequence><element name="&l2;"/></sequence></complexType></schema>"#;
        let e = trim_describe_feature_type(bomb.as_bytes(), &[]).unwrap_err();
        assert_eq!(e.to_string(), "upstream schema is not readable XML at byte 0: DOCTYPE declarations are refused");
        let e = trim_describe_feature_type(br#"<schema><x a="&l2;"/></schema>"#, &[]).unwrap_err();
        assert!(matches!(&e, FilterError::InvalidXml { offset: 8, reason } if reason.contains("`&l2;`")), "{e}");
    }

    #[test]
    fn describe_feature_type_with_an_entity_inside_a_removed_declaration_is_refused() {
        // The removed declaration used to be skipped unread.
        let xsd = r#"<schema><complexType><sequence><element name="secret"><annotation>&e;</annotation></element></sequence></complexType></schema>"#;
        assert!(trim_describe_feature_type(xsd.as_bytes(), &[]).is_err());
        let two_roots =
            r#"<schema><complexType><sequence><element name="a"/></sequence></complexType></schema><schema/>"#;
        assert!(trim_describe_feature_type(two_roots.as_bytes(), &[]).is_err(), "a second root");
        let bom =
            "\u{feff}<schema><complexType><sequence>\n  <element name=\"secret\"/></sequence></complexType></schema>";
        let out = trim_describe_feature_type(bom.as_bytes(), &[]).unwrap();
        assert_eq!(out, "\u{feff}<schema><complexType><sequence></sequence></complexType></schema>".as_bytes());
    }

    const PYGEOAPI_QUERYABLES: &str = r#"{
  "type": "object",
  "title": "Large Lakes",
  "properties": {
    "geometry": {
      "$ref": "https://geojson.org/schema/Geometry.json"
    },
    "id": {
      "title": "id",
      "type": "integer"
    },
    "scalerank": {
      "title": "scalerank",
      "type": "integer"
    },
    "name": {
      "title": "name",
      "type": "string"
    }
  },
  "required": ["id", "name"],
  "$id": "http://localhost:5000/collections/lakes/queryables",
  "$schema": "http://json-schema.org/draft/2019-09/schema"
}"#;

    #[test]
    fn hidden_queryables_are_removed_and_the_rest_is_copied() {
        let out = trim_queryables(PYGEOAPI_QUERYABLES.as_bytes(), &allowed(&["name"])).unwrap();
        let expected = r#"{
  "type": "object",
  "title": "Large Lakes",
  "properties": {
    "geometry": {
      "$ref": "https://geojson.org/schema/Geometry.json"
    },
    "name": {
      "title": "name",
      "type": "string"
    }
  },
  "required": ["name"],
  "$id": "http://localhost:5000/collections/lakes/queryables",
  "$schema": "http://json-schema.org/draft/2019-09/schema"
}"#;
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn geometry_entries_are_recognized() {
        let json = r##"{"properties":{"geom":{"format":"geometry-point"},"where":{"x-ogc-role":"primary-geometry"},
            "shape":{"$ref":"https://geojson.org/schema/Polygon.json"},"geometry":{},"s":{"format":"date-time"},
            "t":{"$ref":"#/defs/x"}},"required":["geom","s","t"]}"##;
        let out = trim_queryables(json.as_bytes(), &[]).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        let mut keys: Vec<&String> = value["properties"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, vec!["geom", "geometry", "shape", "where"]);
        assert_eq!(value["required"], serde_json::json!(["geom"]));
    }

    #[test]
    fn escaped_and_odd_queryables_documents() {
        let cases: &[(&str, &[&str], &str)] = &[
            (r#"{"properties":{"n\u0061me":1,"x":2}}"#, &["name"], r#"{"properties":{"n\u0061me":1}}"#),
            (r#"{"properties":{}}"#, &["a"], r#"{"properties":{}}"#),
            (r#"{"properties":{"x":{}}}"#, &[], r#"{"properties":{}}"#),
            (
                r#"{ "properties" : { "x" : {} , "a" : {"properties":{"x":1}} } }"#,
                &["a"],
                r#"{ "properties" : { "a" : {"properties":{"x":1}} } }"#,
            ),
            (r#"{"type":"object"}"#, &[], r#"{"type":"object"}"#),
            (r#"{}"#, &[], r#"{}"#),
            (
                r#"{"required":["x","a"],"properties":{"x":{},"a":{}}}"#,
                &["a"],
                r#"{"required":["a"],"properties":{"a":{}}}"#,
            ),
            (r#"{"properties":null,"required":[]}"#, &[], r#"{"properties":null,"required":[]}"#),
        ];
        for (json, names, expected) in cases {
            let out = trim_queryables(json.as_bytes(), &allowed(names)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), *expected, "{json}");
        }
    }

    #[test]
    fn unreadable_json_is_refused() {
        assert!(matches!(trim_queryables(b"{", &[]), Err(FilterError::InvalidSchemaJson(_))));
        assert!(matches!(trim_queryables(b"{} {}", &[]), Err(FilterError::InvalidSchemaJson(_))));
        assert!(matches!(trim_queryables(b"[]", &[]), Err(FilterError::SchemaNotObject)));
    }
}

#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/<target>/ (run from the repository root).

The seeds are real requests and documents: the README's examples, the unit tests' bodies
and the capabilities fixtures in tests/fixtures/capabilities/. Each file is small (a few
KB, the largest a fixture), at most ~20 per target. Re-running rewrites the same files."""
import base64, gzip, os, struct, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures", "capabilities")

def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

def token(body_char):
    """A well-formed token (prefix tg, 43 base62 characters, CRC-32 checksum)."""
    body = (body_char * 43)[:43]
    v = zlib.crc32(body.encode())
    check = ""
    for _ in range(6):
        check = ALPHABET[v % 62] + check
        v //= 62
    return f"tg_{body}{check}"

# --- normalize_route --------------------------------------------------------------
for i, p in enumerate([
    "/ogc/xyz/osm/3/4/2.png", "/ogc/mvt/osm/3/4/2", "/ogc/wms/osm", "/ogc/wmts/osm/osm/GLOBAL_WEBMERCATOR/3/4/2.png",
    "/ogc/api/obs/collections/obs/items", "/ogc/api/obs/", "/path/osm/a%2cb/c", "/path/%6Fsm/x",
    "/account/security/accessToken/123", "/healthz", "/openapi.json", "/path/osm/%2e%2e/x", "/path//osm",
    "/ogc/wfs/roads/../x", "/path/osm/caf%C3%A9", "/path/osm/a%5Cb",
]):
    write("normalize_route", f"{i:02}", p)

# --- kvp ----------------------------------------------------------------------------
for i, q in enumerate([
    "service=WMS&&Layers=a%2Cb&styles&SRS=EPSG:4326",
    "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:3857&BBOX=0,0,1000,1000&WIDTH=256&HEIGHT=256&FORMAT=image/png",
    "LAYER%53=a+b", "TYPENAME=a&TYPENAMES=b", "SUBSET=Lat(1,2)&subset=Long(3,4)", "BBOX=1%2", "LAYER\u017f=a",
    "srs=EPSG%3A4326&Layers=a+b,c&x=1%2B1&empty",
    "SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&CQL_FILTER=name%3D%27a%27",
    "f=json&limit=10&bbox=5,50,6,51&name=caf%C3%A9",
]):
    write("kvp", f"{i:02}", q)

# --- classify -------------------------------------------------------------------------
GETMAP = "SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:3857&BBOX=0,0,1000,1000&WIDTH=256&HEIGHT=256&FORMAT=image/png"
for i, r in enumerate([
    f"GET wms ?{GETMAP}",
    "GET wms ?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=osm&QUERY_LAYERS=osm&STYLES=&SRS=EPSG:4326&BBOX=5,50,6,51&WIDTH=256&HEIGHT=256&X=10&Y=10&INFO_FORMAT=application/json&token=x",
    "GET wms ?SERVICE=WMS&REQUEST=GetCapabilities",
    "GET wms ?SERVICE=WMS&REQUEST=GetLegendGraphic&LAYER=osm&FORMAT=image/png",
    "GET wmts ?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&TILEMATRIXSET=GoogleMapsCompatible&TILEMATRIX=3&TILEROW=2&TILECOL=4&FORMAT=image/png",
    "GET wmts /osm/GoogleMapsCompatible/3/4/2.png",
    "GET wmts /1.0.0/WMTSCapabilities.xml",
    "GET wfs ?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads&COUNT=10&OUTPUTFORMAT=application/json&CQL_FILTER=name='a'",
    "GET wfs ?service=wfs&version=1.1.0&request=DescribeFeatureType&typename=topp:states",
    "POST wfs ?\ncontent-type: application/x-www-form-urlencoded\n\nSERVICE=WFS&VERSION=2.0.0&REQUEST=GetFeature&TYPENAMES=roads",
    "POST wfs ?\ncontent-type: text/xml\n\n<GetFeature version=\"2.0.0\" xmlns=\"http://www.opengis.net/wfs/2.0\"><Query typeNames=\"roads\"/></GetFeature>",
    "GET wcs ?SERVICE=WCS&VERSION=2.0.1&REQUEST=GetCoverage&COVERAGEID=dem&SUBSET=Long(5,6)&SUBSET=Lat(50,51)&FORMAT=image/tiff",
    "GET api /collections/obs/items?f=json&limit=10&bbox=5,50,6,51",
    "GET api /collections/obs/items?filter=name%3D%27a%27&filter-lang=cql2-text",
    "GET api /collections/lakes/tiles/WebMercatorQuad/3/2/4?f=mvt",
    "GET api /\naccept: application/json",
    "POST api /collections/obs/items\ncontent-type: application/geo+json\n\n{\"type\":\"Feature\",\"properties\":{\"name\":\"a\"},\"geometry\":null}",
    "GET mvt /3/4/2.pbf",
    "GET xyz /3/4/2.png",
]):
    write("classify", f"{i:02}", r)

# --- bbox_crs -------------------------------------------------------------------------
for i, s in enumerate([
    "EPSG:4326\n50,5,51,6", "CRS:84\n5,50,6,51", "EPSG:3857\n0,0,1000,1000", "urn:ogc:def:crs:EPSG:6.3:4326\n50,5,51,6",
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84\n170,-10,-170,10", "http://www.opengis.net/gml/srs/epsg.xml#4326\n5,50,6,51",
    "EPSG:900913\n-20037508.34,-20037508.34,20037508.34,20037508.34", "EPSG:27700\n0,0,1,1", "EPSG:4326\n1e308,1,1e309,2",
    " epsg:4326 \n 5 , 50 , 6 , 51 ",
]):
    write("bbox_crs", f"{i:02}", s)

# --- wfs_xml --------------------------------------------------------------------------
WFS = [
    """<?xml version="1.0" encoding="UTF-8"?>
<wfs:GetFeature service="WFS" version="2.0.0" outputFormat="application/json"
    xmlns:wfs="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0"
    xmlns:gml="http://www.opengis.net/gml/3.2">
  <wfs:Query typeNames="roads">
    <wfs:PropertyName>name</wfs:PropertyName>
    <fes:Filter><fes:And>
        <fes:BBOX><fes:ValueReference>geom</fes:ValueReference>
          <gml:Envelope srsName="urn:ogc:def:crs:EPSG::4326"><gml:lowerCorner>50 5</gml:lowerCorner><gml:upperCorner>51 6</gml:upperCorner></gml:Envelope>
        </fes:BBOX>
        <fes:PropertyIsEqualTo><fes:ValueReference>lanes</fes:ValueReference><fes:Literal>2 &amp; more</fes:Literal></fes:PropertyIsEqualTo>
    </fes:And></fes:Filter>
    <fes:SortBy><fes:SortProperty><fes:ValueReference>width</fes:ValueReference></fes:SortProperty></fes:SortBy>
  </wfs:Query>
</wfs:GetFeature>""",
    """<wfs:GetFeature version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc" xmlns:gml="http://www.opengis.net/gml">
  <wfs:Query typeName="ns:roads"><ogc:Filter><ogc:BBOX><ogc:PropertyName>ns:geom</ogc:PropertyName>
    <gml:Box srsName="EPSG:4326"><gml:coordinates>5,50 6,51</gml:coordinates></gml:Box>
  </ogc:BBOX></ogc:Filter></wfs:Query></wfs:GetFeature>""",
    """<GetFeature version="2.0.0" xmlns="http://www.opengis.net/wfs/2.0" xmlns:fes="http://www.opengis.net/fes/2.0" xmlns:gml="http://www.opengis.net/gml/3.2"><Query typeNames="roads"><fes:Filter><fes:Or><fes:BBOX><gml:Envelope srsName="EPSG:4326"><gml:lowerCorner>5 50</gml:lowerCorner><gml:upperCorner>6 51</gml:upperCorner></gml:Envelope></fes:BBOX><fes:PropertyIsNull><fes:ValueReference>a</fes:ValueReference></fes:PropertyIsNull></fes:Or></fes:Filter></Query></GetFeature>""",
    """<wfs:Transaction service="WFS" version="1.1.0" xmlns:wfs="http://www.opengis.net/wfs" xmlns:ogc="http://www.opengis.net/ogc" xmlns:gml="http://www.opengis.net/gml" xmlns:ns="http://example.com/ns">
  <wfs:Insert><ns:roads><ns:name>A</ns:name><ns:geom><gml:Point srsName="EPSG:4326"><gml:pos>5 50</gml:pos></gml:Point></ns:geom></ns:roads></wfs:Insert>
  <wfs:Update typeName="ns:rivers"><wfs:Property><wfs:Name>depth</wfs:Name><wfs:Value>3</wfs:Value></wfs:Property>
    <ogc:Filter><ogc:FeatureId fid="rivers.3"/></ogc:Filter></wfs:Update>
  <wfs:Delete typeName="ns:lakes"><ogc:Filter><ogc:PropertyIsEqualTo><ogc:PropertyName>owner</ogc:PropertyName><ogc:Literal>x</ogc:Literal></ogc:PropertyIsEqualTo></ogc:Filter></wfs:Delete>
</wfs:Transaction>""",
    """<wfs:GetCapabilities service="WFS" xmlns:wfs="http://www.opengis.net/wfs/2.0"/>""",
    """<DescribeFeatureType version="1.1.0" xmlns="http://www.opengis.net/wfs"><TypeName>roads</TypeName><TypeName>rivers</TypeName></DescribeFeatureType>""",
    """<LockFeature version="1.1.0" xmlns="http://www.opengis.net/wfs"><Lock typeName="roads"/></LockFeature>""",
    """<GetPropertyValue version="2.0.0" valueReference="owner" xmlns="http://www.opengis.net/wfs/2.0"><Query typeNames="roads"/></GetPropertyValue>""",
    """<GetFeatureWithLock version="2.0.0" xmlns="http://www.opengis.net/wfs/2.0"><Query typeNames="roads"/></GetFeatureWithLock>""",
    """<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><GetFeature version="2.0.0" xmlns="http://www.opengis.net/wfs/2.0"><Query typeNames="&e;"/></GetFeature>""",
    """<GetFeature version="2.0.0" xmlns="http://www.opengis.net/wfs/2.0"><StoredQuery id="x"/></GetFeature>""",
]
for i, b in enumerate(WFS):
    write("wfs_xml", f"{i:02}", b)

# --- filters --------------------------------------------------------------------------
for i, f in enumerate([
    "name = 'a'", "name = 'Main St' AND lanes > 2 OR NOT (owner IS NULL)", "\"quoted name\" LIKE 'a%'",
    "S_INTERSECTS(geom, POLYGON((5 50, 6 50, 6 51, 5 51, 5 50)))", "BBOX(geom, 5, 50, 6, 51)", "a IN (1, 2, 3) AND b BETWEEN 1 AND 2",
    "T_AFTER(t, TIMESTAMP('2020-01-01T00:00:00Z'))", "strToLowerCase(name) = 'x'", "querySingle('roads', 'name', 'INCLUDE') = 1",
    '{"op":"=","args":[{"property":"name"},"a"]}',
    '{"op":"and","args":[{"op":">","args":[{"property":"lanes"},2]},{"op":"s_intersects","args":[{"property":"geom"},{"type":"Point","coordinates":[5,50]}]}]}',
    '{"op":"like","args":[{"property":"name"},"a%"]}',
    '<Filter xmlns="http://www.opengis.net/fes/2.0"><PropertyIsEqualTo><ValueReference>ns:name</ValueReference><Literal>x</Literal></PropertyIsEqualTo></Filter>',
    '<ogc:Filter xmlns:ogc="http://www.opengis.net/ogc"><ogc:And><ogc:PropertyIsLike wildCard="*" singleChar="." escapeChar="!"><ogc:PropertyName>name</ogc:PropertyName><ogc:Literal>a*</ogc:Literal></ogc:PropertyIsLike><ogc:Not><ogc:PropertyIsNull><ogc:PropertyName>owner</ogc:PropertyName></ogc:PropertyIsNull></ogc:Not></ogc:And></ogc:Filter>',
    "<Filter><PropertyName>a/b</PropertyName></Filter>", "((((", "[[[[", "<a><a>",
]):
    write("filters", f"{i:02}", f)

# --- geojson_filter (first byte: the chunking seed) ------------------------------------
GJ = [
    '{"type":"FeatureCollection","features":[{"type":"Feature","id":1,"properties":{"name":"a","secret":1,"kept":[1,{"x":2}]},"geometry":{"type":"Point","coordinates":[22.5,40.9]}},{"type":"Feature","properties":{"name":"b","secret":"s"},"geometry":{"type":"Point","coordinates":[0,0]}}],"links":[{"href":"http://127.0.0.1:5000/x","rel":"self"}]}',
    '{"type":"Feature","properties":{"name":"a","sec\\u0072et":1},"geometry":null}',
    '{"type":"Feature","properties":null,"geometry":{"type":"Polygon","coordinates":[[[22,40],[23,40],[23,41],[22,41],[22,40]]]}}',
    '{"properties":{"secret":1},"features":[{"properties":{"name":"x","properties":{"secret":2}},"geometry":{"type":"LineString","coordinates":[[22,40],[23,41]]}}]}',
    '{"type":"FeatureCollection","numberMatched":2,"features":[{"type":"Feature","properties":{},"geometry":{"type":"MultiPoint","coordinates":[[22.6,41],[0,0]]}},{"type":"Feature","properties":{"kept":true},"geometry":{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[22.6,41]}]}}]}',
    '{"type":"Feature","geometry":{"type":"Point","coordinates":[22.6,41]},"geometry":{"type":"Point","coordinates":[0,0]},"properties":{"name":"dup"}}',
    '{"id":"obs","title":"no features here","links":[]}',
]
for i, g in enumerate(GJ):
    write("geojson_filter", f"{i:02}", bytes([i * 37 % 256]) + g.encode())
# Found by the fuzzer: a number beyond f64 (valid JSON, refused by serde_json's reader).
write("geojson_filter", "11-huge-exponent", b'J{"type":"Feature","goometry":{"type":"Polygon","coordin;tes":[[[16,401],[23,40],[23,41],[22E841],[22,40]]]}}')
with open(os.path.join(FIX, "ogcapi_items_pygeoapi.json"), "rb") as f:
    write("geojson_filter", "10-pygeoapi-items", b"\x07" + f.read())

# --- mvt (hand-encoded vector_tile.proto 2.1) --------------------------------------------
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(tag, wire, payload):
    key = varint(tag << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload

def packed(tag, nums):
    return field(tag, 2, b"".join(varint(n) for n in nums))

def value(kind, v):
    if kind == "s":
        return field(1, 2, v.encode())
    if kind == "d":
        return field(3, 1, struct.pack("<d", v))
    if kind == "i":
        return field(4, 0, varint(v))
    if kind == "b":
        return field(7, 0, varint(1 if v else 0))

def feature(tags, geom, gtype=1, fid=None):
    out = b""
    if fid is not None:
        out += field(1, 0, varint(fid))
    return out + packed(2, tags) + field(3, 0, varint(gtype)) + packed(4, geom)

def layer(name, keys, values, features, version=2, extent=4096):
    out = field(15, 0, varint(version)) + field(1, 2, name.encode())
    for f in features:
        out += field(2, 2, f)
    for k in keys:
        out += field(3, 2, k.encode())
    for v in values:
        out += field(4, 2, v)
    return out + field(5, 0, varint(extent))

def tile(*layers):
    return b"".join(field(3, 2, l) for l in layers)

t1 = tile(layer("roads", ["name", "secret"], [value("s", "Main St"), value("s", "s")],
                [feature([0, 0, 1, 1], [9, 2, 2], 1, 7)]))
t2 = tile(layer("roads", ["name", "kept", "secret", "lanes"],
                [value("s", "A"), value("d", 1.5), value("i", 3), value("b", True)],
                [feature([0, 0, 2, 2, 1, 1], [9, 50, 34, 10, 2, 2], 2, 1), feature([3, 2], [9, 0, 0], 1, 2),
                 feature([], [9, 4, 4, 18, 0, 16, 16, 0, 15], 3)]),
          layer("water", ["secret"], [value("s", "x")], [feature([0, 0], [9, 1, 1])]))
t3 = tile(layer("empty", [], [], []))
t4 = tile(layer("roads", ["name"], [value("s", "x")], [feature([0, 5], [9, 2, 2])]))  # value index out of range
write("mvt", "00-doc-example", t1)
write("mvt", "01-two-layers", t2)
write("mvt", "02-empty-layer", t3)
write("mvt", "03-bad-index", t4)
write("mvt", "04-gzip", gzip.compress(t2, mtime=0))

# --- capabilities ---------------------------------------------------------------------
for name in sorted(os.listdir(FIX)):
    if name == "ogcapi_items_pygeoapi.json":
        continue
    with open(os.path.join(FIX, name), "rb") as f:
        write("capabilities", name, f.read())
write("capabilities", "small-wms-130.xml", """<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" xmlns:xlink="http://www.w3.org/1999/xlink">
  <Service><OnlineResource xlink:href="http://127.0.0.1:9001/service?"/></Service>
  <!-- see http://127.0.0.1:9001/service?REQUEST=GetCapabilities -->
  <Capability><Layer><Title>root</Title>
    <Layer><Name>osm</Name><Title>OSM http://127.0.0.1:9001/service/x</Title><EX_GeographicBoundingBox><westBoundLongitude>-180</westBoundLongitude><eastBoundLongitude>180</eastBoundLongitude><southBoundLatitude>-85</southBoundLatitude><northBoundLatitude>85</northBoundLatitude></EX_GeographicBoundingBox></Layer>
    <Layer><Name>secret</Name><Title>Secret</Title></Layer>
  </Layer></Capability>
</WMS_Capabilities>""")
write("capabilities", "small-api.json", '{"links":[{"href":"http://127.0.0.1:5000/collections/obs?f=json","rel":"self"},{"href":"http://127.0.0.1:5000/collections/secret","rel":"item"},{"href":"http://127.0.0.1:5000/other/{x}","templated":true}],"collections":[{"id":"obs","extent":{"spatial":{"bbox":[[-180,-90,180,90]]}}},{"id":"secret"}],"note":"http%3A%2F%2F127.0.0.1%3A5000%2F"}')

# --- token_extract ----------------------------------------------------------------------
A, B = token("A"), token("B")
basic = base64.b64encode(f"user:{A}".encode()).decode()
for i, s in enumerate([
    f"authorization: Bearer {A}", f"x-access-token: {A}", f"authorization: Basic {basic}", f"?layers=a&token={A}&b=1",
    f"authorization: Bearer {A}\nx-access-token: {A}\n?TOKEN={A}", f"authorization: Bearer {A}\nx-access-token: {B}",
    f"?%74oken={B}", "authorization: Bearer nope", f"authorization: bearer  {A} ", f"host: example.org\naccept: */*\n?token={A}+",
]):
    write("token_extract", f"{i:02}", s)

# --- token_api_body ---------------------------------------------------------------------
for i, b in enumerate([
    '{"description":"partner app","scope":"ogc","validFor":86400,"accessList":[{"pathId":"osm","access":{"accessTier":"view","geoFence":{"tiles":["5/16/10"],"maxZoom":12},"propertyFence":["name"]}}]}',
    '{"description":"d","accessList":[{"pathId":"osm","access":{"accessTier":"view"}}]}',
    '{"description":"d","expiresAt":"2027-06-01T00:00:00Z","accessList":[{"pathId":"roads","access":{"accessTier":"viewPlus"}},{"pathId":"basemaps","access":{"accessTier":"fullView"}}]}',
    '{"description":"","accessList":[]}',
    '{"description":"d","validFor":1,"expiresAt":"2027-06-01T00:00:00Z","accessList":[{"pathId":"osm","access":{"accessTier":"edit","propertyFence":["a","a",""]}},{"pathId":"osm","access":{"accessTier":"view"}}]}',
    '{"description":"d","accessList":[{"pathId":"nope","access":{"accessTier":"view","geoFence":{"tiles":["30/1/1"]}}}],"extra":1}',
    '[1,2,3]', '{"description":"d","validFor":315360001,"accessList":[{"pathId":"osm","access":{"accessTier":"admin"}}]}',
]):
    write("token_api_body", f"{i:02}", b)

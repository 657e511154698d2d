#!/usr/bin/env python3
"""A real OGC client (OWSLib) for tilegate's end-to-end tests.

Subcommands (URL is the service endpoint, e.g. http://127.0.0.1:PORT/service,
or the gateway's URL in front of it):

  wms-layers URL                                 layer names, one per line
  wms-getmap URL LAYER BBOX SRS OUTFILE          writes the image to OUTFILE
  wmts-layers URL                                layer names, one per line
  wmts-tile URL LAYER TMS MATRIX ROW COL OUTFILE writes the tile to OUTFILE
  collections URL                                collection ids, one per line
  features URL COLLECTION [--bbox B] [--limit N] items as one JSON document
  feature URL COLLECTION ID                      one item as JSON
  wfs-types URL                                  feature type names, one per line
  wfs-features URL TYPENAME [--bbox B] [--format F] [--limit N] [--srsname S]
                                                 GetFeature; prints one JSON object
                                                 {"features": N, "properties": [...],
                                                  "ids": [...]} (GeoJSON or GML answer)

Options (anywhere after the subcommand):
  --header 'Name: value'   extra request header, given to OWSLib (headers=),
                           repeatable, e.g. --header 'Authorization: Bearer X'
  --basic USER:PASSWORD    HTTP Basic credentials, given to OWSLib (auth=)
  --version V              protocol version (WMS default 1.3.0, WMTS 1.0.0, WFS 2.0.0)

BBOX is 'minx,miny,maxx,maxy' in x/y (lon/lat) order for every SRS and
version: OWSLib itself swaps it to lat,lon on the wire for WMS 1.3.0 with a
lat/lon CRS such as EPSG:4326 (e.g. '0,45,10,55' EPSG:4326 is sent as
BBOX=45,0,55,10). For `features`, --bbox is minlon,minlat,maxlon,maxlat.
The WMS/WMTS GetMap/GetTile URL is the one the capabilities document
advertises (OWSLib's behaviour), not necessarily URL.

Every HTTP exchange OWSLib makes is logged on stderr as
    owslib_client: GET <url> -> <status> <content-type>
Exit status: 0 success; 2 the server refused: the last non-2xx status is
printed on stderr as a line 'HTTP <status>' (e.g. 'HTTP 403'); 3 the
response was not what was asked for (e.g. an XML exception instead of an
image); 1 any other error.
"""

import argparse
import json
import sys
import traceback

import requests

# ---------------------------------------------------------------------------
# Observe every HTTP exchange OWSLib makes (it uses requests underneath), so
# that the real status code survives OWSLib's own error handling, which often
# turns 401/403 into a ServiceException or a RuntimeError without the status.
# Headers are NOT injected here: they are passed to OWSLib via headers=.
# ---------------------------------------------------------------------------
EXCHANGES = []  # (method, url, status, content_type)
_orig_request = requests.Session.request


def _logged_request(self, method, url, *args, **kwargs):
    resp = _orig_request(self, method, url, *args, **kwargs)
    ctype = resp.headers.get("Content-Type", "")
    EXCHANGES.append((method.upper(), resp.url, resp.status_code, ctype))
    print("owslib_client: %s %s -> %d %s" % (method.upper(), resp.url,
                                              resp.status_code, ctype),
          file=sys.stderr, flush=True)
    return resp


requests.Session.request = _logged_request


class WrongContent(Exception):
    pass


def parse_headers(values):
    headers = {}
    for h in values or []:
        if ":" not in h:
            raise SystemExit("bad --header %r (want 'Name: value')" % h)
        name, value = h.split(":", 1)
        headers[name.strip()] = value.strip()
    return headers


def write_image(resp, outfile):
    """resp: the file-like object OWSLib returns (ResponseWrapper)."""
    info = resp.info()
    ctype = info.get("Content-Type", "") if info is not None else ""
    data = resp.read()
    if not ctype.startswith("image/"):
        snippet = data[:400].decode("utf-8", "replace")
        raise WrongContent("expected an image, got %r: %s" % (ctype, snippet))
    with open(outfile, "wb") as fh:
        fh.write(data)
    print("%s %d bytes -> %s" % (ctype, len(data), outfile))


def cmd_wms_layers(a, headers):
    from owslib.wms import WebMapService
    wms = WebMapService(a.url, version=a.version or "1.3.0", headers=headers, auth=auth_of(a))
    for name in wms.contents:
        print(name)


def cmd_wms_getmap(a, headers):
    from owslib.wms import WebMapService
    wms = WebMapService(a.url, version=a.version or "1.3.0", headers=headers, auth=auth_of(a))
    bbox = tuple(float(v) for v in a.bbox.split(","))
    w, h = (int(v) for v in a.size.lower().split("x"))
    img = wms.getmap(layers=[a.layer], styles=[""], srs=a.srs, bbox=bbox,
                     size=(w, h), format=a.format)
    write_image(img, a.outfile)


def cmd_wmts_layers(a, headers):
    from owslib.wmts import WebMapTileService
    wmts = WebMapTileService(a.url, version=a.version or "1.0.0", headers=headers, auth=auth_of(a))
    for name in wmts.contents:
        print(name)


def cmd_wmts_tile(a, headers):
    from owslib.wmts import WebMapTileService
    wmts = WebMapTileService(a.url, version=a.version or "1.0.0", headers=headers, auth=auth_of(a))
    tile = wmts.gettile(layer=a.layer, tilematrixset=a.tms, tilematrix=a.matrix,
                        row=int(a.row), column=int(a.col), format=a.format)
    write_image(tile, a.outfile)


def features_api(a, headers):
    from owslib.ogcapi.features import Features
    return Features(a.url, headers=headers, auth=auth_of(a))


def cmd_collections(a, headers):
    api = features_api(a, headers)
    for cid in api.feature_collections():
        print(cid)


def cmd_features(a, headers):
    api = features_api(a, headers)
    kwargs = {}
    if a.bbox:
        kwargs["bbox"] = [float(v) for v in a.bbox.split(",")]
    if a.limit is not None:
        kwargs["limit"] = a.limit
    items = api.collection_items(a.collection, **kwargs)
    print(json.dumps(items))


def cmd_feature(a, headers):
    api = features_api(a, headers)
    print(json.dumps(api.collection_item(a.collection, a.id)))


def auth_of(a):
    if not a.basic:
        return None
    from owslib.util import Authentication
    user, _, password = a.basic.partition(":")
    return Authentication(username=user, password=password)


def wfs_service(a, headers):
    from owslib.wfs import WebFeatureService
    return WebFeatureService(a.url, version=a.version or "2.0.0", headers=headers,
                             auth=auth_of(a))


def cmd_wfs_types(a, headers):
    for name in wfs_service(a, headers).contents:
        print(name)


def summarise_gml(data):
    """Feature count, property element names and gml:ids of a GML FeatureCollection."""
    from lxml import etree
    root = etree.fromstring(data)
    if not etree.QName(root).localname == "FeatureCollection":
        raise WrongContent("expected a wfs:FeatureCollection, got %s: %s"
                           % (root.tag, data[:300].decode("utf-8", "replace")))
    features, props, ids = 0, set(), []
    for member in root:
        local = etree.QName(member).localname
        if local not in ("member", "featureMember", "featureMembers"):
            continue
        for feature in member:
            if not isinstance(feature.tag, str):
                continue
            features += 1
            for k, v in feature.attrib.items():
                if etree.QName(k).localname in ("id", "fid"):
                    ids.append(v)
            for child in feature:
                if isinstance(child.tag, str):
                    name = etree.QName(child).localname
                    if name not in ("boundedBy", "msGeometry"):
                        props.add(name)
    return {"features": features, "properties": sorted(props), "ids": ids}


def cmd_wfs_features(a, headers):
    wfs = wfs_service(a, headers)
    kwargs = {"typename": [a.typename]}
    if a.format:
        kwargs["outputFormat"] = a.format
    if a.bbox:
        kwargs["bbox"] = tuple(float(v) for v in a.bbox.split(","))
    if a.limit is not None:
        kwargs["maxfeatures"] = a.limit
    if a.srsname:
        kwargs["srsname"] = a.srsname
    data = wfs.getfeature(**kwargs).read()
    if isinstance(data, str):
        data = data.encode("utf-8")
    if data.lstrip()[:1] == b"{":
        doc = json.loads(data)
        if doc.get("type") != "FeatureCollection":
            raise WrongContent("expected a FeatureCollection: %s" % data[:300])
        props = sorted({k for f in doc["features"] for k in (f.get("properties") or {})})
        ids = [f.get("id") or (f.get("properties") or {}).get("id") for f in doc["features"]]
        print(json.dumps({"features": len(doc["features"]), "properties": props, "ids": ids}))
    else:
        print(json.dumps(summarise_gml(data)))


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--header", action="append", default=[],
                        help="'Name: value', repeatable")
    common.add_argument("--version", default=None, help="protocol version")
    common.add_argument("--basic", default=None, help="USER:PASSWORD for HTTP Basic")

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("wms-layers", parents=[common])
    p.add_argument("url")
    p.set_defaults(func=cmd_wms_layers)

    p = sub.add_parser("wms-getmap", parents=[common])
    for n in ("url", "layer", "bbox", "srs", "outfile"):
        p.add_argument(n)
    p.add_argument("--size", default="256x256")
    p.add_argument("--format", default="image/png")
    p.set_defaults(func=cmd_wms_getmap)

    p = sub.add_parser("wmts-layers", parents=[common])
    p.add_argument("url")
    p.set_defaults(func=cmd_wmts_layers)

    p = sub.add_parser("wmts-tile", parents=[common])
    for n in ("url", "layer", "tms", "matrix", "row", "col", "outfile"):
        p.add_argument(n)
    p.add_argument("--format", default="image/png")
    p.set_defaults(func=cmd_wmts_tile)

    p = sub.add_parser("collections", parents=[common])
    p.add_argument("url")
    p.set_defaults(func=cmd_collections)

    p = sub.add_parser("features", parents=[common])
    p.add_argument("url")
    p.add_argument("collection")
    p.add_argument("--bbox", default=None, help="minlon,minlat,maxlon,maxlat")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("feature", parents=[common])
    p.add_argument("url")
    p.add_argument("collection")
    p.add_argument("id")
    p.set_defaults(func=cmd_feature)

    p = sub.add_parser("wfs-types", parents=[common])
    p.add_argument("url")
    p.set_defaults(func=cmd_wfs_types)

    p = sub.add_parser("wfs-features", parents=[common])
    p.add_argument("url")
    p.add_argument("typename")
    p.add_argument("--bbox", default=None, help="minx,miny,maxx,maxy (OWSLib's order)")
    p.add_argument("--format", default=None, help="OUTPUTFORMAT, default the server's GML")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--srsname", default=None, help="SRSNAME, e.g. urn:ogc:def:crs:EPSG::4326")
    p.set_defaults(func=cmd_wfs_features)
    return ap


def main():
    a = build_parser().parse_args()
    headers = parse_headers(a.header)
    try:
        a.func(a, headers)
    except Exception as e:  # noqa: BLE001 - report whatever OWSLib raised
        refused = [x for x in EXCHANGES if not 200 <= x[2] < 300]
        msg = str(e).strip().replace("\n", " ")[:500]
        if refused:
            print("HTTP %d" % refused[-1][2], file=sys.stderr)
            print("owslib_client: %s: %s" % (type(e).__name__, msg), file=sys.stderr)
            return 2
        print("owslib_client: %s: %s" % (type(e).__name__, msg), file=sys.stderr)
        if isinstance(e, WrongContent):
            return 3
        if not isinstance(e, requests.RequestException):
            traceback.print_exc(limit=-4, chain=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fixtures for bench/run.

fixtures.py geojson BYTES   a GeoJSON FeatureCollection of about BYTES bytes (points with properties)
fixtures.py features BYTES BASE
                            an OGC API Features items page of about BYTES bytes for the filter figure
                            of bench/run-x: LineStrings of 8 vertices with 10 properties each, about
                            60 % of them inside the fence tile 5/16/10; its links name BASE (the
                            upstream's OGC API landing page URL)
fixtures.py fence1k         `--tile Z/X/Y` arguments for a 1000-tile fence at zoom 12: a 40x25 block
                            that contains the benchmark tile 14/8292/5170 (its z12 ancestor is 2073/1292)
"""
import json
import sys


def geojson(size):
    features, i = [], 0
    while True:
        features.append({
            "type": "Feature",
            "id": i,
            "geometry": {"type": "Point", "coordinates": [5.0 + i * 0.001, 52.0 + i * 0.0005]},
            "properties": {"name": f"feature {i}", "kind": "poi", "height": i % 50, "secret": f"s{i}"},
        })
        text = json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":"))
        if len(text) >= size:
            return text
        i += 1


def features(size, base):
    """Roads-like features: 10 properties (a token keeps 3), 8-vertex lines spread over
    lon 4..16, lat 50..55, so a fence of tile 5/16/10 (lon 0..11.25, lat 48.9..55.8) keeps
    about 60 % of them and every geometry is read and tested."""
    head = {"type": "FeatureCollection", "numberReturned": 0, "timeStamp": "2026-12-02T00:00:00Z",
            "links": [{"href": f"{base}/collections/pois/items?f=json", "rel": "self", "type": "application/geo+json"},
                      {"href": f"{base}/collections/pois/items?f=json&offset=1000", "rel": "next",
                       "type": "application/geo+json"}]}
    kinds = ["primary", "secondary", "residential", "service", "track"]
    parts, total, i = [], 200, 0
    while total < size:
        lon, lat = 4.0 + (i * 0.37) % 12.0, 50.0 + (i * 0.23) % 5.0
        coords = [[round(lon + k * 0.0007, 6), round(lat + k * 0.0004, 6)] for k in range(8)]
        f = {"type": "Feature", "id": i,
             "geometry": {"type": "LineString", "coordinates": coords},
             "properties": {"name": f"Road {i}", "kind": kinds[i % 5], "class": i % 7, "height": None,
                            "lanes": 1 + i % 4, "surface": "asphalt", "oneway": i % 2 == 0,
                            "ref": f"N{i % 900}", "secret": f"owner-{i * 7919 % 100003}",
                            "note": "surveyed 2026, \"verified\" by the field team"}}
        text = json.dumps(f, separators=(",", ":"))
        parts.append(text)
        total += len(text) + 1
        i += 1
    head["numberReturned"] = len(parts)
    doc = json.dumps(head, separators=(",", ":"))
    return doc[:-1] + ',"features":[' + ",".join(parts) + "]}"


def main():
    if sys.argv[1:2] == ["geojson"]:
        sys.stdout.write(geojson(int(sys.argv[2])))
    elif sys.argv[1:2] == ["features"]:
        sys.stdout.write(features(int(sys.argv[2]), sys.argv[3]))
    elif sys.argv[1:2] == ["fence1k"]:
        print(" ".join(f"--tile 12/{x}/{y}" for x in range(2053, 2093) for y in range(1280, 1305)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

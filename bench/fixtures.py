#!/usr/bin/env python3
"""Fixtures for bench/run.

fixtures.py geojson BYTES   a GeoJSON FeatureCollection of about BYTES bytes (points with properties)
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


def main():
    if sys.argv[1:2] == ["geojson"]:
        sys.stdout.write(geojson(int(sys.argv[2])))
    elif sys.argv[1:2] == ["fence1k"]:
        print(" ".join(f"--tile 12/{x}/{y}" for x in range(2053, 2093) for y in range(1280, 1305)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

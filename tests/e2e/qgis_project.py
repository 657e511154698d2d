#!/usr/bin/env python3
"""Write a QGIS Server project for tilegate's end-to-end tests.

    /usr/bin/python3 qgis_project.py DIR      writes DIR/project.qgs (layers places, zones)

Run with Debian's /usr/bin/python3 (python3-qgis). The layers come from places.geojson
(copied into DIR): `places` (the Points) and `zones` (the Polygons), published over WMS,
WFS (with WFS-T) and OGC API Features, in EPSG:4326 and EPSG:3857.
"""

import os
import shutil
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from qgis.core import QgsApplication, QgsProject, QgsVectorLayer  # noqa: E402


def main(directory):
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(directory, "places.geojson")
    shutil.copyfile(os.path.join(here, "places.geojson"), src)
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    layers = []
    for name, geometry in (("places", "Point"), ("zones", "Polygon")):
        layer = QgsVectorLayer(f"{src}|geometrytype={geometry}", name, "ogr")
        if not layer.isValid():
            sys.exit(f"qgis_project.py: layer {name} is not valid")
        project.addMapLayer(layer)
        layers.append(layer)
    ids = [layer.id() for layer in layers]
    project.writeEntry("WMSServiceCapabilities", "/", True)
    project.writeEntry("WMSServiceTitle", "/", "tilegate e2e")
    project.writeEntry("WFSLayers", "/", ids)
    for action in ("Update", "Insert", "Delete"):
        project.writeEntry("WFSTLayers", action, ids)
    for layer_id in ids:
        project.writeEntry("WFSLayersPrecision", "/" + layer_id, 8)
    project.writeEntry("WMSCrsList", "/", ["EPSG:4326", "EPSG:3857"])
    project.writeEntry("WMSExtent", "/", ["-180", "-85", "180", "85"])
    out = os.path.join(directory, "project.qgs")
    if not project.write(out):
        sys.exit("qgis_project.py: the project could not be written")
    print(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

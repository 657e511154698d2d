#!/usr/bin/python3
"""QGIS, headless, as a real client for tilegate's end-to-end tests.

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/e2e/qgis_client.py JOBS.json

Run with Debian's /usr/bin/python3 (python3-qgis belongs to it, not to a venv).
JOBS.json is a JSON array of layer jobs; the answer on stdout is one JSON result
per line, one per job, in the same order, each written as soon as its job is done
(so a crash names the job it happened in: its name is on stderr before it runs). One QGIS start-up serves every job
(QgsApplication takes a second or two to initialise).

A job:
    {"name": "wms-view",            free text, echoed back
     "provider": "wms" | "WFS" | "OAPIF",
     "uri": "...",                  the data source URI exactly as QGIS's dialogs
                                    write it (see the README "Clients" section)
     "render": "/tmp/out.png",      optional: render the layer to this PNG
     "extent": [xmin, ymin, xmax, ymax],  optional: the map extent to render, in
                                    the layer's CRS (default: the layer's extent)
     "size": 256,                   optional: the square image size in pixels
     "background": "#ffffff",       optional: the map's background colour (where
                                    no layer pixel is drawn, or a drawn one is transparent)
     "features": true}              optional: iterate the features (vector layers)

A result:
    {"name", "valid": bool, "error": "...",   why the layer is invalid (QGIS log messages)
     "features": N | null,                     features QGIS iterated (vector, features=true)
     "fields": [...],                          field names (vector layers)
     "crs": "EPSG:...", "extent": [...],
     "rendered": {"path", "painted": N, "width", "height"} | null,
                                               painted = pixels that are not the background
     "messages": [...],                        QGIS message log lines during the job
     "http": [[status, url], ...]}             every HTTP exchange QGIS made for the job

Exit status 0 when every job ran (whatever the layers' validity: the caller asserts),
1 on a harness error.
"""

import json
import os
import sys
import time

T0 = time.monotonic()

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsCredentialsNone,
    QgsMapRendererSequentialJob,
    QgsMapSettings,
    QgsNetworkAccessManager,
    QgsRasterLayer,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402
from qgis.PyQt.QtNetwork import QNetworkRequest  # noqa: E402

MESSAGES = []
HTTP = []


def on_message(message, tag, level):
    MESSAGES.append("%s: %s" % (tag, message))


def on_finished(reply):
    # QgsNetworkReplyContent
    status = reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
    HTTP.append([int(status) if status is not None else 0, reply.request().url().toString()])


def painted_pixels(image, background):
    """Pixels that are not the background colour."""
    bg = background.rgb()
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            if image.pixel(x, y) != bg:
                count += 1
    return count


def settle():
    """Deliver queued signals (network replies finish on worker threads)."""
    for _ in range(5):
        QgsApplication.processEvents()


def run_job(job):
    settle()
    del MESSAGES[:]
    del HTTP[:]
    started = time.monotonic()
    provider = job["provider"]
    name = job.get("name", provider)
    if provider in ("WFS", "OAPIF"):
        layer = QgsVectorLayer(job["uri"], name, provider)
    else:
        layer = QgsRasterLayer(job["uri"], name, provider)
    result = {
        "name": name,
        "valid": layer.isValid(),
        "error": "",
        "features": None,
        "fields": [],
        "crs": None,
        "extent": None,
        "rendered": None,
    }
    if not layer.isValid():
        # Not layer.error(): for an invalid layer it reads the provider, which is
        # gone (QGIS 3.22 segfaults). The provider's reasons ("Download of
        # capabilities failed: …") are in the message log.
        settle()
        result["error"] = " | ".join(MESSAGES) or "invalid layer"
    else:
        result["crs"] = layer.crs().authid()
        e = layer.extent()
        result["extent"] = [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]
        if isinstance(layer, QgsVectorLayer):
            result["fields"] = [f.name() for f in layer.fields()]
            if job.get("features", True):
                result["features"] = sum(1 for _ in layer.getFeatures())
        if job.get("render"):
            settings = QgsMapSettings()
            settings.setLayers([layer])
            settings.setDestinationCrs(layer.crs())
            if job.get("extent"):
                x0, y0, x1, y1 = job["extent"]
                settings.setExtent(QgsRectangle(x0, y0, x1, y1))
            else:
                settings.setExtent(layer.extent())
            size = int(job.get("size", 256))
            settings.setOutputSize(QSize(size, size))
            background = QColor(job.get("background", "#ffffff"))
            settings.setBackgroundColor(background)
            render = QgsMapRendererSequentialJob(settings)
            render.start()
            # Keep the main thread's event loop turning while the layer renders: a
            # 401 makes the render thread hand the authentication request to the main
            # thread and wait for it, so waitForFinished() would deadlock.
            while render.isActive():
                QgsApplication.processEvents()
                time.sleep(0.005)
            image = render.renderedImage()
            image.save(job["render"], "PNG")
            result["rendered"] = {
                "path": job["render"],
                "painted": painted_pixels(image, background),
                "width": image.width(),
                "height": image.height(),
                "errors": [e.message for e in render.errors()],
            }
    settle()
    result["seconds"] = round(time.monotonic() - started, 2)
    result["messages"] = list(MESSAGES)
    result["http"] = list(HTTP)
    return result


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    with open(sys.argv[1], encoding="utf-8") as fh:
        jobs = json.load(fh)
    app = QgsApplication([], True)
    app.initQgis()
    # A 401 makes QGIS ask its credentials interface for a user name and password;
    # headless there is none to ask and the request waits forever. This one answers
    # "no credentials" at once (as a user cancelling the dialog), so the layer fails.
    credentials = QgsCredentialsNone()  # noqa: F841 - must stay alive (setInstance)
    QgsApplication.messageLog().messageReceived.connect(on_message)
    QgsNetworkAccessManager.instance().finished.connect(on_finished)
    # A loopback gateway: never a proxy, short timeouts so a hung request fails the job.
    QgsNetworkAccessManager.instance().setTimeout(30000)
    print("qgis_client: QGIS ready in %.2fs" % (time.monotonic() - T0), file=sys.stderr, flush=True)
    for job in jobs:
        print("qgis_client: %s" % job.get("name", ""), file=sys.stderr, flush=True)
        print(json.dumps(run_job(job)), flush=True)
    # exitQgis() can crash in some offscreen builds after network use; results are out.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

"""TiTiler (titiler.application) for tilegate's end-to-end tests.

    python titiler_serve.py fixtures DIR    write DIR/cog.tif and DIR/secret.tif (no-op when present)
    python titiler_serve.py serve DIR       make the fixtures, then serve TiTiler on a free loopback port

`serve` binds 127.0.0.1:0 itself, prints `TILEGATE_E2E_READY <port>` once it listens,
and exits when its stdin closes (the test process died), so no server outlives a test.
Runs with the interpreter of `.venv-titiler` (made by scripts/e2e-setup).

The fixtures are Cloud Optimized GeoTIFFs in EPSG:3857 covering the Web Mercator tile
z=1 x=1 y=0 (longitude 0..180, latitude 0..85.05), 512x512 pixels, three bands
(a gradient: red grows eastwards, green southwards, blue constant 200). `secret.tif`
is the same grid with blue 50: a dataset the tests' path does not declare.
"""

import os
import socket
import sys
import threading


def fixtures(directory):
    import numpy as np
    import rasterio
    from rasterio.transform import from_bounds

    os.makedirs(directory, exist_ok=True)
    half = 20037508.342789244
    transform = from_bounds(0.0, 0.0, half, half, 512, 512)
    for name, blue in (("cog.tif", 200), ("secret.tif", 50)):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            continue
        x = np.tile(np.arange(512, dtype=np.uint16) // 2, (512, 1)).astype(np.uint8)
        data = np.stack([x, x.T, np.full((512, 512), blue, dtype=np.uint8)])
        tmp = path + ".tmp"
        profile = dict(driver="COG", width=512, height=512, count=3, dtype="uint8",
                       crs="EPSG:3857", transform=transform, compress="deflate")
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
        os.replace(tmp, path)


def serve(directory):
    fixtures(directory)
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=watch_stdin, daemon=True).start()
    config = uvicorn.Config("titiler.application.main:app", log_level="warning", access_log=True)
    server = uvicorn.Server(config)

    def announce():
        import time

        while not server.started:
            time.sleep(0.05)
        print("TILEGATE_E2E_READY %d" % port, flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("fixtures", "serve"):
        sys.exit(__doc__)
    {"fixtures": fixtures, "serve": serve}[sys.argv[1]](sys.argv[2])

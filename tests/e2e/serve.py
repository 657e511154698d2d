#!/usr/bin/env python3
"""Launch one real OGC upstream for tilegate's end-to-end tests.

    serve.py mapproxy --workdir DIR [--port N] [--exit-on-stdin-eof]
    serve.py pygeoapi --workdir DIR [--port N] [--url PUBLIC_URL] [--exit-on-stdin-eof]
    serve.py mapserver --workdir DIR [--port N] [--exit-on-stdin-eof]

Every server runs in this single process under waitress (threaded WSGI, no
reloader), so killing this process stops the server. MapProxy and pygeoapi are
WSGI apps; MapServer is the CGI `mapserv` (Debian `cgi-mapserver`), run once per
request by a small WSGI-to-CGI bridge (`MapServerCgi`) at `/mapserv`.

* --port 0 (the default) binds a free loopback port itself: no race between
  choosing a port and binding it.
* The rendered configuration files live in --workdir (one per server), so
  any number of servers can run side by side.
* When the app is loaded and the socket listens, one line is printed on
  stdout and flushed:  TILEGATE_E2E_READY http://127.0.0.1:PORT
* Every request is appended to DIR/access.log as one JSON object per line:
  {"method", "path", "query", "status", "headers"} (headers lower-cased), so a
  test can check what reached the upstream (or that nothing did).
* --exit-on-stdin-eof: exit as soon as stdin reaches EOF. The Rust test
  support passes a pipe, so the server dies with the test process even if
  the test process is killed without running destructors.
"""

import argparse
import json
import os
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent


def render(template: Path, out: Path, values: dict) -> Path:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("@%s@" % key, str(value))
    out.write_text(text, encoding="utf-8")
    return out


class AccessLog:
    """WSGI middleware appending one JSON line per request to a file."""

    def __init__(self, app, path: Path):
        self.app = app
        self.fh = open(path, "a", encoding="utf-8", buffering=1)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        record = {
            "method": environ.get("REQUEST_METHOD", ""),
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "status": 0,
            "headers": {
                k[5:].replace("_", "-").lower(): v
                for k, v in environ.items()
                if k.startswith("HTTP_")
            },
        }
        for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(k):
                record["headers"][k.replace("_", "-").lower()] = environ[k]

        def sr(status, headers, exc_info=None):
            try:
                record["status"] = int(status.split(" ", 1)[0])
            except ValueError:
                pass
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, sr)
        finally:
            with self.lock:
                self.fh.write(json.dumps(record) + "\n")


def load_mapproxy(workdir: Path, port: int, url: str):
    (workdir / "cache_data").mkdir(parents=True, exist_ok=True)
    conf = render(HERE / "mapproxy.yaml", workdir / "mapproxy.yaml",
                  {"WORKDIR": workdir})
    from mapproxy.wsgiapp import make_wsgi_app
    return make_wsgi_app(str(conf))


def places_tiles(workdir: Path) -> Path:
    """Vector tiles of places.geojson for pygeoapi's MVT-tippecanoe provider: GDAL's
    MVT driver writes {z}/{x}/{y}.pbf (uncompressed: pygeoapi relays the files as
    they are) and metadata.json into DIR/tiles/places (the layer is the directory's
    name), zoom 0..6, in a fraction of a second."""
    import shutil
    import subprocess
    out = workdir / "tiles" / "places"
    if (out / "metadata.json").is_file():
        return out
    ogr2ogr = shutil.which("ogr2ogr")
    if ogr2ogr is None:
        raise SystemExit("serve.py: ogr2ogr not found (Debian gdal-bin); run scripts/e2e-setup")
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ogr2ogr, "-f", "MVT", "-dsco", "MINZOOM=0", "-dsco", "MAXZOOM=6",
                    "-dsco", "COMPRESS=NO", str(out), str(HERE / "places.geojson")],
                   check=True)
    return out


def load_pygeoapi(workdir: Path, port: int, url: str):
    conf = render(HERE / "pygeoapi.yml", workdir / "pygeoapi.yml", {
        "PORT": port,
        "URL": url,
        "DATA": HERE / "places.geojson",
        "TILES": places_tiles(workdir),
    })
    openapi = workdir / "pygeoapi-openapi.yml"
    os.environ["PYGEOAPI_CONFIG"] = str(conf)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi)
    from pygeoapi.openapi import generate_openapi_document
    with open(conf, encoding="utf-8") as fh:
        doc = generate_openapi_document(fh, "yaml")
    openapi.write_text(doc, encoding="utf-8")
    # flask_app reads both environment variables at import time.
    from pygeoapi.flask_app import APP
    return APP


class MapServerCgi:
    """WSGI app running the CGI `mapserv` once per request (RFC 3875 environment).

    The mapfile is fixed by a MapServer 8 config file (MAPSERVER_CONFIG_FILE with
    ENV MS_MAPFILE), so requests need no MAP= parameter and cannot name another
    mapfile. Only `/mapserv` is served; anything else is a 404.
    """

    def __init__(self, binary: str, config: Path):
        self.binary = binary
        self.config = config

    def __call__(self, environ, start_response):
        import subprocess
        if environ.get("PATH_INFO", "") != "/mapserv":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: only /mapserv is served\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MAPSERVER_CONFIG_FILE": str(self.config),
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
            "SERVER_SOFTWARE": "tilegate-e2e",
            "REQUEST_METHOD": environ.get("REQUEST_METHOD", "GET"),
            "QUERY_STRING": environ.get("QUERY_STRING", ""),
            "SCRIPT_NAME": "/mapserv",
            "PATH_INFO": "",
            "SERVER_NAME": environ.get("SERVER_NAME", "127.0.0.1"),
            "SERVER_PORT": str(environ.get("SERVER_PORT", "")),
            "REMOTE_ADDR": environ.get("REMOTE_ADDR", "127.0.0.1"),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
        }
        for k, v in environ.items():
            if k.startswith("HTTP_"):
                env[k] = v
        proc = subprocess.run([self.binary], input=body, env=env,
                              capture_output=True, timeout=60)
        out = proc.stdout
        sep = min((i for i in (out.find(b"\r\n\r\n"), out.find(b"\n\n")) if i >= 0),
                  default=-1)
        if proc.returncode != 0 and sep < 0:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"mapserv failed: " + proc.stderr[-2000:]]
        head = out[:sep].decode("latin-1") if sep >= 0 else ""
        if sep < 0:
            body_start = 0
        elif out[sep:sep + 4] == b"\r\n\r\n":
            body_start = sep + 4
        else:
            body_start = sep + 2
        rest = out[body_start:]
        status = "200 OK"
        headers = []
        for line in head.splitlines():
            if ":" not in line:
                continue
            name, value = line.split(":", 1)
            if name.strip().lower() == "status":
                status = value.strip()
            else:
                headers.append((name.strip(), value.strip()))
        headers.append(("Content-Length", str(len(rest))))
        if proc.stderr:
            sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        start_response(status, headers)
        return [rest]


def load_mapserver(workdir: Path, port: int, url: str):
    import shutil
    binary = shutil.which("mapserv") or "/usr/lib/cgi-bin/mapserv"
    if not os.access(binary, os.X_OK):
        raise SystemExit("serve.py: mapserv not found (Debian cgi-mapserver); run scripts/e2e-setup")
    mapfile = render(HERE / "mapserver.map", workdir / "e2e.map", {
        "URL": url,
        "DATA": HERE / "places.geojson",
    })
    config = workdir / "mapserver.conf"
    config.write_text(
        "CONFIG\n  ENV\n    MS_MAPFILE \"%s\"\n    MS_ERRORFILE \"stderr\"\n  END\nEND\n" % mapfile,
        encoding="utf-8")
    return MapServerCgi(binary, config)


LOADERS = {"mapproxy": load_mapproxy, "pygeoapi": load_pygeoapi, "mapserver": load_mapserver}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("server", choices=sorted(LOADERS))
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--url", default=None,
                    help="public base URL (pygeoapi server.url); default: its own URL")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--exit-on-stdin-eof", action="store_true")
    args = ap.parse_args()

    if args.exit_on_stdin_eof:
        def watch_stdin():
            try:
                # Raw fd reads: a daemon thread blocked in sys.stdin's
                # buffered reader would abort interpreter shutdown.
                while os.read(0, 4096):
                    pass
            finally:
                os._exit(0)
        threading.Thread(target=watch_stdin, daemon=True).start()

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    from waitress.server import create_server

    holder = {}

    def lazy_app(environ, start_response):
        return holder["app"](environ, start_response)

    # Bind first (port 0 = a free port chosen by the kernel), then render the
    # configuration with the real port, then load the app.
    server = create_server(lazy_app, host="127.0.0.1", port=args.port,
                           threads=args.threads, ident=args.server,
                           clear_untrusted_proxy_headers=False)
    port = int(server.effective_port)
    own_url = "http://127.0.0.1:%d" % port
    app = LOADERS[args.server](workdir, port, args.url or own_url)
    holder["app"] = AccessLog(app, workdir / "access.log")

    print("TILEGATE_E2E_READY %s" % own_url, flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

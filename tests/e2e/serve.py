#!/usr/bin/env python3
"""Launch one real OGC upstream for tilegate's end-to-end tests.

    serve.py mapproxy --workdir DIR [--port N] [--exit-on-stdin-eof]
    serve.py pygeoapi --workdir DIR [--port N] [--url PUBLIC_URL] [--exit-on-stdin-eof]

Both servers run in this single process under waitress (threaded WSGI, no
reloader, no child processes), so killing this process stops the server.

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


def load_pygeoapi(workdir: Path, port: int, url: str):
    conf = render(HERE / "pygeoapi.yml", workdir / "pygeoapi.yml", {
        "PORT": port,
        "URL": url,
        "DATA": HERE / "places.geojson",
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


LOADERS = {"mapproxy": load_mapproxy, "pygeoapi": load_pygeoapi}


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

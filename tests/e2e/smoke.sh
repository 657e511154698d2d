#!/usr/bin/env bash
# Smoke test of the e2e upstreams and client, without the gateway:
# sets up the venv, starts MapProxy and pygeoapi (tests/e2e/serve.py),
# fetches every kind of endpoint the e2e tests use, runs owslib_client.py
# against each, and checks that a refusal surfaces as 'HTTP 403' / exit 2.
#
#   tests/e2e/smoke.sh
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${TILEGATE_E2E_VENV:-$repo/.venv-e2e}"
"$repo/scripts/e2e-setup" || exit 1
PY="$venv/bin/python"
export PYTHONDONTWRITEBYTECODE=1 NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"

tmp="$(mktemp -d -t tilegate-e2e-smoke-XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$*"; }
ko() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

now_ms() { date +%s%3N; }

# start NAME [serve.py args...]: sets BASE_<NAME>
start() {
    local name="$1"; shift
    local t0 out base=""
    t0=$(now_ms)
    out="$tmp/$name.out"
    "$PY" "$here/serve.py" "$name" --workdir "$tmp/$name" "$@" >"$out" 2>"$tmp/$name.err" &
    pids+=($!)
    for _ in $(seq 600); do
        base="$(sed -n 's/^TILEGATE_E2E_READY //p' "$out")"
        [ -n "$base" ] && break
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$base" ]; then
        ko "$name did not start"; cat "$tmp/$name.err"; exit 1
    fi
    ok "$name ready at $base in $(( $(now_ms) - t0 )) ms"
    printf -v "BASE_${name^^}" '%s' "$base"
}

# fetch URL STATUS CONTENT-TYPE-PREFIX [BODY-SUBSTRING]
fetch() {
    local url="$1" want="$2" ctype="$3" needle="${4:-}"
    local res
    res="$("$PY" - "$url" "$want" "$ctype" "$needle" <<'PY'
import sys, urllib.request, urllib.error
url, want, ctype, needle = sys.argv[1:5]
try:
    r = urllib.request.urlopen(url, timeout=30)
    status, headers, body = r.status, r.headers, r.read()
except urllib.error.HTTPError as e:
    status, headers, body = e.code, e.headers, e.read()
ct = headers.get("Content-Type", "")
problems = []
if str(status) != want: problems.append("status %s" % status)
if not ct.startswith(ctype): problems.append("content-type %r" % ct)
if needle and needle.encode() not in body: problems.append("no %r in body" % needle)
print("%s %s %d bytes%s" % (status, ct, len(body), (": " + "; ".join(problems)) if problems else ""))
sys.exit(1 if problems else 0)
PY
)"
    if [ $? = 0 ]; then ok "GET $url -> $res"; else ko "GET $url -> $res"; fi
}

# client EXPECT-EXIT STDOUT-SUBSTRING ARGS...  (runs owslib_client.py)
client() {
    local want="$1" needle="$2"; shift 2
    local out err rc
    out="$("$PY" "$here/owslib_client.py" "$@" 2>"$tmp/client.err")"; rc=$?
    err="$(cat "$tmp/client.err")"
    if [ "$rc" = "$want" ] && { [ -z "$needle" ] || grep -qF -- "$needle" <<<"$out$err"; }; then
        ok "owslib_client $* -> exit $rc"
    else
        ko "owslib_client $* -> exit $rc (want $want, '$needle')"
        printf '%s\n%s\n' "$out" "$err" | sed 's/^/      /' | head -20
    fi
}

start mapproxy
start pygeoapi
M="$BASE_MAPPROXY"
P="$BASE_PYGEOAPI"

echo "--- MapProxy, plain HTTP"
fetch "$M/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1" 200 application/vnd.ogc.wms_xml "<Name>aerial</Name>"
fetch "$M/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0" 200 text/xml "<Title>OSM debug</Title>"
fetch "$M/service?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=osm&STYLES=&CRS=EPSG:4326&BBOX=45,0,55,10&WIDTH=256&HEIGHT=256&FORMAT=image/png" 200 image/png
fetch "$M/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=aerial&STYLES=&SRS=EPSG:3857&BBOX=0,5000000,1000000,6000000&WIDTH=256&HEIGHT=256&FORMAT=image/jpeg" 200 image/jpeg
fetch "$M/service?SERVICE=WMTS&REQUEST=GetCapabilities&VERSION=1.0.0" 200 application/xml "GLOBAL_WEBMERCATOR"
fetch "$M/service?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&FORMAT=image/png&TILEMATRIXSET=GLOBAL_WEBMERCATOR&TILEMATRIX=05&TILEROW=10&TILECOL=16" 200 image/png
fetch "$M/wmts/1.0.0/WMTSCapabilities.xml" 200 application/xml "/wmts/osm/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.png"
fetch "$M/wmts/osm/GLOBAL_WEBMERCATOR/5/16/10.png" 200 image/png
fetch "$M/tms/1.0.0/" 200 text/xml "OSM debug"
fetch "$M/tms/1.0.0/osm/GLOBAL_WEBMERCATOR/4/16/21.png" 200 image/png
fetch "$M/tiles/osm/GLOBAL_WEBMERCATOR/5/16/10.png" 200 image/png
# The same tile through every tile API (debug tiles print their bbox, so
# identical bytes mean the identical tile): WMTS 5/col 16/row 10 (from north)
# = TMS 4/16/21 (profile level offset, row from south) = /tiles 5/16/10.
same_tile() {
    local ref="$1"; shift
    "$PY" - "$ref" "$@" <<'PY'
import sys, urllib.request
ref, *others = sys.argv[1:]
want = urllib.request.urlopen(ref).read()
bad = [u for u in others if urllib.request.urlopen(u).read() != want]
print("differ: " + " ".join(bad) if bad else "")
sys.exit(1 if bad else 0)
PY
}
if same_tile "$M/wmts/osm/GLOBAL_WEBMERCATOR/5/16/10.png" \
    "$M/wmts/osm/GLOBAL_WEBMERCATOR/05/16/10.png" \
    "$M/service?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=osm&STYLE=default&FORMAT=image/png&TILEMATRIXSET=GLOBAL_WEBMERCATOR&TILEMATRIX=5&TILEROW=10&TILECOL=16" \
    "$M/tms/1.0.0/osm/GLOBAL_WEBMERCATOR/4/16/21.png" \
    "$M/tiles/osm/GLOBAL_WEBMERCATOR/5/16/10.png" >"$tmp/same.out"; then
    ok "WMTS REST 5/16/10 = WMTS KVP = TMS 4/16/21 = /tiles 5/16/10"
else
    ko "tile equivalence: $(cat "$tmp/same.out")"
fi
fetch "$M/demo/" 404 ""

echo "--- pygeoapi, plain HTTP"
fetch "$P/?f=json" 200 application/json
fetch "$P/collections?f=json" 200 application/json '"id":"places"'
fetch "$P/collections/places/items?f=json" 200 application/json '"numberMatched":24'
fetch "$P/collections/places/items?f=json&bbox=0,45,10,55" 200 application/json '"numberMatched":9'
fetch "$P/collections/places/items/paris?f=json" 200 application/json '"secret_note"'
fetch "$P/collections/places/queryables?f=json" 200 application/schema+json '"population"'
fetch "$P/openapi?f=json" 200 application/vnd.oai.openapi+json

echo "--- owslib_client.py, directly against the upstreams"
H="Authorization: Bearer smoke-token"
client 0 aerial wms-layers "$M/service" --header "$H"
client 0 osm wms-layers "$M/service" --version 1.1.1
client 0 image/png wms-getmap "$M/service" osm 0,45,10,55 EPSG:4326 "$tmp/getmap.png" --header "$H"
client 0 image/png wms-getmap "$M/service" aerial 0,5000000,1000000,6000000 EPSG:3857 "$tmp/getmap111.png" --version 1.1.1
client 0 aerial wmts-layers "$M/service" --header "$H"
client 0 image/png wmts-tile "$M/service" osm GLOBAL_WEBMERCATOR 05 10 16 "$tmp/kvp.png" --header "$H"
client 0 image/png wmts-tile "$M/wmts/1.0.0/WMTSCapabilities.xml" osm GLOBAL_WEBMERCATOR 05 10 16 "$tmp/rest.png" --header "$H"
client 0 places collections "$P" --header "$H"
client 0 '"numberMatched": 9' features "$P" places --bbox 0,45,10,55 --header "$H"
client 0 Paris feature "$P" places paris --header "$H"
client 2 "HTTP 404" feature "$P" places atlantis
if cmp -s "$tmp/kvp.png" "$tmp/rest.png"; then ok "WMTS KVP and REST tiles are identical"; else ko "WMTS KVP and REST tiles differ"; fi

n_auth="$(grep -c '"authorization": "Bearer smoke-token"' "$tmp/mapproxy/access.log" "$tmp/pygeoapi/access.log" | awk -F: '{s+=$2} END {print s}')"
if [ "$n_auth" -ge 10 ]; then ok "the upstreams saw OWSLib's Authorization header ($n_auth requests)"; else ko "Authorization header reached the upstreams only $n_auth times"; fi

echo "--- owslib_client.py against a server that refuses everything (403)"
"$PY" - >"$tmp/refuser.out" 2>/dev/null <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"forbidden"
        self.send_response(403)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("http://127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
PY
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/refuser.out" ] && break; sleep 0.05; done
R="$(head -1 "$tmp/refuser.out")"
client 2 "HTTP 403" wms-layers "$R/service"
client 2 "HTTP 403" wmts-tile "$R/service" osm GLOBAL_WEBMERCATOR 05 10 16 "$tmp/x.png"
client 2 "HTTP 403" features "$R" places
client 1 "ConnectionError" wms-layers "http://127.0.0.1:9/service"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]

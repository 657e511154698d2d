# Helpers for bench/run (sourced). Every process is started through `start` and stopped
# by its PID (and its direct children, e.g. nginx workers) in `cleanup`; nothing is killed
# by name.

declare -A MAIN_PID=()
STARTED=()

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench/run: %s\n' "$*" >&2; exit 1; }

# install_tools [COMMAND:PACKAGE…] — installs nginx-light haproxy wrk curl and the extra
# Debian packages named, each only when its command is missing (a no-op when all are there).
install_tools() {
  local missing=() pair
  for pair in nginx:nginx-light haproxy:haproxy wrk:wrk curl:curl "$@"; do
    command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "need ${missing[*]}; install them (apt-get install -y ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  apt-get update -qq
  # policy-rc.d may refuse to start the services; that is what we want (we start our own).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

wait_port() {
  local i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on port $1; see $W/*.stderr"
}

# start NAME CMD… — runs CMD in the background, remembers its PID.
start() {
  local name="$1"
  shift
  "$@" >"$W/$name.stdout" 2>"$W/$name.stderr" &
  MAIN_PID[$name]=$!
  STARTED+=("$name")
}

# pids NAME — the process and its direct children (nginx master + worker).
pids() {
  local main="${MAIN_PID[$1]:-}"
  [ -n "$main" ] || return 0
  echo "$main"
  pgrep -P "$main" 2>/dev/null || true
}

alive() { kill -0 "$1" 2>/dev/null; }

stop_group() {
  local name="$1" p list i
  list="$(pids "$name")"
  [ -n "$list" ] || return 0
  kill -TERM "${MAIN_PID[$name]}" 2>/dev/null || true
  for i in $(seq 1 50); do
    alive "${MAIN_PID[$name]}" || break
    sleep 0.1
  done
  for p in $list; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  wait "${MAIN_PID[$name]}" 2>/dev/null || true
  unset "MAIN_PID[$name]"
}

cleanup() {
  local name
  for name in "${STARTED[@]}"; do
    [ -n "${MAIN_PID[$name]:-}" ] && stop_group "$name"
  done
  return 0
}

# cpu_ns PID… — nanoseconds on CPU, summed over every thread (first field of schedstat).
cpu_ns() {
  local total=0 p f a
  for p in "$@"; do
    for f in /proc/"$p"/task/*/schedstat; do
      read -r a _ <"$f" 2>/dev/null || continue
      total=$((total + a))
    done
  done
  echo "$total"
}

# ticks PID… — "user sys" clock ticks of whole processes (all threads, dead ones too).
ticks() {
  local u=0 s=0 p line f
  for p in "$@"; do
    line="$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null)" || continue
    read -r -a f <<<"$line"
    # After "(comm) ", index 11 is utime (field 14) and 12 is stime (field 15).
    u=$((u + f[11])) s=$((s + f[12]))
  done
  echo "$u $s"
}

status_kb() { # field PID…
  local field="$1" total=0 p v
  shift
  for p in "$@"; do
    v="$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || true)"
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
# shellcheck disable=SC2086
hwm_kb() { status_kb VmHWM $1; }
# shellcheck disable=SC2086
rss_kb() { status_kb VmRSS $1; }

record() { # round contender scenario expect cpu_ns kind out user-ticks sys-ticks
  printf '{"round":%s,"contender":"%s","scenario":"%s","expect":%s,"cpu_ns":%s,"kind":"%s","out":"%s","user_ticks":%s,"sys_ticks":%s}\n' \
    "$@" >>"$RAW"
}

# measure ROUND CONTENDER SCENARIO EXPECT GROUP KIND OUT CMD… — runs CMD (pinned by the
# caller) with its output in OUT and records the CPU time GROUP's processes spent meanwhile.
measure() {
  local round="$1" c="$2" scen="$3" expect="$4" group="$5" kind="$6" out="$7" before after list t0 t1
  shift 7
  list="$(pids "$group")"
  # shellcheck disable=SC2086
  before="$(cpu_ns $list)" t0="$(ticks $list)"
  "$@" >"$out" 2>&1 || true
  # shellcheck disable=SC2086
  after="$(cpu_ns $list)" t1="$(ticks $list)"
  record "$round" "$c" "$scen" "$expect" $((after - before)) "$kind" "$out" \
    $((${t1% *} - ${t0% *})) $((${t1#* } - ${t0#* }))
}

# run_wrk ROUND CONTENDER SCENARIO EXPECT GROUP WRK-ARGS… — a saturating run (M1, M3, M5, M6, M7).
run_wrk() {
  local round="$1" c="$2" scen="$3" expect="$4" group="$5" out before after list t0 t1
  shift 5
  out="$W/out/r$round-$c-$scen.txt"
  list="$(pids "$group")"
  # shellcheck disable=SC2086
  before="$(cpu_ns $list)" t0="$(ticks $list)"
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" >"$out" 2>&1 || true
  # shellcheck disable=SC2086
  after="$(cpu_ns $list)" t1="$(ticks $list)"
  record "$round" "$c" "$scen" "$expect" $((after - before)) wrk "$out" \
    $((${t1% *} - ${t0% *})) $((${t1#* } - ${t0#* }))
  printf '  %-9s %-8s %s\n' "$c" "$scen" "$(grep -E 'Requests/sec' "$out" || echo 'no result')" >&2
}

# run_fixed ROUND CONTENDER SCENARIO EXPECT GROUP URL HEADER — fixed rate (M2).
run_fixed() {
  local round="$1" c="$2" scen="$3" expect="$4" group="$5" url="$6" header="$7" out before after list hostport path t0 t1
  hostport="${url#http://}"
  path="/${hostport#*/}"
  hostport="${hostport%%/*}"
  out="$W/out/r$round-$c-$scen.json"
  list="$(pids "$group")"
  # shellcheck disable=SC2086
  before="$(cpu_ns $list)" t0="$(ticks $list)"
  taskset -c 0 "$LOADGEN" --addr "$hostport" --path "$path" --header "$header" --rate "$FIXED_RATE" \
    --connections "$CONNS" --duration "$DURATION" --warmup "$FIXED_WARMUP" --expect "$expect" >"$out" 2>"$out.err" || true
  # shellcheck disable=SC2086
  after="$(cpu_ns $list)" t1="$(ticks $list)"
  record "$round" "$c" "$scen" "$expect" $((after - before)) fixed "$out" \
    $((${t1% *} - ${t0% *})) $((${t1#* } - ${t0#* }))
  printf '  %-9s %-8s %s\n' "$c" "$scen" "$(cut -c1-160 "$out" 2>/dev/null || echo 'no result')" >&2
}

# fill URL TOKENS-FILE N — each of the first N tokens once, as fast as the server goes
# (closed loop, 32 connections); prints loadgen's JSON.
fill() {
  local hostport="${1#http://}"
  taskset -c 0 "$LOADGEN" --addr "${hostport%%/*}" --path "/${hostport#*/}" --tokens "$2" --requests "$3" \
    --rate 0 --connections "$CONNS"
}

write_tilegate_config() { # file port db [extra [server] lines, e.g. runtime = "per-core"]
  cat >"$1" <<EOF
# Generated by bench/run.
[server]
listen = "127.0.0.1:$2"
public_url = "http://127.0.0.1:$2"
max_connections = 10000
${4:-}

[store]
path = "$3"

[log]
format = "plain"

[[path]]
id = "world"
kind = "folder"

[[path]]
id = "osm"
parent = "world"
kind = "raster"
layers = ["osm"]
[path.upstream]
xyz = "http://127.0.0.1:$P_UP/tile.pbf?z={z}&x={x}&y={y}"
base = "http://127.0.0.1:$P_UP/"
EOF
}

nginx_common() { # dir
  cat <<EOF
worker_processes 1;
daemon off;
user root;
pid $1/nginx.pid;
events { worker_connections 4096; }
EOF
}

nginx_http_common() { # dir
  cat <<EOF
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $1/client_body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
EOF
}

write_nginx_upstream() { # file port workdir
  {
    nginx_common "$3/up"
    echo "http {"
    nginx_http_common "$3/up"
    cat <<EOF
  open_file_cache max=16 inactive=600s;
  open_file_cache_valid 600s;
  types { application/x-protobuf pbf; application/geo+json geojson; }
  server {
    listen 127.0.0.1:$2 backlog=4096;
    root $3/www;
    location / { }
  }
}
EOF
  } >"$1"
}

write_nginx_peer() { # file port upstream-port workdir tokens-file
  awk '{ printf "  \"Bearer %s\" 1;\n", $1 }' "$5" >"$4/ngx-tokens.map"
  {
    nginx_common "$4/ngx"
    echo "http {"
    nginx_http_common "$4/ngx"
    cat <<EOF
  map_hash_max_size 262144;
  map_hash_bucket_size 128;
  map \$http_authorization \$tok_ok {
    default 0;
    include $4/ngx-tokens.map;
  }
  upstream up {
    server 127.0.0.1:$3;
    keepalive 64;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$2 backlog=4096;
    location ~ ^/ogc/xyz/osm/(\d+)/(\d+)/(\d+)\.pbf\$ {
      if (\$tok_ok = 0) { return 401; }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_pass http://up/tile.pbf?z=\$1&x=\$2&y=\$3;
    }
    location / { return 404; }
  }
}
EOF
  } >"$1"
}

write_haproxy_peer() { # file port upstream-port tokens-file
  local list="${1%.cfg}-tokens.lst"
  awk '{ printf "Bearer %s\n", $1 }' "$4" >"$list"
  cat >"$1" <<EOF
global
  nbthread 1
  maxconn 4000

defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  http-reuse always

frontend fe
  bind 127.0.0.1:$2
  acl tile path_beg /ogc/xyz/osm/
  acl tok_ok req.hdr(authorization) -m str -f $list
  http-request deny deny_status 404 unless tile
  http-request deny deny_status 401 unless tok_ok
  http-request del-header authorization
  http-request set-query z=%[path,field(5,/)]&x=%[path,field(6,/)]&y=%[path,field(7,/),field(1,.)]
  http-request set-path /tile.pbf
  default_backend be

backend be
  server up 127.0.0.1:$3
EOF
}

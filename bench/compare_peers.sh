#!/usr/bin/env bash
# Brook beside its peers: producer throughput of Brook, NATS JetStream (file
# storage, async publish) and Redis Streams (AOF, appendfsync everysec,
# pipelined XADD), all on 127.0.0.1 in one run, for 100 B and 1 KB records.
# Prints a table of records/s and MB/s (10^6 bytes of payload) and the
# commands used. Not part of `make test`.
#
# usage: bench/compare_peers.sh
# environment:
#   BUILD_DIR      Brook build directory (default: <repo>/build)
#   RECORDS_100B   records of 100 B per system (default 1000000)
#   RECORDS_1KB    records of 1 KB per system (default 200000)
#   BROOK_ACKS     acks for Brook's producer (default 1)
#   PEER_CACHE     where the NATS JS client is installed (default ~/.cache/brook-bench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RECORDS_100B="${RECORDS_100B:-1000000}"
RECORDS_1KB="${RECORDS_1KB:-200000}"
BROOK_ACKS="${BROOK_ACKS:-1}"
PEER_CACHE="${PEER_CACHE:-$HOME/.cache/brook-bench}"

WORK="$(mktemp -d -t brook-peers.XXXXXX)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]:-}"; do
    [[ -n "$pid" ]] && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "compare_peers: $*" >&2; }

SUDO=""
if [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null; then SUDO="sudo"; fi

# apt_available PACKAGE: whether apt knows an installable version of PACKAGE.
apt_available() {
  local candidate
  candidate="$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

# ensure_command COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is
# missing. Fails (returns 1) when the package is not available.
ensure_command() {
  local cmd="$1" pkg="$2"
  command -v "$cmd" >/dev/null && return 0
  if ! apt_available "$pkg"; then
    log "package $pkg is not available from apt; skipping what needs it"
    return 1
  fi
  log "installing $pkg"
  $SUDO apt-get install -y -q "$pkg" >&2 || { log "apt-get install $pkg failed"; return 1; }
  command -v "$cmd" >/dev/null
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT PID: waits up to 20 s until PORT accepts connections.
wait_port() {
  local port="$1" pid="$2" i
  for ((i = 0; i < 200; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

json_field() {  # json_field NAME JSON: a numeric field of a flat JSON object
  echo "$2" | grep -oE "\"$1\":[0-9.eE+-]+" | head -n1 | cut -d: -f2
}

RESULTS=()     # "system|size|records/s|MB/s"
COMMANDS=()
add_result() { RESULTS+=("$1|$2|$3|$4"); }
add_skip() { RESULTS+=("$1|$2|skipped|-"); }

mbps() { awk -v r="$1" -v s="$2" 'BEGIN { printf "%.1f", r * s / 1e6 }'; }

# ---------------------------------------------------------------- NATS
run_nats() {
  if ! ensure_command nats-server nats-server; then
    add_skip "NATS JetStream" 100; add_skip "NATS JetStream" 1024; return
  fi
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "node and npm are needed for the NATS load generator; skipping NATS"
    add_skip "NATS JetStream" 100; add_skip "NATS JetStream" 1024; return
  fi
  mkdir -p "$PEER_CACHE/peers"
  cp "$ROOT/bench/peers/package.json" "$ROOT/bench/peers/nats_js_bench.mjs" "$PEER_CACHE/peers/"
  if ! npm install --prefix "$PEER_CACHE/peers" --no-audit --no-fund --silent >&2; then
    log "npm install of the NATS client failed; skipping NATS"
    add_skip "NATS JetStream" 100; add_skip "NATS JetStream" 1024; return
  fi
  local port; port="$(free_port)"
  mkdir -p "$WORK/nats"
  local cmd=(nats-server -js -sd "$WORK/nats" -a 127.0.0.1 -p "$port")
  COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
  "${cmd[@]}" >"$WORK/nats.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_port "$port" "$pid"; then
    log "nats-server did not start (see below)"; cat "$WORK/nats.log" >&2
    add_skip "NATS JetStream" 100; add_skip "NATS JetStream" 1024; return
  fi
  local size n out
  for size in 100 1024; do
    n="$RECORDS_100B"; [[ "$size" == 1024 ]] && n="$RECORDS_1KB"
    cmd=(node "$PEER_CACHE/peers/nats_js_bench.mjs" "nats://127.0.0.1:$port" "BENCH$size" "$n" "$size")
    COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
    log "NATS JetStream: $n records of $size B"
    if out="$("${cmd[@]}")"; then
      add_result "NATS JetStream" "$size" "$(json_field records_per_sec "$out")" \
        "$(json_field mb_per_sec "$out")"
    else
      add_skip "NATS JetStream" "$size"
    fi
  done
}

# ---------------------------------------------------------------- Redis
run_redis() {
  if ! ensure_command redis-server redis-server || ! ensure_command redis-benchmark redis-tools; then
    add_skip "Redis Streams" 100; add_skip "Redis Streams" 1024; return
  fi
  local port; port="$(free_port)"
  mkdir -p "$WORK/redis"
  local cmd=(redis-server --bind 127.0.0.1 --port "$port" --dir "$WORK/redis" --save ""
             --appendonly yes --appendfsync everysec --daemonize no)
  COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
  "${cmd[@]}" >"$WORK/redis.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_port "$port" "$pid"; then
    log "redis-server did not start (see below)"; cat "$WORK/redis.log" >&2
    add_skip "Redis Streams" 100; add_skip "Redis Streams" 1024; return
  fi
  local size n value out rps
  for size in 100 1024; do
    n="$RECORDS_100B"; [[ "$size" == 1024 ]] && n="$RECORDS_1KB"
    value="$(head -c "$size" /dev/zero | tr '\0' 'x')"
    cmd=(redis-benchmark -h 127.0.0.1 -p "$port" -P 64 -n "$n" -q XADD "bench$size" '*' f "$value")
    COMMANDS+=("redis-benchmark -h 127.0.0.1 -p $port -P 64 -n $n -q XADD bench$size '*' f <$size-byte value>")
    log "Redis Streams: $n records of $size B"
    # -q prints "<command>: <N> requests per second, ..." (with \r progress before it).
    out="$("${cmd[@]}" 2>&1 | tr '\r' '\n' | grep 'requests per second' | tail -n1 || true)"
    rps="$(echo "$out" | grep -oE '[0-9.]+ requests per second' | cut -d' ' -f1 || true)"
    if [[ -n "$rps" ]]; then
      add_result "Redis Streams" "$size" "$rps" "$(mbps "$rps" "$size")"
    else
      log "redis-benchmark gave no result: $out"
      add_skip "Redis Streams" "$size"
    fi
  done
}

# ---------------------------------------------------------------- Brook
run_brook() {
  local server="$BUILD_DIR/server/brook-server" tool="$BUILD_DIR/tools/brook"
  if [[ ! -x "$server" || ! -x "$tool" ]]; then
    log "build Brook first ($server and $tool are missing); skipping Brook"
    add_skip "Brook" 100; add_skip "Brook" 1024; return
  fi
  local ns_port broker_port coord_port admin_port
  ns_port="$(free_port)"; broker_port="$(free_port)"; coord_port="$(free_port)"; admin_port="$(free_port)"
  mkdir -p "$WORK/brook"
  local cmd=("$server" --data_dir "$WORK/brook" --nameserver_listen "127.0.0.1:$ns_port"
             --broker_listen "127.0.0.1:$broker_port" --coordinator_listen "127.0.0.1:$coord_port"
             --admin_listen "127.0.0.1:$admin_port")
  COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
  "${cmd[@]}" >"$WORK/brook.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  if ! wait_port "$ns_port" "$pid" || ! wait_port "$broker_port" "$pid"; then
    log "brook-server did not start (see below)"; cat "$WORK/brook.log" >&2
    add_skip "Brook" 100; add_skip "Brook" 1024; return
  fi
  local size n out
  for size in 100 1024; do
    n="$RECORDS_100B"; [[ "$size" == 1024 ]] && n="$RECORDS_1KB"
    cmd=("$tool" --nameserver "127.0.0.1:$ns_port" bench produce "bench-$size" --records "$n"
         --record-size "$size" --acks "$BROOK_ACKS" --partitions 1 --json)
    COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
    log "Brook: $n records of $size B"
    if out="$("${cmd[@]}")"; then
      add_result "Brook" "$size" "$(json_field records_per_sec "$out")" \
        "$(json_field mb_per_sec "$out")"
    else
      add_skip "Brook" "$size"
    fi
  done
}

run_brook
run_nats
run_redis

echo
printf '%-16s %8s %14s %10s\n' "system" "record" "records/s" "MB/s"
for row in "${RESULTS[@]}"; do
  IFS='|' read -r system size rps mb <<<"$row"
  if [[ "$rps" != skipped ]]; then
    rps="$(printf '%.0f' "$rps")"
    mb="$(printf '%.1f' "$mb")"
  fi
  printf '%-16s %7sB %14s %10s\n' "$system" "$size" "$rps" "$mb"
done
echo
echo "records: $RECORDS_100B of 100 B, $RECORDS_1KB of 1 KB; all on 127.0.0.1; MB = 10^6 bytes of payload"
echo "commands:"
for c in "${COMMANDS[@]}"; do echo "  $c"; done

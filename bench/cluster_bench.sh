#!/usr/bin/env bash
# Cluster benchmarks of issue 3, all on one machine on 127.0.0.1:
#  1. replicated produce throughput: a 3-broker cluster (scripts/cluster.sh),
#     topics with replication factor 3 and min.insync.replicas=2 (1 partition,
#     and 3 partitions whose leaders the controller spreads over the brokers),
#     `brook bench produce --acks all` (and --acks 1 for reference), against
#     one single-node brook-server (default roles, rf 1, acks=1) measured the
#     same way in the same run;
#  2. idle cost: a fresh cluster with IDLE_PARTITIONS partitions (rf 3), no
#     traffic; CPU of every process over IDLE_SECONDS from /proc/<pid>/stat
#     ((utime+stime) delta / elapsed, % of one core), VmRSS and VmHWM, threads
#     and open files.
# Prints a table and writes the same figures as JSON (to $OUT_JSON, default
# /tmp/brook-cluster-bench.json, also printed). Exits 1 when anything failed
# (a server did not start or died, a bench reported errors, an ISR did not fill
# up, high watermarks do not add up to the acknowledged records), with log
# tails. Needs python3 (free ports) and GNU time. Not part of `make test`.
#
# usage: bench/cluster_bench.sh
# environment:
#   BUILD_DIR        Brook build directory (default: <repo>/build)
#   RECORDS_100B     records of 100 B per throughput run (default 2000000)
#   RECORDS_1KB      records of 1 KB per throughput run (default 300000)
#   IDLE_PARTITIONS  partitions for the idle run (default 1000), made as
#   IDLE_TOPICS      that many topics (default 10) of IDLE_PARTITIONS/IDLE_TOPICS each
#   IDLE_SECONDS     CPU measurement window (default 60)
#   IDLE_SETTLE      seconds to wait after every ISR is full, before measuring (default 15)
#   PHASES           which parts to run, comma-separated (default single,cluster,idle)
#   PORT_OFFSET      BROOK_CLUSTER_PORT_OFFSET for the clusters (default 7000)
#   KEEP             1: keep the work directory (kept anyway when something failed)
#   OUT_JSON         where to write the JSON summary (default /tmp/brook-cluster-bench.json)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
RECORDS_100B="${RECORDS_100B:-2000000}"
RECORDS_1KB="${RECORDS_1KB:-300000}"
IDLE_PARTITIONS="${IDLE_PARTITIONS:-1000}"
IDLE_TOPICS="${IDLE_TOPICS:-10}"
IDLE_SECONDS="${IDLE_SECONDS:-60}"
IDLE_SETTLE="${IDLE_SETTLE:-15}"
PHASES="${PHASES:-single,cluster,idle}"
PORT_OFFSET="${PORT_OFFSET:-7000}"
KEEP="${KEEP:-0}"

SERVER="$BUILD_DIR/server/brook-server"
TOOL="$BUILD_DIR/tools/brook"
CLUSTER_SH="$ROOT/scripts/cluster.sh"
WORK="$(mktemp -d -t brook-cluster-bench.XXXXXX)"
OUT_JSON="${OUT_JSON:-${TMPDIR:-/tmp}/brook-cluster-bench.json}"
CLK_TCK="$(getconf CLK_TCK)"

log() { echo "cluster_bench: $(date -u +%H:%M:%S) $*" >&2; }
has_phase() { [[ ",$PHASES," == *",$1,"* ]]; }

for f in "$SERVER" "$TOOL" "$CLUSTER_SH" /usr/bin/time; do
  [[ -x "$f" ]] || { log "missing $f (build brook-server and brook first)"; exit 1; }
done

FAILED=0
SINGLE_PID=""
CLUSTER_DIRS=()
cleanup() {
  if [[ -n "$SINGLE_PID" ]] && kill -0 "$SINGLE_PID" 2>/dev/null; then
    kill "$SINGLE_PID" 2>/dev/null || true
    wait "$SINGLE_PID" 2>/dev/null || true
  fi
  local d
  for d in "${CLUSTER_DIRS[@]:-}"; do
    [[ -n "$d" && -d "$d" ]] || continue
    BROOK_CLUSTER_PORT_OFFSET="$PORT_OFFSET" BROOK_BUILD_DIR="$BUILD_DIR" \
      "$CLUSTER_SH" stop "$d" >/dev/null 2>&1 || true
  done
  if [[ "$KEEP" == 1 || "$FAILED" != 0 ]]; then
    log "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {  # wait_port PORT PID: up to 20 s until PORT accepts connections
  local port="$1" pid="$2" i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

json_field() {  # json_field NAME JSON: a numeric field of a flat JSON object
  echo "$2" | grep -oE "\"$1\":[0-9.eE+-]+" | head -n1 | cut -d: -f2
}

COMMANDS=()
run_logged() {  # run_logged CMD...: records the command line, runs it
  COMMANDS+=("$(printf '%q ' "$@")")
  "$@"
}

# ---------------------------------------------------------------- throughput
THROUGHPUT=()  # "setup|partitions|size|acks|records|rec/s|MB/s|errors|leaders|server_cpu|client_cpu|note"
SERVER_PIDS=()  # the server processes of the setup being measured

stat_ticks() {  # utime+stime of PID in clock ticks
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
servers_cpu_s() {  # CPU seconds used so far by SERVER_PIDS
  local pid sum=0 t
  for pid in "${SERVER_PIDS[@]:-}"; do
    [[ -n "$pid" ]] || continue
    t="$(stat_ticks "$pid")"; sum=$((sum + ${t:-0}))
  done
  awk -v t="$sum" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

# bench_one SETUP NAMESERVERS TOPIC PARTITIONS SIZE ACKS
bench_one() {
  local setup="$1" ns="$2" topic="$3" parts="$4" size="$5" acks="$6" n out rc=0
  n="$RECORDS_100B"; [[ "$size" == 1024 ]] && n="$RECORDS_1KB"
  log "$setup: $topic, $n x $size B, acks=$acks, $parts partition(s)"
  local cmd=("$TOOL" --nameserver "$ns" bench produce "$topic" --records "$n"
             --record-size "$size" --acks "$acks" --partitions "$parts" --json)
  COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
  local cpu0 cpu1 ccpu w0 w1
  cpu0="$(servers_cpu_s)"; w0="$(date +%s.%N)"
  # GNU time appends "client_cpu USER SYS" to the bench's stderr file.
  out="$(/usr/bin/time -a -o "$WORK/bench-$topic.time" -f '%U %S' "${cmd[@]}" \
          2>"$WORK/bench-$topic.err")" || rc=$?
  cpu1="$(servers_cpu_s)"; w1="$(date +%s.%N)"
  local wall; wall="$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')"
  ccpu="$(tail -n 1 "$WORK/bench-$topic.time" 2>/dev/null | awk '{ printf "%.2f", $1 + $2 }')"
  local scpu; scpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')"
  local rps mb errs leaders note=""
  rps="$(json_field records_per_sec "$out")"; mb="$(json_field mb_per_sec "$out")"
  errs="$(json_field errors "$out")"
  if [[ $rc -ne 0 || -z "$rps" ]]; then
    FAILED=1
    note="bench exit $rc: $(tail -n 3 "$WORK/bench-$topic.err" | tr '\n' ' ')"
    log "FAILED: $note"
    rps=0; mb=0; errs="${errs:-$n}"
  elif [[ "${errs:-0}" != 0 ]]; then
    FAILED=1
    note="$(echo "$out" | grep -oE '"error":"[^"]*"' || true)"
    log "errors in $topic: $errs $note"
  fi
  leaders="$(partition_leaders "$ns" "$topic")"
  THROUGHPUT+=("$setup|$parts|$size|$acks|$n|$rps|$mb|${errs:-0}|$leaders|$scpu|${ccpu:-0}|$wall|$note")
  echo "$out" >"$WORK/bench-$topic.json"
}

# describe_rows NAMESERVERS TOPIC: "partition leader replicas isr hw" per partition
describe_rows() {
  "$TOOL" --nameserver "$1" topic describe "$2" 2>/dev/null |
    awk '$1 == "PARTITION" { on = 1; next } on { print $1, $2, $4, $5, $7 }'
}

partition_leaders() {  # leader of each partition, comma-separated (p0,p1,...)
  describe_rows "$1" "$2" | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $2 }'
}

# wait_isr_full NAMESERVERS TIMEOUT TOPIC...: every partition has a leader and
# an ISR as large as its replica set. Returns 1 on timeout.
wait_isr_full() {
  local ns="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout)) t short
  while :; do
    short=0
    for t in "$@"; do
      short=$((short + $(describe_rows "$ns" "$t" |
        awk 'BEGIN { s = 0; n = 0 }
             { n++; if ($2 == "none" || split($3, r, ",") != split($4, i, ",")) s++ }
             END { print (n == 0 ? 1 : s) }')))
    done
    [[ $short -eq 0 ]] && return 0
    if [[ $SECONDS -ge $deadline ]]; then
      log "after ${timeout}s, $short partition(s) still without a leader or a full ISR"
      return 1
    fi
    sleep 1
  done
}

cluster_start() {  # cluster_start DIR
  CLUSTER_DIRS+=("$1")
  BROOK_CLUSTER_PORT_OFFSET="$PORT_OFFSET" BROOK_BUILD_DIR="$BUILD_DIR" \
    run_logged "$CLUSTER_SH" start "$1" >&2
}

cluster_stop() {  # cluster_stop DIR
  BROOK_CLUSTER_PORT_OFFSET="$PORT_OFFSET" BROOK_BUILD_DIR="$BUILD_DIR" \
    "$CLUSTER_SH" stop "$1" >&2 || { FAILED=1; log "cluster stop reported a problem"; }
}

cluster_ns() {
  echo "127.0.0.1:$((19876 + PORT_OFFSET)),127.0.0.1:$((19877 + PORT_OFFSET))"
}

# Log lines at warn level or above, per process, and the last few of each.
report_logs() {  # report_logs DIR LABEL
  local d="$1" f
  for f in "$d"/*.log; do
    [[ -f "$f" ]] || continue
    local w
    w="$(grep -ciE ' (warning|error|critical) \[|fatal|abort|terminate' "$f" || true)"
    if [[ "$w" != 0 ]]; then
      log "$2: $(basename "$f"): $w warning/error line(s); last ones:"
      grep -iE ' (warning|error|critical) \[|fatal|abort|terminate' "$f" | tail -n 5 >&2
    fi
  done
}

check_alive() {  # check_alive DIR LABEL: every cluster process still runs
  local out
  if ! out="$(BROOK_CLUSTER_PORT_OFFSET="$PORT_OFFSET" BROOK_BUILD_DIR="$BUILD_DIR" \
               "$CLUSTER_SH" status "$1" 2>&1)" || grep -q stopped <<<"$out"; then
    FAILED=1
    log "$2: a cluster process has died:"; echo "$out" >&2
    local f
    for f in "$1"/*.log; do
      local name; name="$(basename "$f" .log)"
      if grep -qE "^  $name +stopped" <<<"$out"; then
        log "end of $f:"; tail -n 30 "$f" >&2
      fi
    done
  fi
}

run_single() {
  local ns_port broker_port coord_port admin_port
  ns_port="$(free_port)"; broker_port="$(free_port)"; coord_port="$(free_port)"
  admin_port="$(free_port)"
  mkdir -p "$WORK/single"
  local cmd=("$SERVER" --data-dir "$WORK/single/data" --nameserver-listen "127.0.0.1:$ns_port"
             --broker-listen "127.0.0.1:$broker_port" --coordinator-listen "127.0.0.1:$coord_port"
             --admin-listen "127.0.0.1:$admin_port")
  COMMANDS+=("$(printf '%q ' "${cmd[@]}")")
  "${cmd[@]}" >"$WORK/single/server.log" 2>&1 &
  SINGLE_PID=$!
  if ! wait_port "$ns_port" "$SINGLE_PID" || ! wait_port "$broker_port" "$SINGLE_PID"; then
    FAILED=1
    log "single brook-server did not start:"; tail -n 30 "$WORK/single/server.log" >&2
    return 1
  fi
  local ns="127.0.0.1:$ns_port" size parts
  SERVER_PIDS=("$SINGLE_PID")
  for parts in 1 3; do
    for size in 100 1024; do
      bench_one single "$ns" "s-p$parts-$size" "$parts" "$size" 1
    done
  done
  kill "$SINGLE_PID"; wait "$SINGLE_PID" 2>/dev/null || true
  SINGLE_PID=""
  report_logs "$WORK/single" single
}

run_cluster() {
  local d="$WORK/cluster" ns
  cluster_start "$d" || { FAILED=1; log "cluster start failed"; return 1; }
  ns="$(cluster_ns)"
  local parts size acks topics=()
  for parts in 1 3; do
    for size in 100 1024; do
      for acks in all 1; do
        local t="r-p$parts-$size-a$acks"
        run_logged "$TOOL" --nameserver "$ns" topic create "$t" --partitions "$parts" \
          --replication-factor 3 --config min.insync.replicas=2 >/dev/null ||
          { FAILED=1; log "topic create $t failed"; }
        topics+=("$t")
      done
    done
  done
  wait_isr_full "$ns" 60 "${topics[@]}" || FAILED=1
  local name
  SERVER_PIDS=()
  for name in broker1 broker2 broker3 coordinator1 coordinator2 coordinator3 ns1 ns2; do
    SERVER_PIDS+=("$(cat "$d/$name.pid")")
  done
  for parts in 1 3; do
    for size in 100 1024; do
      for acks in all 1; do
        bench_one cluster-rf3 "$ns" "r-p$parts-$size-a$acks" "$parts" "$size" "$acks"
      done
    done
  done
  # After the runs: every replica back in the ISR, high watermark = records.
  wait_isr_full "$ns" 30 "${topics[@]}" || FAILED=1
  for t in "${topics[@]}"; do
    echo "== $t"; "$TOOL" --nameserver "$ns" topic describe "$t" 2>&1 || true
  done >"$WORK/cluster-describe.txt"
  # Each topic was written once: its high watermarks add up to the records sent.
  local want hw
  for t in "${topics[@]}"; do
    want="$RECORDS_100B"; [[ "$t" == *-1024-* ]] && want="$RECORDS_1KB"
    hw="$(describe_rows "$ns" "$t" | awk '{ s += $5 } END { print s + 0 }')"
    if [[ "$hw" != "$want" ]]; then
      FAILED=1; log "$t: high watermarks add up to $hw, $want records were acknowledged"
    fi
  done
  check_alive "$d" cluster
  report_logs "$d" cluster
  cluster_stop "$d"
}

# ---------------------------------------------------------------- idle cost
IDLE=()  # "process|pid|cpu%|rss MB|hwm MB|threads|fds"

status_kb() {  # status_kb PID FIELD
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

run_idle() {
  local d="$WORK/idle" ns
  cluster_start "$d" || { FAILED=1; log "cluster start failed"; return 1; }
  ns="$(cluster_ns)"
  local per=$((IDLE_PARTITIONS / IDLE_TOPICS)) i topics=() t0
  t0=$SECONDS
  for ((i = 0; i < IDLE_TOPICS; i++)); do
    local t="idle-$i"
    run_logged "$TOOL" --nameserver "$ns" topic create "$t" --partitions "$per" \
      --replication-factor 3 >/dev/null || { FAILED=1; log "topic create $t failed"; }
    topics+=("$t")
  done
  log "created $((per * IDLE_TOPICS)) partitions in $((SECONDS - t0))s; waiting for full ISRs"
  wait_isr_full "$ns" 300 "${topics[@]}" || FAILED=1
  local leaders
  leaders="$(for t in "${topics[@]}"; do describe_rows "$ns" "$t"; done |
    awk '{ c[$2]++ } END { for (b in c) printf "broker %s leads %d; ", b, c[b] }')"
  log "ISRs full after $((SECONDS - t0))s; $leaders"
  sleep "$IDLE_SETTLE"

  local names=() pids=() ticks0=() name pid
  for name in broker1 broker2 broker3 coordinator1 coordinator2 coordinator3 ns1 ns2; do
    pid="$(cat "$d/$name.pid")"
    names+=("$name"); pids+=("$pid")
  done
  local start end
  start="$(date +%s.%N)"
  for pid in "${pids[@]}"; do ticks0+=("$(stat_ticks "$pid")"); done
  log "measuring CPU for ${IDLE_SECONDS}s"
  sleep "$IDLE_SECONDS"
  local k
  for k in "${!pids[@]}"; do
    pid="${pids[$k]}"
    if [[ ! -r "/proc/$pid/stat" ]]; then
      IDLE+=("${names[$k]}|$pid|dead|-|-|-|-"); FAILED=1; continue
    fi
    local t1 cpu rss hwm thr fds
    t1="$(stat_ticks "$pid")"
    end="$(date +%s.%N)"
    cpu="$(awk -v a="${ticks0[$k]}" -v b="$t1" -v hz="$CLK_TCK" -v s="$start" -v e="$end" \
           'BEGIN { printf "%.2f", 100 * (b - a) / hz / (e - s) }')"
    rss="$(awk -v k="$(status_kb "$pid" VmRSS)" 'BEGIN { printf "%.1f", k / 1024 }')"
    hwm="$(awk -v k="$(status_kb "$pid" VmHWM)" 'BEGIN { printf "%.1f", k / 1024 }')"
    thr="$(awk '$1 == "Threads:" { print $2 }' "/proc/$pid/status")"
    fds="$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)"
    IDLE+=("${names[$k]}|$pid|$cpu|$rss|$hwm|$thr|$fds")
  done
  IDLE_LEADERS="$leaders"
  check_alive "$d" idle
  report_logs "$d" idle
  cluster_stop "$d"
}

IDLE_LEADERS=""
log "work directory $WORK; load: $(cut -d' ' -f1-3 /proc/loadavg)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
if has_phase single; then run_single || true; fi
if has_phase cluster; then run_cluster || true; fi
if has_phase idle; then run_idle || true; fi
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- summary
single_rps() {  # single_rps PARTITIONS SIZE
  local row
  for row in "${THROUGHPUT[@]:-}"; do
    IFS='|' read -r setup parts size _ _ rps _ <<<"$row"
    [[ "$setup" == single && "$parts" == "$1" && "$size" == "$2" ]] && { echo "$rps"; return; }
  done
  echo ""
}

echo
echo "== throughput (MB = 10^6 bytes of record values; ratio = records/s over single-node acks=1, same partitions and size;"
echo "   srv/cli cpu = CPU seconds of all server processes / of the bench client during the run; cores = (srv+cli) / wall time of the whole bench command, start-up included)"
printf '%-12s %5s %6s %4s %9s %12s %8s %6s %7s %8s %8s %6s %s\n' setup parts size acks records records/s MB/s errors ratio srv_cpu cli_cpu cores leaders
json_tp=""
for row in "${THROUGHPUT[@]:-}"; do
  [[ -n "$row" ]] || continue
  IFS='|' read -r setup parts size acks n rps mb errs leaders scpu ccpu wall note <<<"$row"
  base="$(single_rps "$parts" "$size")"
  ratio="$(awk -v a="$rps" -v b="$base" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }')"
  cores="$(awk -v s="$scpu" -v c="$ccpu" -v w="$wall" \
           'BEGIN { if (w > 0) printf "%.2f", (s + c) / w; else printf "-" }')"
  printf '%-12s %5s %6s %4s %9s %12.0f %8.1f %6s %7s %8s %8s %6s %s %s\n' "$setup" "$parts" "$size" \
    "$acks" "$n" "$rps" "$mb" "$errs" "$ratio" "$scpu" "$ccpu" "$cores" "$leaders" "$note"
  json_tp+="${json_tp:+,}{\"setup\":\"$setup\",\"partitions\":$parts,\"record_size\":$size,\"acks\":\"$acks\",\"records\":$n,\"records_per_sec\":$rps,\"mb_per_sec\":$mb,\"errors\":$errs,\"ratio_to_single\":\"$ratio\",\"server_cpu_s\":$scpu,\"client_cpu_s\":$ccpu,\"command_wall_s\":$wall,\"leaders\":\"$leaders\"}"
done

json_idle=""
if [[ ${#IDLE[@]} -gt 0 ]]; then
  echo
  echo "== idle: $IDLE_PARTITIONS partitions (rf 3) in $IDLE_TOPICS topics, no traffic, CPU over ${IDLE_SECONDS}s (% of one core)"
  echo "   leaders: $IDLE_LEADERS"
  printf '%-13s %8s %7s %8s %8s %8s %6s\n' process pid cpu% rss_MB hwm_MB threads fds
  for row in "${IDLE[@]}"; do
    IFS='|' read -r name pid cpu rss hwm thr fds <<<"$row"
    printf '%-13s %8s %7s %8s %8s %8s %6s\n' "$name" "$pid" "$cpu" "$rss" "$hwm" "$thr" "$fds"
    json_idle+="${json_idle:+,}{\"process\":\"$name\",\"cpu_pct\":\"$cpu\",\"rss_mb\":\"$rss\",\"hwm_mb\":\"$hwm\",\"threads\":\"$thr\",\"fds\":\"$fds\"}"
  done
fi

cat >"$OUT_JSON" <<EOF
{"date":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","load_before":"$LOAD_BEFORE","load_after":"$LOAD_AFTER","failed":$FAILED,"throughput":[$json_tp],"idle_partitions":$IDLE_PARTITIONS,"idle_seconds":$IDLE_SECONDS,"idle":[$json_idle]}
EOF
echo
echo "load average before: $LOAD_BEFORE; after: $LOAD_AFTER"
echo "json: $OUT_JSON"
cat "$OUT_JSON"
echo "commands:"
for c in "${COMMANDS[@]}"; do echo "  $c"; done
[[ "$FAILED" == 0 ]] || { echo "SOMETHING FAILED (see messages above; logs in $WORK)"; exit 1; }

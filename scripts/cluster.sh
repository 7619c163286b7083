#!/usr/bin/env bash
# A whole Brook cluster on one machine, on loopback: 2 name servers, 3
# coordinators (one Raft quorum) and 3 brokers, each its own brook-server
# process with its own data directory, log file and pid file under DIR.
#
#   scripts/cluster.sh start  [DIR]   start every process that is not running, wait
#                                     until each printed `ready` (restarts killed ones)
#   scripts/cluster.sh stop   [DIR]   SIGTERM brokers (one by one), coordinators, name servers
#   scripts/cluster.sh status [DIR]   which processes are alive
#
# DIR defaults to ./cluster-data; data kept there survives stop/start. The
# binary is ${BROOK_BUILD_DIR:-build}/server/brook-server (or $BROOK_SERVER).
# Ports are fixed (table below) and shifted by $BROOK_CLUSTER_PORT_OFFSET
# (default 0; use a multiple of 1000 for a second cluster side by side), which
# is remembered in DIR/ports.env. $BROOK_CLUSTER_TIMEOUT (seconds, default 30)
# bounds the wait for `ready` at start and for each exit at stop.
# $BROOK_CLUSTER_CONFIG names a ServerConfig file (docs/operations.md) given to
# every process with --config (leases, timeouts...); the flags set here win.
# Topics created without a replication factor get 3.
set -euo pipefail

usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
  exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
dir=${2:-./cluster-data}
build_dir=${BROOK_BUILD_DIR:-build}
server=${BROOK_SERVER:-$build_dir/server/brook-server}
timeout_s=${BROOK_CLUSTER_TIMEOUT:-30}
if [ -z "${BROOK_CLUSTER_PORT_OFFSET:-}" ] && [ -f "$dir/ports.env" ]; then
  # shellcheck disable=SC1091
  . "$dir/ports.env"
fi
off=${BROOK_CLUSTER_PORT_OFFSET:-0}
[[ "$off" =~ ^[0-9]+$ ]] || { echo "cluster.sh: BROOK_CLUSTER_PORT_OFFSET must be a number" >&2; exit 2; }
host=127.0.0.1

# name  role  id  listen-port  admin-port
nodes=(
  "ns1          nameserver   1  $((19876 + off))  $((19601 + off))"
  "ns2          nameserver   2  $((19877 + off))  $((19602 + off))"
  "coordinator1 coordinator  1  $((19093 + off))  $((19611 + off))"
  "coordinator2 coordinator  2  $((19193 + off))  $((19612 + off))"
  "coordinator3 coordinator  3  $((19293 + off))  $((19613 + off))"
  "broker1      broker       1  $((19092 + off))  $((19621 + off))"
  "broker2      broker       2  $((19192 + off))  $((19622 + off))"
  "broker3      broker       3  $((19292 + off))  $((19623 + off))"
)

field() {  # field NODE-LINE INDEX
  local -a f
  read -r -a f <<<"$1"
  echo "${f[$2]}"
}

quorum=""
nameservers=""
for n in "${nodes[@]}"; do
  case $(field "$n" 1) in
    coordinator) quorum+="${quorum:+,}$(field "$n" 2)@$host:$(field "$n" 3)" ;;
    nameserver) nameservers+="${nameservers:+,}$host:$(field "$n" 3)" ;;
  esac
done

alive() {  # alive PID: running (a zombie waiting to be reaped counts as exited)
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null) || return 0
  [ "$state" != Z ]
}

pid_of() {  # prints the pid of NAME when that process is alive
  local pidfile="$dir/$1.pid" pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  # A recycled pid is not ours: the process must be a brook-server.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q brook-server || return 1
  echo "$pid"
}

args_for() {  # the brook-server arguments of one node
  local name role id port admin
  read -r name role id port admin <<<"$1"
  local -a a=(--roles "$role" --data-dir "$dir/$name" --admin-listen "$host:$admin")
  if [ -n "${BROOK_CLUSTER_CONFIG:-}" ]; then a+=(--config "$BROOK_CLUSTER_CONFIG"); fi
  case $role in
    nameserver) a+=(--nameserver-listen "$host:$port") ;;
    coordinator)
      a+=(--coordinator-id "$id" --coordinator-listen "$host:$port"
          --coordinator-quorum "$quorum" --default-replication-factor 3) ;;
    broker)
      a+=(--broker-id "$id" --broker-listen "$host:$port"
          --coordinator-quorum "$quorum" --nameservers "$nameservers") ;;
  esac
  printf '%s\n' "${a[@]}"
}

start_node() {
  local n=$1 name
  name=$(field "$n" 0)
  mkdir -p "$dir/$name"
  # The previous run's log is kept as NAME.log.1 (`ready` is looked for in a fresh log).
  if [ -f "$dir/$name.log" ]; then mv -f "$dir/$name.log" "$dir/$name.log.1"; fi
  local -a a
  mapfile -t a < <(args_for "$n")
  # setsid: the servers outlive this shell and a Ctrl-C in it.
  setsid "$server" "${a[@]}" >"$dir/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

wait_ready() {  # wait_ready NAME: until its log has a `ready` line
  local name=$1 deadline=$((SECONDS + timeout_s))
  while ! grep -qx ready "$dir/$name.log" 2>/dev/null; do
    if ! pid_of "$name" >/dev/null; then
      echo "cluster.sh: $name exited before it was ready; end of $dir/$name.log:" >&2
      tail -n 20 "$dir/$name.log" >&2 || true
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster.sh: $name not ready after ${timeout_s}s; end of $dir/$name.log:" >&2
      tail -n 20 "$dir/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
}

wait_healthy() {  # wait_healthy NAME ADMIN-PORT: /healthz answers 200 (broker registered)
  command -v curl >/dev/null || return 0
  local name=$1 port=$2 deadline=$((SECONDS + timeout_s))
  until curl -fs -o /dev/null "http://$host:$port/healthz"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "cluster.sh: $name is running but not healthy after ${timeout_s}s" \
           "(has it reached the coordinator quorum? see $dir/$name.log)" >&2
      return 1
    fi
    sleep 0.2
  done
}

stop_node() {  # stop_node NAME: SIGTERM, then wait for the exit
  local name=$1 pid deadline start=$SECONDS
  pid=$(pid_of "$name") || { rm -f "$dir/$name.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout_s))
  while alive "$pid"; do
    if [ $SECONDS -ge $deadline ]; then
      echo "  $name (pid $pid) still running after ${timeout_s}s; left alone" >&2
      return 1
    fi
    sleep 0.1
  done
  rm -f "$dir/$name.pid"
  echo "  $name (pid $pid) stopped after $((SECONDS - start))s"
}

do_start() {
  [ -x "$server" ] || {
    echo "cluster.sh: no server binary at $server (build it: make build, or set BROOK_BUILD_DIR)" >&2
    exit 1
  }
  mkdir -p "$dir"
  echo "BROOK_CLUSTER_PORT_OFFSET=$off" >"$dir/ports.env"
  local n name missing=()
  for n in "${nodes[@]}"; do
    pid_of "$(field "$n" 0)" >/dev/null || missing+=("$n")
  done
  if [ ${#missing[@]} -lt ${#nodes[@]} ] && [ ${#missing[@]} -gt 0 ]; then
    echo "some processes already run in $dir; starting the others"
  fi
  # Name servers and the whole quorum first (a coordinator needs its peers to
  # elect a leader), then the brokers.
  local failed=0
  for n in "${missing[@]}"; do
    [ "$(field "$n" 1)" = broker ] || start_node "$n"
  done
  for n in "${missing[@]}"; do
    [ "$(field "$n" 1)" = broker ] || wait_ready "$(field "$n" 0)" || failed=1
  done
  if [ $failed -eq 0 ]; then
    for n in "${missing[@]}"; do
      if [ "$(field "$n" 1)" = broker ]; then start_node "$n"; fi
    done
    for n in "${missing[@]}"; do
      [ "$(field "$n" 1)" = broker ] || continue
      name=$(field "$n" 0)
      { wait_ready "$name" && wait_healthy "$name" "$(field "$n" 4)"; } || failed=1
    done
  fi
  if [ $failed -ne 0 ]; then
    echo "cluster.sh: start failed; stopping the cluster" >&2
    do_stop >&2 || true
    exit 1
  fi
  echo "cluster running in $dir (logs: $dir/<name>.log)"
  for n in "${nodes[@]}"; do
    name=$(field "$n" 0)
    printf '  %-13s pid %-7s %-11s %s:%s  admin http://%s:%s\n' "$name" "$(pid_of "$name")" \
      "$(field "$n" 1)" "$host" "$(field "$n" 3)" "$host" "$(field "$n" 4)"
  done
  echo "coordinator quorum: $quorum"
  echo "clients: --nameserver $nameservers"
  echo "     or: export BROOK_NAMESERVER=$nameservers"
}

do_stop() {
  [ -d "$dir" ] || { echo "cluster.sh: no cluster directory $dir" >&2; return 0; }
  local i rc=0
  echo "stopping the cluster in $dir"
  # Brokers one at a time, so each hands its partitions' leadership to the
  # brokers still running; then the coordinators and name servers.
  for role in broker coordinator nameserver; do
    for ((i = ${#nodes[@]} - 1; i >= 0; i--)); do
      [ "$(field "${nodes[$i]}" 1)" = "$role" ] || continue
      stop_node "$(field "${nodes[$i]}" 0)" || rc=1
    done
  done
  return $rc
}

do_status() {
  local n name pid alive=0
  for n in "${nodes[@]}"; do
    name=$(field "$n" 0)
    if pid=$(pid_of "$name"); then
      printf '  %-13s running  pid %-7s %s:%s\n' "$name" "$pid" "$host" "$(field "$n" 3)"
      alive=$((alive + 1))
    else
      printf '  %-13s stopped\n' "$name"
    fi
  done
  echo "$alive of ${#nodes[@]} processes running in $dir"
  [ $alive -gt 0 ]
}

case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  *) usage ;;
esac

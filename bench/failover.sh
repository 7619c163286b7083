#!/usr/bin/env bash
# Fail-over time of a local Brook cluster (1 name server, 3 coordinators,
# 3 brokers, each its own brook-server process): kill -9 of a partition
# leader -> first acknowledged write on the new leader, and kill -9 of the
# coordinator leader -> first topic creation, 20 kills each; prints p50/p99.
#
# Usage: bench/failover.sh [BUILD_DIR] [-- brook-bench-failover flags]
#   e.g. bench/failover.sh build -- --kills 20 --json
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true
[[ "${1:-}" == "--" ]] && shift
cmake --build "$build" --target brook-bench-failover brook-server >/dev/null
exec "$build/tests/integration/brook-bench-failover" "$@"

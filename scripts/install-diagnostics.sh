#!/usr/bin/env bash
# Tools the soak's memory diagnostics use (bench/chaos.ts, CHAOS_LONE_MINER): jemalloc, to run a miner on another
# allocator, and heaptrack, to record a miner's native allocations with their stacks. Neither is needed to run or
# test AI-LINK; CI does not install them.
set -euo pipefail
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
MISSING=""
for pkg in libjemalloc2 heaptrack; do
  dpkg -s "$pkg" >/dev/null 2>&1 || MISSING="$MISSING $pkg"
done
if [ -n "$MISSING" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING
fi
echo "installed: libjemalloc2 heaptrack"

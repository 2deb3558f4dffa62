#!/usr/bin/env bash
# Runs the performance study of docs/performance.md and draws its plots:
#   tools/run-study.sh BUILD_DIR OUT_DIR [BOOTS]     (BOOTS of the 2-node guest, default 3)
# Host: everything that moves memory on this machine's one node (the userspace path against
# memcpy up to 1 GiB, queries, the allocator). Guest: the 2-node QEMU guest (2 vCPUs, 256 MiB
# per node, so moves stop at 64 MiB), every way to move memory and migrate()'s workers, BOOTS
# boots pooled. Leaves OUT_DIR/{host,guest}/*.csv and the PNGs beside them.
set -euo pipefail
build=$1 out=$2 boots=${3:-3}
study="$build/benchmarks/throughput_study"
[ -x "$study" ] || { echo "run-study.sh: build $study first" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out/host" "$out/guest"
# The machine, and how busy it was before and after: the figures mean little on a loaded host.
{ uname -sr; nproc; grep -m1 'model name' /proc/cpuinfo; echo "load before: $(cat /proc/loadavg)"; } \
  > "$out/machine.txt"
"$study" moves 1024 3 > "$out/host/moves.csv"
"$study" queries 256 5 > "$out/host/queries.csv"
"$study" allocator 1024 5 > "$out/host/allocator.csv"
"$study" workers 256 3 > "$out/host/workers.csv"
"$here/tools/plot-study.sh" "$out/host" "$out/host"/*.csv
for boot in $(seq 1 "$boots"); do
  for run in "moves 64 3" "workers 64 3"; do
    name=${run%% *}-boot$boot
    # The guest's console carries the program's output: keep the CSV rows.
    "$here/tests/vm/run-guest.sh" --plain --shape 2node --timeout 1200 --binary "$study" \
      --log "$out/guest/$name.log" -- $run > /dev/null
    grep -a -E '^(study|moves|workers),|^#' "$out/guest/$name.log" | tr -d '\r' > "$out/guest/$name.csv"
  done
done
"$here/tools/plot-study.sh" "$out/guest" "$out/guest"/*.csv
echo "load after: $(cat /proc/loadavg)" >> "$out/machine.txt"

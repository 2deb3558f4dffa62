#!/usr/bin/env bash
# Runs the heat-equation demo (examples/heat_equation.cpp): natively on a machine with two or
# more NUMA nodes, otherwise inside a 4-node QEMU guest (tests/vm/run-guest.sh), and says which.
#
#   examples/run-demo.sh [--rows N] [--columns N] [--steps N] [--threads N]
#
# Builds the demo first (Release, in build-demo/ or $NUMAMOVE_DEMO_BUILD). Exit status: the
# demo's, or 1 when the guest did not run it to the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NUMAMOVE_DEMO_BUILD:-$root/build-demo}

if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "run-demo.sh: configuring $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DNUMAMOVE_BUILD_TESTS=OFF \
    -DNUMAMOVE_BUILD_BENCHMARKS=OFF >/dev/null
fi
cmake --build "$build" --target heat_equation -j "$(nproc)" >"$build/demo-build.log" 2>&1 || {
  cat "$build/demo-build.log" >&2
  echo "run-demo.sh: the demo did not build (does the compiler have OpenMP?)" >&2
  exit 1
}
demo=$build/examples/heat_equation

# Nodes with memory, as the kernel lists them ("0-3,8").
nodes=0
IFS=, read -ra ranges < /sys/devices/system/node/has_memory
for r in "${ranges[@]}"; do
  first=${r%-*} last=${r#*-}
  nodes=$((nodes + last - first + 1))
done

if [ "$nodes" -ge 2 ]; then
  exec "$demo" "$@"
fi

# The guest's nodes have 128 MiB each, and page moves in it are slow whenever other virtual
# CPUs are busy (TCG emulates each TLB-shootdown interrupt): a smaller grid keeps it short.
[ $# -gt 0 ] || set -- --rows 1024 --columns 512 --steps 10

echo "run-demo.sh: this machine has one NUMA node: running the demo in a 4-node QEMU guest (about 30 s)."
echo "run-demo.sh: The guest's nodes and page moves are the kernel's own; its timings are emulated"
echo "run-demo.sh: (no NUMA latency, slow concurrent moves), so compare them only with each other."
work=$(mktemp -d "${TMPDIR:-/tmp}/numamove-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$root/tests/vm/run-guest.sh" --shape 4node --binary "$demo" --log "$work/console.log" -- "$@" \
  >"$work/harness.log" 2>&1 || true
# The demo's own lines: between the guest's "running" line and the exit marker.
if ! grep -q '^NUMAMOVE-GUEST-EXIT=' "$work/console.log" 2>/dev/null; then
  cat "$work/harness.log" >&2
  echo "run-demo.sh: the guest did not run the demo to the end" >&2
  exit 1
fi
tr -d '\r' < "$work/console.log" | sed -n '/^guest: running /,/^NUMAMOVE-GUEST-EXIT=/p' | sed '1d;$d' | grep -v -e '^\[ *[0-9.]*\] ' -e '^guest: ' || true
status=$(tr -d '\r' < "$work/console.log" | sed -n 's/^NUMAMOVE-GUEST-EXIT=\([0-9]*\)$/\1/p' | tail -n 1)
exit "$status"

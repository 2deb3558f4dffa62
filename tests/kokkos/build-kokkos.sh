#!/usr/bin/env bash
# Builds and installs Kokkos from an upstream source archive into a build-tree prefix, for the
# Kokkos tests (tools/quickstart.sh test). Serial and OpenMP backends, Release, Kokkos' own tests
# off. Reuses an installation that is already complete.
#   tests/kokkos/build-kokkos.sh ARCHIVE WORK-DIR     prints the prefix (WORK-DIR/install)
set -euo pipefail
archive=$1
work=$2
prefix=$work/install
stamp=$prefix/.numamove-built-from
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(basename "$archive")" ]; then
  echo "$prefix"
  exit 0
fi
rm -rf "$work"
mkdir -p "$work/source"
tar -xJf "$archive" -C "$work/source" --strip-components=1
cmake -S "$work/source" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ENABLE_SERIAL=ON -DKokkos_ENABLE_OPENMP=ON \
  -DKokkos_ENABLE_TESTS=OFF -DKokkos_ENABLE_EXAMPLES=OFF >&2
cmake --build "$work/build" -j"$(nproc)" >&2
cmake --install "$work/build" >&2
rm -rf "$work/source" "$work/build"
basename "$archive" > "$stamp"
echo "$prefix"

#!/usr/bin/env bash
# Builds and runs the Kokkos consumer project against the Kokkos whose config is in KOKKOS_DIR:
#   check_kokkos.sh install SOURCE_DIR BUILD_DIR KOKKOS_DIR           find_package(numamove COMPONENTS kokkos)
#   check_kokkos.sh add_subdirectory SOURCE_DIR BUILD_DIR KOKKOS_DIR
set -euo pipefail
mode=$1 source=$2 work=$3/packaging-kokkos-$1 kokkos_dir=$4
rm -rf "$work" && mkdir -p "$work"
consumer="$source/tests/packaging/kokkos_consumer"
case "$mode" in
  install)
    cmake -S "$source" -B "$work/numamove" -DNUMAMOVE_BUILD_TESTS=OFF -DNUMAMOVE_BUILD_EXAMPLES=OFF \
      -DNUMAMOVE_BUILD_BENCHMARKS=OFF -DKokkos_DIR="$kokkos_dir" -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
    cmake --build "$work/numamove" >/dev/null  # numamove's compiled parts, if any
    cmake --install "$work/numamove" >/dev/null
    consume=(-DCMAKE_PREFIX_PATH="$work/prefix") ;;
  add_subdirectory)
    consume=(-DNUMAMOVE_CONSUME=add_subdirectory -DNUMAMOVE_SOURCE_DIR="$source") ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
# Release and Debug: the strict warnings hold in every build type.
for type in Release Debug; do
  cmake -S "$consumer" -B "$work/consumer-$type" -DCMAKE_BUILD_TYPE=$type "${consume[@]}" -DKokkos_DIR="$kokkos_dir" >/dev/null
  cmake --build "$work/consumer-$type"
  OMP_PROC_BIND=false "$work/consumer-$type/consumer_kokkos"
done

#!/usr/bin/env bash
# Builds and runs the consumer project the way users get numamove:
#   check.sh install SOURCE_DIR BUILD_DIR        cmake --install, then find_package(numamove)
#   check.sh add_subdirectory SOURCE_DIR BUILD_DIR
#   check.sh pkg-config SOURCE_DIR BUILD_DIR     cmake --install, then pkg-config --cflags numamove
set -euo pipefail
mode=$1 source=$2 work=$3/packaging-$1
rm -rf "$work" && mkdir -p "$work"
consumer="$source/tests/packaging/consumer"
# Builds the consumer in Release and in Debug (the strict warnings hold in every build type),
# each with the CMake arguments given, and runs its programs; the MPI one, built where numamove
# found MPI, as two real ranks under mpirun.
build_and_run_consumer() {
  for type in Release Debug; do
    local dir="$work/consumer-$type"
    cmake -S "$consumer" -B "$dir" -DCMAKE_BUILD_TYPE=$type "$@" >/dev/null
    cmake --build "$dir"
    "$dir/consumer"
    "$dir/consumer_openmp"
    if [ -x "$dir/consumer_mpi" ]; then
      mpirun --allow-run-as-root --oversubscribe -np 2 "$dir/consumer_mpi"
    elif command -v mpicxx >/dev/null; then
      echo "check.sh: MPI is installed but numamove::mpi was not built" >&2; return 1
    fi
  done
}
case "$mode" in
  install|pkg-config)
    cmake -S "$source" -B "$work/numamove" -DNUMAMOVE_BUILD_TESTS=OFF -DNUMAMOVE_BUILD_EXAMPLES=OFF \
      -DNUMAMOVE_BUILD_BENCHMARKS=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
    cmake --build "$work/numamove" >/dev/null  # the compiled parts: the MPI hooks' libraries
    cmake --install "$work/numamove" >/dev/null
    if [ "$mode" = install ]; then
      build_and_run_consumer -DCMAKE_PREFIX_PATH="$work/prefix"
    else
      export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig"
      for optimization in -O0 "-O2 -DNDEBUG"; do
        c++ $optimization -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror $(pkg-config --cflags numamove) \
          "$consumer/main.cpp" $(pkg-config --libs numamove) -o "$work/consumer-pc"
        "$work/consumer-pc"
      done
    fi ;;
  add_subdirectory)
    build_and_run_consumer -DNUMAMOVE_CONSUME=add_subdirectory -DNUMAMOVE_SOURCE_DIR="$source" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

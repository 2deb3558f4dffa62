#!/usr/bin/env bash
# Builds and runs the consumer project the way users get numamove:
#   check.sh install SOURCE_DIR BUILD_DIR        cmake --install, then find_package(numamove)
#   check.sh add_subdirectory SOURCE_DIR BUILD_DIR
#   check.sh pkg-config SOURCE_DIR BUILD_DIR     cmake --install, then pkg-config --cflags numamove
set -euo pipefail
mode=$1 source=$2 work=$3/packaging-$1
rm -rf "$work" && mkdir -p "$work"
consumer="$source/tests/packaging/consumer"
# Built where numamove found MPI: two real ranks under mpirun.
run_mpi_consumer() {
  if [ -x "$work/consumer/consumer_mpi" ]; then
    mpirun --allow-run-as-root --oversubscribe -np 2 "$work/consumer/consumer_mpi"
  elif command -v mpicxx >/dev/null; then
    echo "check.sh: MPI is installed but numamove::mpi was not built" >&2; return 1
  fi
}
case "$mode" in
  install|pkg-config)
    cmake -S "$source" -B "$work/numamove" -DNUMAMOVE_BUILD_TESTS=OFF -DNUMAMOVE_BUILD_EXAMPLES=OFF \
      -DNUMAMOVE_BUILD_BENCHMARKS=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
    cmake --build "$work/numamove" >/dev/null  # the compiled parts: the MPI hooks' libraries
    cmake --install "$work/numamove" >/dev/null
    if [ "$mode" = install ]; then
      cmake -S "$consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
      cmake --build "$work/consumer"
      "$work/consumer/consumer"
      "$work/consumer/consumer_openmp"
      run_mpi_consumer
    else
      export PKG_CONFIG_PATH="$work/prefix/share/pkgconfig"
      c++ -Wall -Wextra -Wpedantic -Werror $(pkg-config --cflags numamove) "$consumer/main.cpp" \
        $(pkg-config --libs numamove) -o "$work/consumer-pc"
      "$work/consumer-pc"
    fi ;;
  add_subdirectory)
    cmake -S "$consumer" -B "$work/consumer" -DNUMAMOVE_CONSUME=add_subdirectory \
      -DNUMAMOVE_SOURCE_DIR="$source" >/dev/null
    cmake --build "$work/consumer"
    "$work/consumer/consumer"
    "$work/consumer/consumer_openmp"
    run_mpi_consumer ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

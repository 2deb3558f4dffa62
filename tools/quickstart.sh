#!/usr/bin/env bash
# numamove's two front doors, for a fresh Debian 12 machine as root (README, quick start):
#   tools/quickstart.sh demo   build and run the demo: the heat-equation simulation whose data
#                              follows its threads (examples/run-demo.sh; in a 4-node QEMU
#                              guest when this machine has one NUMA node)
#   tools/quickstart.sh test   build and run the whole test suite: every ctest label (unit,
#                              packaging, docs, openmp, kokkos, mpi, the NUMA guests), then the
#                              unit tests in a Release build, the ASan+UBSan and the
#                              ThreadSanitizer builds, the Kokkos tests
#                              against Kokkos 4.6 (../shared/vendor), and a bounded fuzzing run
# Installs the Debian packages in tools/debian-packages.txt that are missing (needs root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${NUMAMOVE_BUILD_DIR:-$root/build}
jobs=$(nproc)

install_missing_packages() {
  local wanted missing=()
  mapfile -t wanted < <(grep -v -e '^#' -e '^$' "$root/tools/debian-packages.txt")
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "quickstart: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
}

configure_and_build() {  # build-dir extra-cmake-args...
  local dir=$1; shift
  cmake -S "$root" -B "$dir" "$@"
  cmake --build "$dir" -j"$jobs"
}

case "${1:-}" in
  demo)
    install_missing_packages
    exec "$root/examples/run-demo.sh" ;;
  test)
    install_missing_packages
    # The guests are part of the suite: a missing QEMU or guest kernel is an error, not a skip.
    configure_and_build "$build" -DNUMAMOVE_VM_TESTS=ON
    ctest --test-dir "$build" --output-on-failure
    # A Release build of the tests (-O3): GCC's optimizer warns where Debug does not. C++17
    # only, as the sanitizers below: C++20 is built and run above.
    cmake -S "$root" -B "$build-release" -DCMAKE_BUILD_TYPE=Release -DNUMAMOVE_VM_TESTS=OFF \
      -DNUMAMOVE_BUILD_EXAMPLES=OFF -DNUMAMOVE_BUILD_BENCHMARKS=OFF
    cmake --build "$build-release" -j"$jobs" --target numamove_tests_cxx17
    ctest --test-dir "$build-release" --output-on-failure -R '^unit\.cxx17$'
    # Sanitizers over the tests that run on this machine, C++17 only: the headers have no code
    # that differs by standard.
    cmake -S "$root" -B "$build-asan" -DCMAKE_BUILD_TYPE=Debug -DNUMAMOVE_SANITIZE=address,undefined \
      -DNUMAMOVE_VM_TESTS=OFF -DNUMAMOVE_BUILD_EXAMPLES=OFF -DNUMAMOVE_BUILD_BENCHMARKS=OFF
    cmake --build "$build-asan" -j"$jobs" --target numamove_tests_cxx17 numamove_kokkos_tests
    ctest --test-dir "$build-asan" --output-on-failure -L "unit|kokkos" -LE packaging -E 'cxx20$'
    # numamove/kokkos.hpp against Kokkos 4 (Serial and OpenMP) too; the builds above used
    # Debian's Kokkos 3.4. Kokkos 4.6.01 from ../shared/vendor, built once into $build-kokkos-4.6.01.
    kokkos_archive=$root/../shared/vendor/kokkos-4.6.01.tar.xz
    if [ -f "$kokkos_archive" ]; then
      kokkos_prefix=$("$root/tests/kokkos/build-kokkos.sh" "$kokkos_archive" "$build-kokkos-4.6.01")
      cmake -S "$root" -B "$build-kokkos4" -DKokkos_ROOT="$kokkos_prefix" -DCMAKE_BUILD_TYPE=Release \
        -DNUMAMOVE_VM_TESTS=ON
      cmake --build "$build-kokkos4" -j"$jobs" --target numamove_kokkos_tests kokkos_stencil kokkos_space
      ctest --test-dir "$build-kokkos4" --output-on-failure -L kokkos
      cmake -S "$root" -B "$build-kokkos4-asan" -DKokkos_ROOT="$kokkos_prefix" -DCMAKE_BUILD_TYPE=Debug \
        -DNUMAMOVE_SANITIZE=address,undefined -DNUMAMOVE_VM_TESTS=OFF -DNUMAMOVE_BUILD_EXAMPLES=OFF \
        -DNUMAMOVE_BUILD_BENCHMARKS=OFF
      cmake --build "$build-kokkos4-asan" -j"$jobs" --target numamove_kokkos_tests
      ctest --test-dir "$build-kokkos4-asan" --output-on-failure -L kokkos -LE packaging
    else
      echo "quickstart: $kokkos_archive not found: numamove/kokkos.hpp tested with Debian's Kokkos 3.4 only"
    fi
    # ThreadSanitizer with clang: LLVM's libomp with Archer makes the OpenMP tests checkable.
    CXX=clang++-14 cmake -S "$root" -B "$build-tsan" -DCMAKE_BUILD_TYPE=Debug -DNUMAMOVE_SANITIZE=thread \
      -DNUMAMOVE_VM_TESTS=OFF -DNUMAMOVE_BUILD_EXAMPLES=OFF -DNUMAMOVE_BUILD_BENCHMARKS=OFF
    cmake --build "$build-tsan" -j"$jobs" --target numamove_tests_cxx17 numamove_openmp_tests
    ctest --test-dir "$build-tsan" --output-on-failure -L "unit|openmp" -E 'cxx20$'
    # A bounded libFuzzer run over move_pages' arguments, both backends.
    CXX=clang++-14 cmake -S "$root" -B "$build-fuzz" -DNUMAMOVE_BUILD_FUZZERS=ON -DNUMAMOVE_VM_TESTS=OFF \
      -DNUMAMOVE_BUILD_EXAMPLES=OFF -DNUMAMOVE_BUILD_BENCHMARKS=OFF
    cmake --build "$build-fuzz" -j"$jobs" --target numamove_fuzz_move_pages
    ctest --test-dir "$build-fuzz" --output-on-failure -L fuzz ;;
  *)
    echo "usage: $0 demo|test" >&2
    exit 2 ;;
esac

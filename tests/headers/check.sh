#!/usr/bin/env bash
# The headers as users compile them:
#   check.sh self-contained INCLUDE_DIR   every public header compiles alone
#   check.sh strict INCLUDE_DIR           warning-free with the strictest flags users set, with
#                                         g++ and clang++, C++17 and C++20, Debug, Release and
#                                         RelWithDebInfo
#   check.sh guard INCLUDE_DIR            a detail header included directly is refused
# MPI's and Kokkos' headers are included as system headers, as their CMake targets do.
set -euo pipefail
mode=$1 include=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strict=(-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror)
mpi_flags=()
if pkg-config --exists ompi; then
  mpi_flags=(-DOMPI_SKIP_MPICXX=1 $(pkg-config --cflags-only-I ompi | sed 's/-I/-isystem /g'))
fi
compilers=(g++)
command -v clang++-14 >/dev/null && compilers+=(clang++-14)
compile() {  # compile COMPILER SOURCE FLAGS...
  local compiler=$1 source=$2
  shift 2
  "$compiler" -fsyntax-only -fopenmp -I"$include" "$@" "$source"
}
public_headers() {
  (cd "$include" && find numamove -name '*.hpp' -not -path '*/detail/*' | sort)
}
case "$mode" in
  self-contained)
    for header in $(public_headers); do
      [ "$header" = numamove/kokkos.hpp ] && continue  # needs Kokkos: tests/kokkos builds it
      echo "#include <$header>" > "$work/one.cpp"
      compile g++ "$work/one.cpp" -std=c++17 "${strict[@]}" "${mpi_flags[@]}" || { echo "not self-contained: $header"; exit 1; }
    done
    echo "every public header compiles alone" ;;
  strict)
    # Every header, and the templates a user instantiates, compiled to an object file: the
    # optimizer's warnings (-O2, -O3) appear only in code generation.
    {
      echo '#include <numamove/numamove.hpp>'
      echo '#include <numamove/openmp.hpp>'
      [ ${#mpi_flags[@]} -gt 0 ] && echo '#include <numamove/mpi.hpp>'
      cat <<'PROGRAM'
int main() {
  const int node = numamove::topology::system().nodes().front();
  numamove::vector<double> data(1 << 16, 1.0);
  numamove::migrate_options options;
  options.workers = 2;
  const numamove::migration_result moved = numamove::migrate(data, node, options);
  auto pending = numamove::migrate_async(data, node);
  const std::size_t on_node = numamove::bytes_per_node(data.data(), data.size())[node];
  numamove::openmp::static_schedule schedule;
  schedule.iterations = data.size();
  const numamove::openmp::team_migration placed =
      numamove::openmp::place_for_schedule(data.data(), data.size(), schedule);
  auto following = numamove::openmp::follow_async(data.data(), data.size(), schedule);
  const bool done = pending.get() && following.get() && moved && placed.failed() == 0;
  return done && on_node > 0 && numamove::locate(data.data(), 1).size() == 1 ? 0 : 1;
}
PROGRAM
    } > "$work/all.cpp"
    for compiler in "${compilers[@]}"; do
      for standard in 17 20; do
        for build in "-O0 -g" "-O3 -DNDEBUG" "-O2 -g -DNDEBUG"; do  # Debug, Release, RelWithDebInfo
          echo "$compiler -std=c++$standard $build"
          # shellcheck disable=SC2086
          "$compiler" -c -o "$work/all.o" -fopenmp -I"$include" -std=c++$standard $build "${strict[@]}" \
            "${mpi_flags[@]}" "$work/all.cpp"
        done
      done
    done
    echo "warning-free in every build type" ;;
  guard)
    # The two files that open and close a public header's extent are the only detail headers
    # meant to be included from outside detail/.
    for header in $(cd "$include" && find numamove/detail -name '*.hpp' -not -name 'public_header_*' | sort); do
      echo "#include <$header>" > "$work/detail.cpp"
      if compile g++ "$work/detail.cpp" -std=c++17 "${mpi_flags[@]}" > "$work/out" 2>&1; then
        echo "included directly without an error: $header"; exit 1
      fi
      grep -q "$header is internal" "$work/out" ||
        { echo "refused without saying why: $header"; cat "$work/out"; exit 1; }
    done
    echo "every detail header refuses to be included directly" ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Turns throughput_study's CSV into the plots of docs/performance.md:
#   tools/plot-study.sh OUT_DIR FILE.csv...
# Rows of several files (boots) pool: each point is the median of every repeat of a method at
# a size, and the error bars span the fastest and the slowest. Needs gnuplot (gnuplot-nox).
set -euo pipefail
out=$1
shift
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One file per study, method and memory: bytes median min max (seconds), sorted by size.
cat "$@" | grep -v -e '^#' -e '^study,' | sort -t, -k1,1 -k2,2 -k3,3 -k4,4n -k6,6g |
  awk -F, -v dir="$work" '
    function flush() {
      if (n == 0) return
      file = dir "/" study "." method "." memory ".dat"
      print bytes, (n % 2 ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2), t[1], t[n] >> file
      close(file)
    }
    { key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $4
      if (key != last) { flush(); n = 0; last = key; study = $1; method = $2; memory = $3; bytes = $4 }
      t[++n] = $6 }
    END { flush() }'
plot() {  # plot STUDY MEMORY TITLE YLABEL USING
  local study=$1 memory=$2 title=$3 ylabel=$4 using=$5 lines=()
  for data in "$work/$study".*."$memory".dat; do
    [ -e "$data" ] || return 0
    local method=${data#"$work/$study."}
    lines+=("'$data' using $using with yerrorlines title '${method%."$memory".dat}'")
  done
  local IFS=,
  gnuplot <<PLOT
set terminal pngcairo size 900,560 font ",10" noenhanced
set output "$out/$study-$memory.png"
set title "$title"
set logscale x 4
set logscale y 10
set format x "%.0b %BB"
set xlabel "bytes"
set ylabel "$ylabel"
set key outside right
set grid
plot ${lines[*]}
PLOT
  echo "$out/$study-$memory.png"
}
# The workers study at its one size, against the number of workers: workers.<memory>.dat holds
# "workers median min max".
for data in "$work"/workers.*.dat; do
  [ -e "$data" ] || continue
  name=${data#"$work/workers."}
  count=${name%%.*}
  awk -v count="$count" '{ print count, $2, $3, $4 }' "$data" >> "$work/by-workers.${name#*.}"
done
for memory in 4k thp; do
  # Throughput: bytes / seconds, in GB/s; the bars from the slowest and the fastest repeat.
  plot moves "$memory" "Moving memory, $memory pages" "GB/s" '1:($1/$2/1e9):($1/$4/1e9):($1/$3/1e9)'
  # The same rows as time: linear in the bytes where the copy dominates, flat where a fixed
  # per-call cost does.
  for data in "$work"/moves.*."$memory".dat; do
    [ -e "$data" ] && cp "$data" "$work/cost.${data#"$work/moves."}"
  done
  plot cost "$memory" "Time to move memory, $memory pages" "seconds" '1:2:3:4'
  plot queries "$memory" "Where pages are, $memory pages" "seconds" '1:2:3:4'
  if [ -e "$work/by-workers.$memory.dat" ]; then
    sort -n "$work/by-workers.$memory.dat" > "$work/workers-count.migrate.$memory.dat"
    gnuplot <<PLOT
set terminal pngcairo size 900,560 font ",10" noenhanced
set output "$out/workers-$memory.png"
set title "migrate() against workers, $memory pages"
set xlabel "workers"
set ylabel "seconds"
set xtics 1
set xrange [0.5:4.5]
set yrange [0:*]
set grid
plot '$work/workers-count.migrate.$memory.dat' using 1:2:3:4 with yerrorlines title 'migrate'
PLOT
    echo "$out/workers-$memory.png"
  fi
done
plot allocator 4k "Allocation and first touch" "seconds" '1:2:3:4'

#!/usr/bin/env bash
# QEMU's options are comma-separated lists, not array separators:
# shellcheck disable=SC2054
# Boot a multi-node NUMA guest (QEMU, TCG) with an initramfs holding busybox,
# a test binary and the shared libraries it needs, run the binary inside and
# return its result.
#
#   tests/vm/run-guest.sh --shape 4node --binary build/tests/numamove_tests -- "[migrate]"
#
# Everything after "--" is passed to the binary in the guest (default:
# "[multinode]").  Exit status: 0 when the guest booted, the binary ran at
# least one test case and exited 0; 1 on any failure (test failure, guest
# did not boot, tests did not run or did not finish, timeout); 2 on a usage or
# host-setup error (no QEMU, no kernel, unreadable binary).  It never exits 77:
# a guest run is never a "skip".
#
# See docs/testing.md.
set -euo pipefail

prog=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)

usage() {
    cat <<EOF
usage: $prog --shape SHAPE --binary PATH [options] [-- TEST-ARGS...]

shapes:
  2node       2 nodes, 1 CPU + 256 MiB each
  4node       4 nodes, 1 CPU + 128 MiB each, asymmetric SLIT (-numa dist)
  memoryless  node0: CPU + 256 MiB; node1: CPU, no memory;
              node2: 128 MiB, no CPU (nodes with memory are 0 and 2)

options:
  --binary PATH     test binary to run in the guest (required)
  --timeout SECS    wall-clock limit for the whole guest run (default 300)
  --kernel PATH     guest kernel (default: \$NUMAMOVE_VM_KERNEL or the newest /boot/vmlinuz-*)
  --qemu PATH       QEMU binary (default: \$NUMAMOVE_VM_QEMU or qemu-system-x86_64)
  --busybox PATH    static busybox (default: \$NUMAMOVE_VM_BUSYBOX or /bin/busybox)
  --workdir DIR     where to build the initramfs and keep the console log
                    (default: a temporary folder, removed afterwards)
  --log FILE        also copy the guest console log to FILE
  --env NAME=VALUE  set an environment variable for the binary in the guest (repeatable),
                    e.g. --env OMP_PLACES=threads
  --verbose         show the guest kernel's boot messages (drops "quiet")
  --plain           the binary is a program (a demo, a benchmark), not a Catch2 test binary:
                    pass when it exits 0, without looking for a Catch2 summary
  --mpi             add Open MPI's runtime (mpirun, orted, plugins, help files) so that the
                    binary can start MPI jobs in the guest (mpirun --mca plm isolated there)
  --file PATH       copy PATH to the guest's / next to the binary, with its shared libraries
                    (repeatable): the programs and libraries an MPI job runs
  --mpirun N        --mpi, and run the binary as an MPI job of N ranks (mpirun -np N)
  --list-shapes     print the shape names and exit
  -h, --help        this text
EOF
}

die_setup() { echo "$prog: error: $*" >&2; exit 2; }

plain=0 shape='' binary='' timeout_s=300 workdir='' logcopy='' verbose=0
kernel=${NUMAMOVE_VM_KERNEL:-}
qemu=${NUMAMOVE_VM_QEMU:-qemu-system-x86_64}
busybox=${NUMAMOVE_VM_BUSYBOX:-/bin/busybox}
test_args=()
have_test_args=0
guest_env=()
mpi=0
mpirun_ranks=0
extra_files=()

while [ $# -gt 0 ]; do
    case $1 in
        --shape) shape=${2:?}; shift 2 ;;
        --binary) binary=${2:?}; shift 2 ;;
        --timeout) timeout_s=${2:?}; shift 2 ;;
        --kernel) kernel=${2:?}; shift 2 ;;
        --qemu) qemu=${2:?}; shift 2 ;;
        --busybox) busybox=${2:?}; shift 2 ;;
        --workdir) workdir=${2:?}; shift 2 ;;
        --log) logcopy=${2:?}; shift 2 ;;
        --env)
            case ${2:-} in
                [A-Za-z_]*=*) name=${2%%=*}
                    case $name in *[!A-Za-z0-9_]*) die_setup "--env wants NAME=VALUE, got '$2'" ;; esac
                    guest_env+=("$2") ;;
                *) die_setup "--env wants NAME=VALUE, got '${2:-}'" ;;
            esac
            shift 2 ;;
        --verbose) verbose=1; shift ;;
        --plain) plain=1; shift ;;
        --mpi) mpi=1; shift ;;
        --mpirun) mpi=1; mpirun_ranks=${2:?}; shift 2 ;;
        --file) extra_files+=("${2:?}"); shift 2 ;;
        --list-shapes) echo "2node 4node memoryless"; exit 0 ;;
        -h|--help) usage; exit 0 ;;
        --) shift; test_args=("$@"); have_test_args=1; break ;;
        *) usage >&2; die_setup "unknown argument '$1'" ;;
    esac
done
[ "$have_test_args" = 1 ] && [ ${#test_args[@]} -gt 0 ] || test_args=("[multinode]")

[ -n "$shape" ] || { usage >&2; die_setup "--shape is required"; }
[ -n "$binary" ] || { usage >&2; die_setup "--binary is required"; }
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die_setup "test binary '$binary' is not an executable file (build it first)"
fi
case $timeout_s in ''|*[!0-9]*) die_setup "--timeout wants whole seconds" ;; esac

# ---------------------------------------------------------------- shapes ----
# Each shape sets: smp, mem (total), numa_args, and the features the guest
# must offer (NUMAMOVE_VM_EXPECT, read by tests/multinode so that a test
# that would skip for lack of a feature fails instead when the shape is
# supposed to have it).
numa_args=()
case $shape in
    2node)
        smp=2 mem=512M
        numa_args+=(-object memory-backend-ram,id=m0,size=256M -numa node,nodeid=0,cpus=0,memdev=m0)
        numa_args+=(-object memory-backend-ram,id=m1,size=256M -numa node,nodeid=1,cpus=1,memdev=m1)
        expect="nodes=2 cpuset thp cpu-memory-nodes"
        ;;
    4node)
        smp=4 mem=512M
        for i in 0 1 2 3; do
            numa_args+=(-object "memory-backend-ram,id=m$i,size=128M" -numa "node,nodeid=$i,cpus=$i,memdev=m$i")
        done
        # SLIT: d(i,j) = 10 * (1 + |i-j|), plus 1 when i > j.  Asymmetric on
        # purpose, so that a transposed distance() shows; QEMU then wants
        # every ordered pair.
        for i in 0 1 2 3; do
            for j in 0 1 2 3; do
                [ $i = $j ] && continue
                d=$(( i > j ? i - j : j - i ))
                v=$(( 10 * (1 + d) + (i > j ? 1 : 0) ))
                numa_args+=(-numa "dist,src=$i,dst=$j,val=$v")
            done
        done
        expect="nodes=4 cpuset thp slit cpu-memory-nodes"
        ;;
    memoryless)
        # QEMU numbers nodes densely (nodeid=0 and nodeid=2 without 1 is
        # refused: "numa: Node ID missing: 1").  Linux numbers them in SRAT
        # order, CPU entries first, so QEMU's node 2 (CPU, no memory) becomes
        # guest node 1 and QEMU's node 1 (memory, no CPU) becomes guest
        # node 2: the nodes with memory are 0 and 2, not contiguous.
        smp=2 mem=384M
        numa_args+=(-object memory-backend-ram,id=m0,size=256M -numa node,nodeid=0,cpus=0,memdev=m0)
        numa_args+=(-object memory-backend-ram,id=m1,size=128M -numa node,nodeid=1,memdev=m1)
        numa_args+=(-numa node,nodeid=2,cpus=1)
        expect="nodes=2 cpuset thp memory-only-node cpu-only-node sparse-memory-nodes"
        ;;
    *) die_setup "unknown shape '$shape' (try --list-shapes)" ;;
esac

# ------------------------------------------------------------ host tools ----
command -v "$qemu" >/dev/null 2>&1 || die_setup "QEMU '$qemu' not found (Debian: apt-get install qemu-system-x86)"
qemu=$(command -v "$qemu")
if [ -z "$kernel" ]; then
    kernel=$(printf '%s\n' /boot/vmlinuz-* | grep -v '\*$' | sort -V | tail -n 1 || true)
    [ -n "$kernel" ] || die_setup "no /boot/vmlinuz-* (Debian: apt-get install linux-image-amd64), or pass --kernel"
fi
[ -r "$kernel" ] || die_setup "guest kernel '$kernel' is not readable"
[ -x "$busybox" ] || die_setup "busybox '$busybox' not found (Debian: apt-get install busybox-static)"
if ldd "$busybox" >/dev/null 2>&1; then
    die_setup "'$busybox' is dynamically linked; the guest needs a static one (busybox-static)"
fi
for tool in cpio ldd timeout; do
    command -v $tool >/dev/null 2>&1 || die_setup "'$tool' not found"
done

# --------------------------------------------------------------- workdir ----
cleanup_dir=
if [ -z "$workdir" ]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/numamove-vm.XXXXXX")
    cleanup_dir=$workdir
fi
mkdir -p "$workdir"
workdir=$(cd "$workdir" && pwd)
qemu_pid=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    # qemu_pid is timeout(1), which runs QEMU in a process group of its own and passes a
    # TERM on to it; KILL only if that did not end it.
    if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -TERM "$qemu_pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$qemu_pid" 2>/dev/null || true
    fi
    [ -z "$cleanup_dir" ] || rm -rf "$cleanup_dir"
}
trap cleanup EXIT
trap 'echo "$prog: interrupted" >&2; exit 1' INT TERM

build_start=$(date +%s.%N)
root=$workdir/root
rm -rf "$root" "$workdir/initramfs.cpio"
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp"

# ------------------------------------------------------------- initramfs ----
cp "$busybox" "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod 755 "$root/init"
# Debug information only costs guest memory (the initramfs lives in node 0's RAM).
if command -v strip >/dev/null 2>&1 && strip --strip-debug -o "$root/numamove_tests" "$binary" 2>/dev/null; then :; else
    cp "$binary" "$root/numamove_tests"
fi
chmod 755 "$root/numamove_tests"

# Shared libraries: every "=> /path" of ldd, plus the dynamic loader (the
# line that starts with a path).  Copied to the same path, links resolved.
libs_out=$(ldd "$binary" 2>&1) || {
    if printf '%s\n' "$libs_out" | grep -q 'not a dynamic executable'; then libs_out=; else
        printf '%s\n' "$libs_out" >&2; die_setup "ldd '$binary' failed"; fi
}
if printf '%s\n' "$libs_out" | grep -q 'not found'; then
    printf '%s\n' "$libs_out" >&2
    die_setup "'$binary' needs a library that ldd cannot find"
fi
nlibs=0
while read -r lib; do
    [ -n "$lib" ] || continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
    nlibs=$((nlibs + 1))
done < <(printf '%s\n' "$libs_out" | sed -n -e 's/^.*=> \(\/[^ ]*\) (0x.*$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*$/\1/p' | sort -u)
# The loader may be asked for by its canonical path (/lib64/ld-linux-x86-64.so.2);
# Debian's is a link into /lib/x86_64-linux-gnu, copied above as a plain file.

# --file and --mpi: more programs and libraries, each with what ldd says it needs.
copy_with_libraries() {  # source [destination inside the guest]
    local source=$1 dest=${2:-$1} out lib
    mkdir -p "$root$(dirname "$dest")"
    [ "$source" -ef "$root$dest" ] || cp -L "$source" "$root$dest"
    out=$(ldd "$source" 2>/dev/null) || return 0  # not a dynamic ELF file
    if printf '%s\n' "$out" | grep -q 'not found'; then
        printf '%s\n' "$out" >&2; die_setup "'$source' needs a library that ldd cannot find"
    fi
    while read -r lib; do
        [ -n "$lib" ] && [ ! -e "$root$lib" ] || continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done < <(printf '%s\n' "$out" | sed -n -e 's/^.*=> \(\/[^ ]*\) (0x.*$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*$/\1/p' | sort -u)
}
for f in "${extra_files[@]+"${extra_files[@]}"}"; do
    [ -f "$f" ] || die_setup "--file '$f' is not a file"
    copy_with_libraries "$f" "/$(basename "$f")"
done
if [ "$mpi" = 1 ]; then
    # Open MPI 4.1 as Debian 12 packages it (docs/testing.md): mpirun is orterun.
    mpirun_path=$(command -v mpirun 2>/dev/null) || die_setup "--mpi: no mpirun (Debian: openmpi-bin)"
    mpirun_path=$(readlink -f "$mpirun_path")
    copy_with_libraries "$mpirun_path" /usr/bin/mpirun
    copy_with_libraries "$(command -v orted)" /usr/bin/orted
    # The plugins, help texts and settings; not the headers, static libraries and the
    # development links (guest memory holds the whole initramfs).
    for d in /usr/lib/x86_64-linux-gnu/openmpi/lib /usr/lib/x86_64-linux-gnu/pmix2 /usr/share/openmpi /etc/openmpi; do
        [ -d "$d" ] || die_setup "--mpi: $d is missing (Debian: libopenmpi-dev, openmpi-bin)"
        while IFS= read -r -d '' f; do
            mkdir -p "$root$(dirname "$f")"
            cp "$f" "$root$f"
        done < <(find "$d" \( -name '*.a' -o -name '*.la' -o -name include -o -name pkgconfig \) -prune -o -type f -print0)
    done
    while IFS= read -r -d '' elf; do
        copy_with_libraries "$elf" "${elf#"$root"}"
    done < <(find "$root/usr/lib/x86_64-linux-gnu/openmpi/lib" "$root/usr/lib/x86_64-linux-gnu/pmix2" -name '*.so*' -type f -print0)
    mkdir -p "$root/etc"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
    echo 'root:x:0:' > "$root/etc/group"
fi

{
    printf 'NUMAMOVE_VM_SHAPE=%s\n' "$shape"
    printf 'NUMAMOVE_VM_EXPECT="%s"\n' "$expect"
    printf 'NUMAMOVE_VM_MPI=%s\n' "$mpi"
    printf 'NUMAMOVE_VM_MPIRUN=%s\n' "$mpirun_ranks"
    printf 'export NUMAMOVE_VM_SHAPE NUMAMOVE_VM_EXPECT\n'
    for kv in "${guest_env[@]+"${guest_env[@]}"}"; do
        value=${kv#*=}
        case $value in *$'\n'*) die_setup "--env values must not contain newlines" ;; esac
        # Single quotes for the guest's sh; a ' inside becomes '\''.
        printf "export %s='%s'\n" "${kv%%=*}" "${value//\'/\'\\\'\'}"
    done
} > "$root/guest.env"
: > "$root/guest.args"
for a in "${test_args[@]}"; do
    case $a in *$'\n'*) die_setup "test arguments must not contain newlines" ;; esac
    printf '%s\n' "$a" >> "$root/guest.args"
done

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) > "$workdir/initramfs.cpio"
build_s=$(awk -v a="$build_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# ------------------------------------------------------------------ boot ----
log=$workdir/console.log
: > "$log"
append="console=ttyS0 panic=-1 oops=panic"
[ "$verbose" = 1 ] || append="$append quiet"
cmd=("$qemu" -accel tcg,thread=multi -cpu max -machine pc
     -m "$mem" -smp "$smp" "${numa_args[@]}"
     -nodefaults -no-user-config -display none -monitor none
     -serial "file:$log" -no-reboot
     -kernel "$kernel" -initrd "$workdir/initramfs.cpio" -append "$append")

echo "$prog: shape=$shape binary=$binary ($nlibs shared libraries) kernel=$kernel timeout=${timeout_s}s"
echo "$prog: initramfs $(du -k "$workdir/initramfs.cpio" | cut -f1) KiB, built in ${build_s}s"
echo "$prog: test arguments:$(printf ' %q' "${test_args[@]}")"
echo "$prog: ${cmd[*]}"
start=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout_s" "${cmd[@]}" </dev/null > "$workdir/qemu.out" 2>&1 &
qemu_pid=$!
wait "$qemu_pid"
qemu_rc=$?
qemu_pid=
set -e
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

[ -z "$logcopy" ] || cp "$log" "$logcopy"

echo "----- guest console ($shape) -----"
tr -d '\r' < "$log"
echo "----- end of guest console ($shape), ${elapsed}s -----"
if [ -s "$workdir/qemu.out" ]; then
    echo "----- qemu output -----"
    cat "$workdir/qemu.out"
fi

fail() {
    echo "$prog: FAILED ($shape, ${elapsed}s): $*" >&2
    exit 1
}

clean=$(tr -d '\r' < "$log")
booted=0; grep -q '^NUMAMOVE-GUEST-START$' <<<"$clean" && booted=1
exit_line=$(grep -E '^NUMAMOVE-GUEST-EXIT=[0-9]+$' <<<"$clean" | tail -n 1 || true)

if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
    if [ "$booted" = 0 ]; then fail "timeout after ${timeout_s}s and the guest never reached /init"; fi
    if [ -z "$exit_line" ]; then fail "timeout after ${timeout_s}s while the tests were running"; fi
    fail "timeout after ${timeout_s}s: the tests finished but the guest did not power off"
fi
[ "$booted" = 1 ] || fail "the guest did not boot: no start marker from /init on the console (qemu exit status $qemu_rc)"
[ -n "$exit_line" ] || fail "the tests did not finish: no exit marker (crash, kernel panic or init died; qemu exit status $qemu_rc)"
rc=${exit_line#NUMAMOVE-GUEST-EXIT=}
if [ "$plain" = 1 ]; then
    [ "$rc" = 0 ] || fail "program exited with status $rc"
    echo "$prog: PASSED ($shape, ${elapsed}s): program exited with status 0"
    exit 0
fi
if grep -qE '^No tests ran|^No test cases matched' <<<"$clean"; then
    fail "no test case matched$(printf ' %q' "${test_args[@]}")"
fi
# Catch2's console reporter ("All tests passed (...)", "test cases: N | ...") or its compact
# one ("Passed all N test cases ...", "Passed 1 test case ...", "Failed N test cases ...").
summary=$(grep -E '^(All tests passed \([0-9]+ assertions? in [0-9]+ test cases?\)|test cases: *[0-9]+|(Passed|Failed) (all )?[0-9]+ test cases?)' <<<"$clean" | tail -n 1 || true)
[ -n "$summary" ] || fail "no Catch2 summary line on the console: the tests did not run (binary exit status $rc)"
[ "$rc" = 0 ] || fail "test binary exited with status $rc ($summary)"
echo "$prog: PASSED ($shape, ${elapsed}s): $summary"
exit 0

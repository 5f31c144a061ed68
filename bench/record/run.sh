#!/usr/bin/env bash
# bench/record: how fast frames reach the disk (issue 21), every way in one
# run, plus fio's floor beside it; writes bench/record/results.md.
#
#   bench/record/run.sh                       # 4 GiB per mode under /var/tmp
#   DIR=/data SIZE_MIB=8192 bench/record/run.sh
#   SUSTAIN=60 FPS=100 BACKEND=uring bench/record/run.sh   # + a 60 s sustained run
#
# DIR must be a real filesystem (not tmpfs: /dev/shm measures RAM); every
# file is deleted after its mode. Environment: BUILD_DIR (build/bench),
# DIR (/var/tmp), SIZE_MIB (4096), FRAME_MIB (8), QD (4), SUSTAIN (0: off),
# FPS (100), POOL (30), BACKEND (uring), ROTATE_MIB (65536: one file), REPEAT (6 rounds, modes interleaved,
# each round starting one mode later: 6 puts each of the 6 modes in every position).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-$root/build/bench}"
dir="${DIR:-/var/tmp}"
size="${SIZE_MIB:-4096}"
frame="${FRAME_MIB:-8}"
qd="${QD:-4}"
out="$here/results.md"

if [[ "$(stat -f -c %T "$dir")" == tmpfs ]]; then
  echo "run.sh: $dir is tmpfs: that measures RAM, not a disk (set DIR)" >&2
  exit 1
fi
cmake --preset bench -S "$root" -B "$build" >/dev/null
cmake --build "$build" --target bench_record >/dev/null

{
  echo "# bench/record results"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs, $dir on $(df --output=source,fstype "$dir" | tail -1)"
  echo
  "$build/bench/record/bench_record" --dir="$dir" --size-mib="$size" --frame-mib="$frame" --queue-depth="$qd" \
      --repeat="${REPEAT:-6}"
  if command -v fio >/dev/null; then
    echo
    echo "fio, same file size, in the same run (the issue's reference floor):"
    echo
    for direct in 1 0; do
      if [[ $direct == 1 ]]; then args=(--direct=1 --ioengine=io_uring --iodepth="$qd"); else args=(--direct=0 --ioengine=psync --end_fsync=1); fi
      f="$dir/bench_record_fio.$$"
      bw=$(fio --name=rec --filename="$f" --rw=write --bs="${frame}M" --size="${size}M" "${args[@]}" \
               --output-format=terse --terse-version=3 | awk -F';' '{printf "%.2f", $48 * 1024 / 1e9}')
      rm -f "$f"
      echo "- fio --rw=write --bs=${frame}M ${args[*]}: $bw GB/s"
    done
  fi
  if [[ "${SUSTAIN:-0}" != 0 ]]; then
    echo
    # One file for the whole run unless ROTATE_MIB says otherwise (60 s at
    # 100 fps x 8 MiB: ~49 GiB free needed): deleting a rotated-out 4 GiB
    # file on ext4 mid-run stalled the next O_DIRECT writes for ~1 s (2041
    # camera overruns in 60 s at 100 fps with --rotate-mib=4096, 0 without).
    "$build/bench/record/bench_record" --dir="$dir" --sustain="$SUSTAIN" --fps="${FPS:-100}" --frame-mib="$frame" \
        --pool="${POOL:-30}" --backend="${BACKEND:-uring}" --queue-depth="$qd" --rotate-mib="${ROTATE_MIB:-65536}"
  fi
} | tee "$out"

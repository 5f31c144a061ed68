#!/usr/bin/env bash
# Builds the benchmarks (Release, the `bench` CMake preset), runs every
# scenario with repetitions, and writes bench/results.md plus the plots
# bench/handoff.png, bench/pipeline.png and (with ZeroMQ) bench/zmq.png.
#
#   bench/run.sh                      # everything, 5 repetitions of >= 0.5 s
#   REPETITIONS=9 MIN_TIME=1 bench/run.sh
#   FILTER='handoff|pipeline' bench/run.sh   # re-run a subset; results.md keeps the others' last results
#   BUILD_DIR=/tmp/b OUT_DIR=/tmp/out bench/run.sh
#
# Environment: BUILD_DIR (default build/bench), OUT_DIR (default bench/),
# REPETITIONS (5), MIN_TIME (seconds, 0.5), FILTER (regex over scenario names:
# cycle view access handoff contended pipeline first_touch broadcast zmq asio shm_iceoryx), HIGH_PRIORITY=1
# (on a shared machine, as root: runs each benchmark in its own session at
# autogroup nice -20, so that other users' jobs don't preempt the threads;
# with autogroup scheduling, plain `nice` has no effect across sessions).
# Needs: cmake >= 3.25, ninja, a C++20 compiler, libbenchmark-dev, python3,
# gnuplot (optional: the plots); libavutil-dev and libgstreamer1.0-dev for
# those baselines; libzmq3-dev for the zmq scenario; iceoryx libiceoryx-posh-dev
# libiceoryx-hoofs-dev for shm_iceoryx (bench/shm/bench_shm_iceoryx: not a
# Google Benchmark binary; it starts its own iox-roudi and writes its table,
# with ratios and goals, to bench/shm_iceoryx.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
build="${BUILD_DIR:-$root/build/bench}"
out="${OUT_DIR:-$here}"
repetitions="${REPETITIONS:-5}"
min_time="${MIN_TIME:-0.5}"
filter="${FILTER:-.}"
scenarios=(cycle view access handoff contended pipeline first_touch broadcast zmq asio)

cmake --preset bench -S "$root" -B "$build" >/dev/null
# An integration's scenario (zmq: bench/zmq/) exists only where its
# dependency was found.
available="$(cmake --build "$build" --target help)"
targets=()
for s in "${scenarios[@]}"; do
  [[ "$s" =~ $filter ]] && grep -q "bench_$s\b" <<<"$available" && targets+=("bench_$s")
done
if ((${#targets[@]})); then
  cmake --build "$build" --parallel "${JOBS:-$(nproc)}" --target "${targets[@]}"
fi

# Results of scenarios not re-run now (FILTER) are kept: results.md covers
# every scenario measured in this build directory.
json="$build/bench-json"
mkdir -p "$json" "$out"
for t in "${targets[@]}"; do rm -f "$json/$t.json"; done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//; s/,/ /g' || true)"
os="$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}" | sed 's/,/ /g')"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
bver="$(pkg-config --modversion benchmark 2>/dev/null || echo '?')"
avver="$(pkg-config --modversion libavutil 2>/dev/null || echo absent)"
gstver="$(pkg-config --modversion gstreamer-1.0 2>/dev/null || echo absent)"
context="cpu=${cpu:-?},os=${os},load_before=${load},benchmark_version=${bver},libavutil=${avver},gstreamer=${gstver}"

runner=()
priority="normal"
if [[ "${HIGH_PRIORITY:-0}" == 1 ]]; then
  runner=(setsid -w bash -c 'echo -20 > /proc/self/autogroup 2>/dev/null || renice -n -20 -p $$ >/dev/null; exec "$@"' _)
  priority="autogroup nice -20"
fi
context="$context,priority=$priority,min_time=$min_time"

for t in "${targets[@]}"; do
  echo "== $t" >&2
  # Integration benchmarks live in bench/<integration>/ (bench_asio: asio).
  bin="$build/bench/$t"
  [[ -x "$bin" ]] || bin="$build/bench/${t#bench_}/$t"
  # A plain number of seconds for --benchmark_min_time works with Google
  # Benchmark 1.7 (Debian 12) and 1.8+ (which also accepts "0.5s").
  "${runner[@]}" "$bin" \
    --benchmark_repetitions="$repetitions" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_min_time="$min_time" \
    --benchmark_report_aggregates_only=true \
    --benchmark_context="$context" \
    --benchmark_out="$json/$t.json" --benchmark_out_format=json
done

# daq_pool::shm beside iceoryx: its own table (medians of 3 alternating
# repetitions, ratios daq-pool / iceoryx, goals met or not), with the load.
if [[ "shm_iceoryx" =~ $filter ]] && grep -q "bench_shm_iceoryx\b" <<<"$available"; then
  echo "== bench_shm_iceoryx" >&2
  cmake --build "$build" --target bench_shm_iceoryx
  {
    echo "# daq_pool::shm beside iceoryx"
    echo
    echo "$(date -u '+%F %H:%M UTC'), ${cpu:-?}, priority $priority, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    "${runner[@]}" "$build/bench/shm/bench_shm_iceoryx" --json
    echo
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$out/shm_iceoryx.md.tmp"
  mv "$out/shm_iceoryx.md.tmp" "$out/shm_iceoryx.md"
  echo "wrote $out/shm_iceoryx.md" >&2
fi

python3 "$here/report.py" "$json" "$out/results.md" "$json"
if command -v gnuplot >/dev/null; then
  [[ -s "$json/handoff.dat" || -s "$json/zmq.dat" ]] && gnuplot -e "data='$json'; out='$out'" "$here/plot.gp" 2>/dev/null || true
else
  echo "gnuplot not found: no plots" >&2
fi
echo "wrote $out/results.md" >&2

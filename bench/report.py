#!/usr/bin/env python3
"""Turns the Google Benchmark JSON files of bench/run.sh into bench/results.md
(Markdown tables of medians and ratios) and the data files of plot.gp.

usage: report.py JSON_DIR OUT_MD DATA_DIR
"""
import json
import math
import os
import sys

# The daq_pool rows a group's ratios are taken against, in order of preference.
DAQ_IMPLS = ["daq_pool", "Bytes", "Loaned", "BufferPool", "zero_copy", "Broadcast"]
SCENARIOS = ["cycle", "view", "access", "handoff", "contended", "pipeline", "first_touch", "broadcast", "zmq", "asio"]
INTRO = {
    "cycle": "One thread: acquire + release. Pool of 8.",
    "view": "Copy (or slice) a view of a 64 KiB buffer and drop it; the whole life of a view.",
    "access": "Sum over a 64 KiB item through its handle vs. through a raw pointer (ratio ~1.00 expected).",
    "handoff": "Producer acquires, one shared channel (moodycamel BlockingConcurrentQueue), consumer drops. "
               "Pool of 8. `cpu_*`: fraction of the wall time each thread was on a CPU.",
    "contended": "Two threads acquire + release one shared pool of 8 (never empty). Items/s counts both threads; "
                 "`share_*`: each thread's share of the operations; `cpu_*`: its fraction of the wall time on a CPU.",
    "pipeline": "acquire -> copy an 8 MiB frame -> freeze -> consumer thread reads 1 byte/page -> drop. Pool of 8. "
                "`memcpy` is a plain serial copy into one cache-resident buffer; `fair_ceiling_memcpy_8_buffers` copies "
                "round-robin into 8 buffers, the footprint of the pool (the ceiling the goal is measured against); "
                "`*_mmap` cases allocate per frame with glibc's mmap threshold pinned at 128 KiB.",
    "zmq": "8 MiB frames over tcp://127.0.0.1, sender (benchmark thread) and receiver (its own thread and ZeroMQ "
           "context) in one process. `zero_copy`: pooled `Bytes` views sent with `daq_pool::zmq::FrameSender` "
           "(sampled checksum; `_full_checksum`, `_no_checksum` variants); `zmq_send_copy`: `zmq_send` of the same "
           "bytes (ZeroMQ copies them into a message it allocates); `tcp_send`: a blocking `send()` loop over a "
           "loopback TCP connection, the ceiling. `send_cpu_us` / `recv_cpu_us`: CPU time per frame of the sending "
           "side (sending thread + its context's I/O thread) and of the receiving side; allocs/op counts both sides.",
    "broadcast": "One producer publishes each frame of a 16-buffer BufferPool to 1 or 3 consumer threads, which drop "
                 "it; every fan-out lossless, queues of 32. `Broadcast`: daq_pool::Broadcast, block subscribers; "
                 "`moodycamel_per_consumer`: a BlockingConcurrentQueue per consumer; `mutex_condvar_per_consumer`: the "
                 "demo's former mutex + condition variable queue per consumer; `floor_atomic_queue_spsc_spin`: an "
                 "atomic_queue SPSC ring per consumer, consumers spinning (no sleep, no wake). Time is per frame "
                 "published (divide by the consumers for per frame per consumer); `latency_p50_ns` / `_p99_ns`: "
                 "publish to receive.",
    "first_touch": "Acquire all 8 buffers of a BufferPool and copy a frame into each: on a fresh pool (first pass) "
                   "vs. a used one (steady state); one item = one 8 MiB buffer.",
    "asio": "A producer coroutine acquires a 64-byte item (pool of 8) and sends it through an unbuffered asio "
            "concurrent_channel to a consumer coroutine that drops it; one io_context, 2 threads. `asio_channel_pool`: "
            "the free slots are tokens in a concurrent_channel; `no_pool_floor`: no acquisition at all (the cost of "
            "the coroutines and the channel, under every row); `blocking_daq_pool`: two threads and a blocking acquire.",
}


def load(json_dir):
    context, rows = {}, {}
    for name in sorted(os.listdir(json_dir)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(json_dir, name)) as f:
            data = json.load(f)
        context = context or data.get("context", {})
        for b in data["benchmarks"]:
            if b.get("run_type") != "aggregate":
                continue
            b["_date"] = data.get("context", {}).get("date")
            b["_min_time"] = data.get("context", {}).get("min_time", "?")
            run = b["run_name"].removesuffix("/real_time")
            rows.setdefault(run, {})[b["aggregate_name"]] = b
    return context, rows


def fmt_time(ns):
    if ns is None or not math.isfinite(ns):
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def fmt_rate(x):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g}"


def fmt_num(x, digits=2):
    if x is None:
        return "-"
    if x < 0:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) < 0.01:
        return f"{x:.1e}"
    return f"{x:.{digits}f}"


class Row:
    def __init__(self, run, aggs):
        self.run = run
        self.scenario, self.case, self.impl = run.split("/", 2)
        med = aggs.get("median", {})
        cv = aggs.get("cv", {})
        self.items_s = med.get("items_per_second", 0.0)
        self.bytes_s = med.get("bytes_per_second")
        self.cv = cv.get("items_per_second")
        self.ns = 1e9 / self.items_s if self.items_s else float("nan")
        self.counters = med
        self.order = med.get("family_index", 0)
        self.repetitions = med.get("repetitions")
        self.date = med.get("_date")
        self.min_time = med.get("_min_time")

    def c(self, key):
        return self.counters.get(key)


def group_rows(rows):
    groups = {}
    for run, aggs in rows.items():
        r = Row(run, aggs)
        groups.setdefault((r.scenario, r.case), []).append(r)
    for rs in groups.values():
        rs.sort(key=lambda r: r.order)
    return dict(sorted(groups.items(), key=lambda kv: kv[1][0].order))


def reference(rows):
    for impl in DAQ_IMPLS:
        for r in rows:
            if r.impl == impl:
                return r
    return None


def table(scenario, case, rows, all_groups):
    ref = reference(rows)
    extra = []
    if scenario == "handoff":
        extra = ["cpu_producer", "cpu_consumer"]
    if scenario == "contended":
        extra = ["share_t1", "share_t2", "cpu_t1", "cpu_t2"]
    if scenario == "zmq":
        extra = ["send_cpu_us", "recv_cpu_us"]
    if scenario == "broadcast":
        extra = ["latency_p50_ns", "latency_p99_ns"]
    has_bytes = any(r.bytes_s for r in rows)
    head = ["implementation", "time/op", "items/s"]
    if has_bytes:
        head.append("bytes/s")
    head += ["cv"]
    if scenario == "pipeline":
        head += ["% of memcpy (1 buffer)", "% of fair ceiling (8 buffers)"]
    elif scenario == "first_touch":
        head.append("time ÷ steady state (prefault on)")
    elif ref is not None:
        head.append(f"time ÷ {ref.impl}")
    head += ["allocs/op", "faults/op"] + extra
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    memcpy = next((r for r in rows if r.impl == "memcpy"), None)
    fair = next((r for r in rows if r.impl == "fair_ceiling_memcpy_8_buffers"), None)
    steady = None
    if scenario == "first_touch":
        steady = next((r for r in all_groups.get(("first_touch", "prefault_on"), []) if r.impl == "steady_state"), None)
    for r in rows:
        name = f"**{r.impl}**" if r.impl in DAQ_IMPLS else r.impl
        cells = [name, fmt_time(r.ns), fmt_rate(r.items_s) + "/s"]
        if has_bytes:
            cells.append(fmt_rate(r.bytes_s) + "B/s" if r.bytes_s else "-")
        cells.append(f"{100 * r.cv:.1f}%" if r.cv is not None else "-")
        if scenario == "pipeline":
            cells.append(f"{100 * r.items_s / memcpy.items_s:.1f}%" if memcpy else "-")
            cells.append(f"{100 * r.items_s / fair.items_s:.1f}%" if fair else "-")
        elif scenario == "first_touch":
            cells.append(f"{r.ns / steady.ns:.2f}" if steady else "-")
        elif ref is not None:
            cells.append(f"{r.ns / ref.ns:.2f}")
        cells += [fmt_num(r.c("allocs/op")), fmt_num(r.c("faults/op"))]
        cells += [fmt_num(r.c(k)) for k in extra]
        out.append("| " + " | ".join(cells) + " |")
    return out


def find(groups, scenario, case, impl):
    return next((r for r in groups.get((scenario, case), []) if r.impl == impl), None)


def goals(groups):
    """(goal, measured, met) for each target of issue 4."""
    out = []

    def ratio(a, b):
        return a.ns / b.ns if a and b else None

    def add(goal, value, text, ok):
        out.append((goal, text if value is not None else "not measured", "-" if value is None else ("yes" if ok else "**no**")))

    d = find(groups, "cycle", "int", "daq_pool")
    m = find(groups, "cycle", "int", "mutex_freelist")
    x = ratio(d, m)
    add("cycle Pool<int> ≤ mutex free list", x, f"{x:.2f}× the mutex free list's time" if x else "", x is not None and x <= 1.0)
    aq = find(groups, "cycle", "int", "atomic_queue")
    x = ratio(d, aq)
    add("cycle Pool<int> ≤ 1.1× the spinning ring (atomic_queue)", x, f"{x:.2f}× atomic_queue's time" if x else "",
        x is not None and x <= 1.1)
    for impl in ("AVBufferPool", "GstBufferPool"):
        d8 = find(groups, "cycle", "frame_8MiB", "daq_pool")
        b = find(groups, "cycle", "frame_8MiB", impl)
        x = ratio(b, d8)
        add(f"cycle ≥ 4× faster than {impl}", x, f"{x:.1f}× faster" if x else "", x is not None and x >= 4)
    bp = find(groups, "cycle", "frame_8MiB", "BufferPool")
    for impl in ("AVBufferPool", "GstBufferPool"):
        b = find(groups, "cycle", "frame_8MiB", impl)
        x = ratio(b, bp)
        add(f"BufferPool cycle ≥ 4× faster than {impl}", x, f"{x:.1f}× faster" if x else "", x is not None and x >= 4)
    v = find(groups, "view", "copy_drop", "Bytes")
    s = find(groups, "view", "copy_drop", "shared_ptr")
    a = find(groups, "view", "copy_drop", "av_buffer_ref")
    x = ratio(v, s)
    add("view copy+drop ≤ shared_ptr", x, f"{x:.2f}× shared_ptr's time" if x else "", x is not None and x <= 1.0)
    x = ratio(a, v)
    add("view copy+drop ≥ 5× faster than av_buffer_ref", x, f"{x:.1f}× faster" if x else "", x is not None and x >= 5)
    for case, impl in (("sum_u64_64KiB", "Loaned"), ("sum_bytes_64KiB", "Bytes")):
        x = ratio(find(groups, "access", case, impl), find(groups, "access", case, "raw_pointer"))
        add(f"access through {impl} ~ raw pointer", x, f"{x:.2f}× raw pointer" if x else "", x is not None and x <= 1.05)
    for case in ("frame_8MiB", "item_64B"):
        d = find(groups, "handoff", case, "daq_pool")
        m = find(groups, "handoff", case, "mutex_freelist")
        x = ratio(m, d)
        add(f"handoff {case} ≥ 2× the mutex pool", x, f"{x:.2f}× the mutex pool's rate" if x else "", x is not None and x >= 2)
    d = find(groups, "contended", "int", "daq_pool")
    lf = find(groups, "contended", "int", "moodycamel")
    x = ratio(lf, d)
    share = min(d.c("share_t1") or 0, d.c("share_t2") or 0) if d else 0
    add("contended ≥ best lock-free baseline (moodycamel), both threads progressing", x,
        f"{x:.2f}× moodycamel's rate; smaller thread share {share:.2f}" if x else "",
        x is not None and x >= 1.0 and share >= 0.25)
    mc = find(groups, "pipeline", "frame_8MiB", "fair_ceiling_memcpy_8_buffers")
    for impl in ("BufferPool", "daq_pool"):
        p = find(groups, "pipeline", "frame_8MiB", impl)
        x = p.items_s / mc.items_s if p and mc else None
        add(f"pipeline {impl} ≥ 96% of the fair ceiling (memcpy over 8 buffers)", x,
            f"{100 * x:.1f}% of the fair ceiling" if x else "", x is not None and x >= 0.96)
    for case in ("1_consumers_64B", "1_consumers_8MiB", "3_consumers_64B", "3_consumers_8MiB"):
        b = find(groups, "broadcast", case, "Broadcast")
        mx = ratio(find(groups, "broadcast", case, "mutex_condvar_per_consumer"), b)
        add(f"broadcast {case} ≥ 2× the mutex + condvar queue per consumer", mx, f"{mx:.2f}× faster" if mx else "",
            mx is not None and mx >= 2)
        mc = ratio(find(groups, "broadcast", case, "moodycamel_per_consumer"), b)
        add(f"broadcast {case} ≥ 1.2× moodycamel per consumer", mc, f"{mc:.2f}× faster" if mc else "",
            mc is not None and mc >= 1.2)
        fl = ratio(b, find(groups, "broadcast", case, "floor_atomic_queue_spsc_spin"))
        add(f"broadcast {case} ≤ 1.5× the floor's time (atomic_queue SPSC, spinning)", fl,
            f"{fl:.2f}× the floor's time" if fl else "", fl is not None and fl <= 1.5)
    zc = find(groups, "zmq", "frame_8MiB", "zero_copy")
    cp = find(groups, "zmq", "frame_8MiB", "zmq_send_copy")
    tcp = find(groups, "zmq", "frame_8MiB", "tcp_send")
    if zc and cp:
        x = zc.items_s / cp.items_s
        y = zc.c("send_cpu_us") / cp.c("send_cpu_us") if cp.c("send_cpu_us") else None
        add("zmq zero-copy ≥ 1.3× zmq_send's rate, or ≤ 0.7× its sender CPU per frame", x,
            f"{x:.2f}× the rate; {y:.2f}× the sender CPU" if y is not None else f"{x:.2f}× the rate",
            x >= 1.3 or (y is not None and y <= 0.7))
    if zc and cp:
        add("zmq zero-copy: no more allocations per frame than zmq_send (all of them libzmq's)", zc.c("allocs/op"),
            f"{zc.c('allocs/op'):.2f} vs {cp.c('allocs/op'):.2f} per frame, both sides",
            zc.c("allocs/op") <= cp.c("allocs/op"))
    if zc and tcp:
        x = zc.items_s / tcp.items_s
        add("zmq zero-copy within 80% of a plain TCP send() loop", x, f"{100 * x:.0f}% of its rate", x >= 0.8)
    a = find(groups, "asio", "item_64B", "daq_pool")
    c = find(groups, "asio", "item_64B", "asio_channel_pool")
    fl = find(groups, "asio", "item_64B", "no_pool_floor")
    x = ratio(c, a)
    add("asio hand-off ≥ 2× the asio channel pool", x, f"{x:.2f}× the channel pool's rate" if x else "",
        x is not None and x >= 2)
    if a and c and fl:
        y = (c.ns - fl.ns) / (a.ns - fl.ns) if a.ns > fl.ns else None
        add("asio: pool cost per item (time above the no-pool floor) ≤ ½ the channel pool's", y,
            f"{y:.2f}× less ({a.ns - fl.ns:.0f} vs {c.ns - fl.ns:.0f} ns)" if y else "", y is not None and y >= 2)
    f = find(groups, "first_touch", "prefault_on", "first_pass")
    st = find(groups, "first_touch", "prefault_on", "steady_state")
    x = ratio(f, st)
    add("first touch with prefault within 1.2× steady state", x, f"{x:.2f}× steady state" if x else "", x is not None and x <= 1.2)
    allocating = []
    for (scenario, _), rows in groups.items():
        for r in rows:
            # asio's own per-thread caches miss now and then on 2 threads
            # (see the asio goal below); daq_pool allocates nothing there.
            # zmq: libzmq's own allocations (a control block per frame sent, a
            # message per frame received); daq_pool adds none (test_zmq_stream).
            if scenario in ("asio", "zmq"):
                continue
            if r.impl in DAQ_IMPLS and (r.c("allocs/op") or 0) > 0:
                allocating.append(f"{r.run} ({r.c('allocs/op'):.3g})")
    add("0 allocations/op on every daq_pool path (except Bytes::copy_from)", 0,
        "all 0" if not allocating else "allocating: " + ", ".join(allocating), not allocating)
    if a:
        n = a.c("allocs/op") or 0
        add("asio hand-off: 0 allocations per item (asio's recycling caches aside)", n,
            f"{n:.1e} per item (asio's executor_function cache misses on 2 threads)", n < 0.01)
    return out


def write_data(groups, data_dir):
    os.makedirs(data_dir, exist_ok=True)
    impls = []
    for case in ("frame_8MiB", "item_64B"):
        for r in groups.get(("handoff", case), []):
            if r.impl not in impls:
                impls.append(r.impl)
    with open(os.path.join(data_dir, "handoff.dat"), "w") as f:
        f.write("# implementation  frame_8MiB(k items/s)  item_64B(k items/s)\n")
        for impl in impls:
            vals = []
            for case in ("frame_8MiB", "item_64B"):
                r = find(groups, "handoff", case, impl)
                vals.append(f"{r.items_s / 1e3:.1f}" if r else "NaN")
            f.write(f'"{impl}" {vals[0]} {vals[1]}\n')
    with open(os.path.join(data_dir, "zmq.dat"), "w") as f:
        f.write("# implementation  GB/s  sender_CPU_ms_per_frame\n")
        for r in groups.get(("zmq", "frame_8MiB"), []):
            f.write(f'"{r.impl}" {(r.bytes_s or 0) / 1e9:.3f} {(r.c("send_cpu_us") or 0) / 1e3:.3f}\n')
    with open(os.path.join(data_dir, "pipeline.dat"), "w") as f:
        f.write("# implementation  GB/s  percent_of_fair_ceiling\n")
        rows = groups.get(("pipeline", "frame_8MiB"), [])
        mc = find(groups, "pipeline", "frame_8MiB", "fair_ceiling_memcpy_8_buffers")
        for r in rows:
            gbs = (r.bytes_s or 0) / 1e9
            pct = 100 * r.items_s / mc.items_s if mc else float("nan")
            f.write(f'"{r.impl}" {gbs:.3f} {pct:.1f}\n')


def main():
    json_dir, out_md, data_dir = sys.argv[1:4]
    context, rows = load(json_dir)
    groups = group_rows(rows)
    write_data(groups, data_dir)
    custom = {k: v for k, v in context.items() if isinstance(v, str)}
    lines = ["# daq-pool benchmark results", ""]
    lines.append("Generated by `bench/run.sh` from Google Benchmark JSON: medians of repeated, randomly "
                 "interleaved runs (each scenario says how many and how long). "
                 "Ratios compare rows of the same run. `cv`: coefficient of variation of the repetitions.")
    lines.append("")
    lines.append(f"- **CPU**: {custom.get('cpu', '?')}, {context.get('num_cpus', '?')} logical CPUs "
                 f"@ {context.get('mhz_per_cpu', '?')} MHz"
                 + (f"; caches: " + ", ".join(f"L{c['level']} {c['type'].lower()} {c['size'] // 1024} KiB"
                                               + (f" ×{context['num_cpus'] // c['num_sharing']}" if c.get('num_sharing') else "")
                                               for c in context.get("caches", [])) if context.get("caches") else ""))
    lines.append(f"- **Compiler**: {custom.get('compiler', '?')}, CMake Release (-O3)")
    lines.append(f"- **Date**: {context.get('date', '?')}; host `{context.get('host_name', '?')}`; "
                 f"load average before the run: {custom.get('load_before', '?')}; "
                 f"scheduling: {custom.get('priority', 'normal')}")
    lines.append(f"- **OS**: {custom.get('os', '?')}; Google Benchmark {custom.get('benchmark_version', '?')}; "
                 f"FFmpeg libavutil {custom.get('libavutil', 'absent')}; GStreamer {custom.get('gstreamer', 'absent')}")
    lines.append("- glibc's single-thread shortcuts are off: each binary starts and joins a thread before "
                 f"measuring (`__libc_single_threaded` = {custom.get('libc_single_threaded', '?')}).")
    lines.append("")
    lines.append("## Goals (issues 4 and 15)")
    lines.append("")
    lines.append("| goal | measured | met |")
    lines.append("|---|---|---|")
    for goal, text, ok in goals(groups):
        lines.append(f"| {goal} | {text} | {ok} |")
    lines.append("")
    seen = []
    for key in groups:
        if key[0] not in seen:
            seen.append(key[0])
    for scenario in [s for s in SCENARIOS if s in seen] + [s for s in seen if s not in SCENARIOS]:
        lines.append(f"## {scenario}")
        lines.append("")
        if scenario in INTRO:
            first = next(r for (sc, _), rs in groups.items() if sc == scenario for r in rs)
            lines.append(INTRO[scenario] + f" Medians of {first.repetitions} repetitions of at least {first.min_time} s, "
                         f"run {first.date}.")
            lines.append("")
        for (sc, case), rs in groups.items():
            if sc != scenario:
                continue
            lines.append(f"### {scenario} / {case}")
            lines.append("")
            lines += table(sc, case, rs, groups)
            lines.append("")
    with open(out_md, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()

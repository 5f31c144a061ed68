#!/usr/bin/env python3
"""The mutation suite's runner (tests/mutants/README.md): applies each mutant
of mutants.txt to a scratch copy of the tree, builds only the check that
kills it, runs that check with a time bound, and reports killed / survived.

Python 3 standard library only. Started by run.sh; see `run.sh --help`.
"""

import argparse
import concurrent.futures
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TABLE = os.path.join(HERE, "mutants.txt")
# The docs page that shows the table, between these markers (--check compares
# it with --markdown's output; --update-docs rewrites it).
DOCS_PAGE = os.path.join(ROOT, "docs", "testing.md")
DOCS_BEGIN = "<!-- mutants:begin"
DOCS_END = "<!-- mutants:end -->"

# The build configurations a killer may name (`config:`): the flags of the
# presets of the same name (CMakePresets.json), with everything the killers
# don't need switched off, and the environment of the matching test preset.
CONFIGS = {
    # The dev preset's build type (NDEBUG: no debug checks), compiled -Og:
    # a Relacy model then builds in a quarter of the time at -O2 and runs
    # about half as fast, and its verdicts don't depend on either (the
    # schedules are seeded, not timed).
    "dev": {
        "cmake": ["-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-Og -DNDEBUG"],
        "env": {},
    },
    "asan": {
        "cmake": [
            "-DCMAKE_BUILD_TYPE=Debug",
            "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer",
            "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined",
        ],
        "env": {
            "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:strict_string_checks=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        },
    },
    "tsan": {
        "cmake": [
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer",
            "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread",
        ],
        "env": {"TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1"},
    },
}
COMMON_CMAKE = [
    "-G",
    "Ninja",
    "-DDAQ_POOL_BUILD_TESTS=ON",
    "-DDAQ_POOL_BUILD_BENCH=OFF",
    "-DDAQ_POOL_BUILD_EXAMPLES=OFF",
    "-DDAQ_POOL_INSTALL=OFF",
    "-DDAQ_POOL_FETCH_DEPENDENCIES=OFF",
    # Integration killers (tests/asio, tests/aravis, tests/zmq, tests/shm)
    # need their dependency installed (CI has them all): without it their
    # target does not exist and the run stops with a build error, never a
    # skip. Others the table does not use must not fail the configure
    # (CI=true would otherwise require them all).
    "-DDAQ_POOL_REQUIRE_INTEGRATIONS=OFF",
]
DEFAULT_TIMEOUT = 120
KEYS = {"file", "before", "line", "with", "kill", "config", "timeout", "ci", "what", "fails"}
REQUIRED = {"file", "line", "with", "kill", "what"}


class TableError(Exception):
    pass


@dataclass
class Mutant:
    id: str
    where: str  # mutants.txt:<line>, for error messages
    file: str = ""
    before: list = field(default_factory=list)  # the lines right above `line`, in order
    line: str = ""
    with_: str = ""
    kill: list = field(default_factory=list)
    config: str = "dev"
    timeout: int = DEFAULT_TIMEOUT
    ci: bool = False
    what: str = ""
    fails: str = ""  # how the killer fails, as observed (documentation)
    keys: set = field(default_factory=set)  # the keys the table gave

    @property
    def target(self):
        return self.kill[0]

    @property
    def is_model(self):
        return self.target.startswith("model_")

    def killer(self):
        text = " ".join(shlex.quote(a) for a in self.kill)
        return text if self.config == "dev" else f"{text} [{self.config}]"


def parse_table(path):
    """Reads mutants.txt: `[id]` sections of `key: value` lines."""
    mutants, current, seen = [], None, set()
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            text = raw.rstrip("\n")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            m = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]\s*", text)
            if m:
                if m.group(1) in seen:
                    raise TableError(f"{path}:{n}: mutant id '{m.group(1)}' appears twice")
                seen.add(m.group(1))
                current = Mutant(id=m.group(1), where=f"{os.path.basename(path)}:{n}")
                mutants.append(current)
                continue
            m = re.fullmatch(r"(\w+):\s?(.*)", text)
            if not m or current is None:
                raise TableError(f"{path}:{n}: expected '[id]' or 'key: value', got: {text}")
            key, value = m.group(1), m.group(2).strip()
            if key not in KEYS:
                raise TableError(f"{path}:{n}: unknown key '{key}' (known: {', '.join(sorted(KEYS))})")
            if key == "with":
                current.with_ = value
            elif key == "before":
                if "line" in current.keys:
                    raise TableError(f"{path}:{n}: 'before' lines come before 'line'")
                current.before.append(value)
            elif key == "kill":
                current.kill = shlex.split(value)
            elif key == "timeout":
                current.timeout = int(value)
            elif key == "ci":
                if value not in ("yes", "no"):
                    raise TableError(f"{path}:{n}: ci must be yes or no")
                current.ci = value == "yes"
            elif key == "config":
                if value not in CONFIGS:
                    raise TableError(f"{path}:{n}: config must be one of {', '.join(CONFIGS)}")
                current.config = value
            else:
                setattr(current, key, value)
            if key in current.keys and key != "before":
                raise TableError(f"{path}:{n}: '{key}' given twice for mutant '{current.id}'")
            current.keys.add(key)
    for m in mutants:
        missing = REQUIRED - m.keys
        if missing:
            raise TableError(f"{m.where}: mutant '{m.id}' lacks {', '.join(sorted(missing))}")
        if not m.kill:
            raise TableError(f"{m.where}: mutant '{m.id}' names no killer")
        if m.with_.strip() == m.line.strip():
            raise TableError(f"{m.where}: mutant '{m.id}' replaces its line by itself")
        if m.is_model and any(a.isdigit() for a in m.kill[1:]):
            raise TableError(f"{m.where}: mutant '{m.id}': a model killer names models, not a schedule count")
        if m.config != "dev" and m.is_model:
            raise TableError(f"{m.where}: mutant '{m.id}': the model checks build only in the dev config")
    return mutants


def locate(tree, m):
    """The index of the one line of m.file equal to m.line (whitespace-
    trimmed) and preceded by m.before's lines; a TableError if there is none
    or more than one: a stale table."""
    path = os.path.join(tree, m.file)
    if not os.path.isfile(path):
        raise TableError(f"{m.where}: mutant '{m.id}': no file {m.file}")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    block = [b.strip() for b in m.before] + [m.line.strip()]
    k = len(block) - 1
    hits = [
        i
        for i in range(k, len(lines))
        if all(lines[i - k + j].strip() == block[j] for j in range(len(block)))
    ]
    if len(hits) != 1:
        state = "not found" if not hits else f"found {len(hits)} times (lines {', '.join(str(i + 1) for i in hits)})"
        shown = "\n    ".join(block)
        raise TableError(f"{m.where}: mutant '{m.id}': line {state} in {m.file} (stale table?):\n    {shown}")
    return path, lines, hits[0]


def copy_tree(dest):
    """Copies the checkout's files (tracked, and untracked but not ignored;
    never build directories) to `dest`."""
    try:
        out = subprocess.run(
            ["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True,
            capture_output=True,
        ).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for base, dirs, names in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in (".git", "build") and not d.startswith("build-")]
            files += [os.path.relpath(os.path.join(base, n), ROOT) for n in names]
    for rel in files:
        src = os.path.join(ROOT, rel)
        if not os.path.isfile(src):
            continue  # deleted in the work tree, not yet in the index
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.isfile(dst) or open(src, "rb").read() != open(dst, "rb").read():
            shutil.copy2(src, dst)


class Builder:
    def __init__(self, tree, jobs, log):
        self.tree, self.jobs, self.log = tree, jobs, log
        self.configured, self.executables = set(), {}

    def build_dir(self, config):
        return os.path.join(self.tree, "build-mutants", config)

    def configure(self, config):
        if config in self.configured:
            return
        d = self.build_dir(config)
        cmd = ["cmake", "-S", self.tree, "-B", d] + COMMON_CMAKE + CONFIGS[config]["cmake"]
        env = dict(os.environ)
        env.pop("CI", None)  # see DAQ_POOL_REQUIRE_INTEGRATIONS above
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            raise RuntimeError(f"configuring the {config} build failed")
        self.configured.add(config)

    def build(self, config, targets):
        """Builds `targets`; (ok, output)."""
        self.configure(config)
        cmd = ["cmake", "--build", self.build_dir(config), "--target", *sorted(set(targets))]
        if self.jobs:
            cmd += ["--parallel", str(self.jobs)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return r.returncode == 0, r.stdout + r.stderr

    def executable(self, config, target):
        key = (config, target)
        if key not in self.executables:
            for base, dirs, names in os.walk(self.build_dir(config)):
                dirs[:] = [d for d in dirs if not d.endswith(".dir")]
                if target in names and os.access(os.path.join(base, target), os.X_OK):
                    self.executables[key] = os.path.join(base, target)
                    break
            else:
                raise RuntimeError(f"no executable '{target}' in the {config} build")
        return self.executables[key]

    def run(self, m, args=None):
        """Runs m's killer (or its target with `args`): (verdict, seconds,
        output). verdict: 'pass', 'fail (exit N)', 'crash (signal N)' or
        'timeout (N s)'."""
        exe = self.executable(m.config, m.target)
        args = m.kill[1:] if args is None else args
        env = dict(os.environ, **CONFIGS[m.config]["env"])
        env["DAQ_POOL_MODEL_FAIL_FAST"] = "1"  # a kill needs one failing model
        start = time.monotonic()
        try:
            r = subprocess.run(
                [exe, *args],
                cwd=os.path.dirname(exe),
                env=env,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=m.timeout,
                start_new_session=True,
            )
            if r.returncode == 0:
                verdict = "pass"
            elif r.returncode < 0:
                verdict = f"crash (signal {-r.returncode})"
            else:
                verdict = f"fail (exit {r.returncode})"
            out = r.stdout + r.stderr
        except subprocess.TimeoutExpired as e:
            verdict = f"timeout ({m.timeout} s)"
            out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return verdict, time.monotonic() - start, out


# How a killer failed, for the report: the first line that says so.
REASON = re.compile(
    r"^model \S+ FAILED.*|WATCHDOG.*|.*ERROR: (Address|Leak|Thread)Sanitizer.*|.*WARNING: ThreadSanitizer.*"
    r"|.*runtime error:.*|daq_pool: .*|.*FAILED:.*|.*terminate called.*|.*Assertion .* failed.*"
)


# A killer that selects nothing passes without checking anything: Catch2
# says so (and exits 0 in v2); a misspelt model name makes the model exit 2.
RAN_NOTHING = re.compile(r"No tests ran|No test cases matched|no model named")


def reason(text):
    for line in text.split("\n"):
        m = REASON.search(line.strip())
        if m:
            return m.group(0).strip()[:160]
    return ""


def tail(text, n=12):
    lines = [l for l in text.strip().split("\n") if l.strip()]
    return "\n".join("      " + l for l in lines[-n:])


def select(mutants, args):
    if args.only:
        wanted = [w for o in args.only for w in o.split(",") if w]
        ids = {m.id for m in mutants}
        unknown = [w for w in wanted if w not in ids]
        if unknown:
            raise TableError(f"no mutant named {', '.join(unknown)} (see --list)")
        chosen = [m for m in mutants if m.id in wanted]
    elif args.ci:
        chosen = [m for m in mutants if m.ci]
    else:
        chosen = list(mutants)
    # Model-check mutants first: the fastest, most deterministic killers.
    return sorted(chosen, key=lambda m: (not m.is_model, m.config != "dev"))


def list_table(mutants):
    for m in mutants:
        flags = "ci " if m.ci else "   "
        print(f"{flags}{m.id:28} {m.file}")
        print(f"      line: {m.line}")
        print(f"      with: {m.with_ if m.with_ else '(line removed)'}")
        print(f"      kill: {m.killer()}")


def markdown_lines(mutants):
    """The table as docs/testing.md shows it."""
    lines = ["| mutant | file | what was changed | killed by | how it fails |", "|---|---|---|---|---|"]
    for m in mutants:
        short = m.file.replace("include/daq_pool/", "")
        killer = "`" + m.killer().replace("|", "\\|") + "`"
        ci = " (CI)" if m.ci else ""
        lines.append(f"| `{m.id}`{ci} | `{short}` | {m.what} | {killer} | {m.fails} |")
    return lines


def markdown(mutants):
    print("\n".join(markdown_lines(mutants)))


def docs_table(path=DOCS_PAGE):
    """(lines of the page, index of the begin marker, index of the end marker)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    begin = [i for i, line in enumerate(lines) if line.startswith(DOCS_BEGIN)]
    end = [i for i, line in enumerate(lines) if line.startswith(DOCS_END)]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise TableError(f"{os.path.relpath(path, ROOT)}: expected one '{DOCS_BEGIN} ...' and one '{DOCS_END}' line")
    return lines, begin[0], end[0]


def check_docs(mutants):
    """Errors if docs/testing.md's table is not what --markdown prints."""
    lines, begin, end = docs_table()
    if lines[begin + 1 : end] != markdown_lines(mutants):
        return [f"{os.path.relpath(DOCS_PAGE, ROOT)}: the mutant table is stale (mutants.txt changed): "
                "regenerate it with tests/mutants/run.sh --markdown --update-docs"]
    return []


def update_docs(mutants):
    lines, begin, end = docs_table()
    lines[begin + 1 : end] = markdown_lines(mutants)
    with open(DOCS_PAGE, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print(f"mutants: {os.path.relpath(DOCS_PAGE, ROOT)}: table of {len(mutants)} mutants written")


def main(argv):
    p = argparse.ArgumentParser(
        prog="tests/mutants/run.sh",
        description="Mutation suite: every mutant of tests/mutants/mutants.txt must be killed by its check.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--ci", action="store_true", help="the CI subset (ci: yes), model-check mutants first")
    mode.add_argument("--all", action="store_true", help="every mutant (the default)")
    mode.add_argument("--only", action="append", metavar="ID", help="only these mutants (repeat or comma-separate)")
    mode.add_argument("--list", action="store_true", help="print the table and exit")
    mode.add_argument("--check", action="store_true", help="only check that every line is found exactly once (no build)")
    mode.add_argument("--markdown", action="store_true", help="print the table as docs/testing.md's Markdown and exit")
    p.add_argument("--update-docs", action="store_true", help="with --markdown: write it into docs/testing.md instead")
    p.add_argument("--table", default=TABLE, help="the table to read (default: tests/mutants/mutants.txt)")
    p.add_argument("--work-dir", help="scratch directory for the copy and its builds (kept; reused if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the temporary scratch directory")
    p.add_argument("--jobs", type=int, default=0, help="build parallelism (default: the generator's)")
    p.add_argument("--verbose", action="store_true", help="print the end of each killer's output")
    p.add_argument("--no-baseline", action="store_true", help="skip checking that each killer passes unmutated")
    args = p.parse_args(argv)

    try:
        mutants = parse_table(args.table)
        if args.list:
            list_table(mutants)
            return 0
        if args.markdown:
            if args.update_docs:
                update_docs(mutants)
            else:
                markdown(mutants)
            return 0
        if args.check:
            # In the checkout itself: nothing is written, nothing built.
            errors = []
            for m in mutants:
                try:
                    locate(ROOT, m)
                except TableError as e:
                    errors.append(str(e))
            if args.table == TABLE:  # the docs show the project's table only
                errors += check_docs(mutants)
            for e in errors:
                print(f"mutants: error: {e}", file=sys.stderr)
            if not errors:
                print(f"mutants: all {len(mutants)} lines found exactly once; docs/testing.md's table is current")
            return 2 if errors else 0
        chosen = select(mutants, args)
    except TableError as e:
        print(f"mutants: error: {e}", file=sys.stderr)
        return 2

    stale = []
    for m in chosen:
        try:
            locate(ROOT, m)
        except TableError as e:
            stale.append(str(e))
    if stale:
        for e in stale:
            print(f"mutants: error: {e}", file=sys.stderr)
        return 2

    started = time.monotonic()
    if args.work_dir:
        tree = os.path.abspath(args.work_dir)
        os.makedirs(tree, exist_ok=True)
    else:
        tree = tempfile.mkdtemp(prefix="daq-pool-mutants-", dir=os.environ.get("TMPDIR"))
    print(f"mutants: {len(chosen)} mutant(s); scratch copy in {tree}", flush=True)
    try:
        copy_tree(tree)
        # Every line must be found exactly once before anything is built: a
        # stale entry is an error of the table, never a silent skip.
        stale = []
        for m in chosen:
            try:
                locate(tree, m)
            except TableError as e:
                stale.append(str(e))
        if stale:
            for s in stale:
                print(f"mutants: error: {s}", file=sys.stderr)
            return 2
        sys.stdout.flush()
        builder = Builder(tree, args.jobs, print)
        return run_suite(builder, tree, chosen, args, started)
    finally:
        if not args.work_dir and not args.keep:
            shutil.rmtree(tree, ignore_errors=True)
        elif not args.work_dir:
            print(f"mutants: scratch copy kept in {tree}")


def baseline_runs(chosen):
    """The runs that show every killer passes unmutated: each distinct test
    command once, and each model file once with the union of the models
    its killers name (all of them if one names none)."""
    runs, models = [], {}
    for m in chosen:
        if m.is_model:
            key = (m.config, m.target)
            if key not in models:
                models[key] = (m, [])
                runs.append(key)
            names = models[key][1]
            if names is not None:
                if len(m.kill) == 1:
                    models[key] = (models[key][0], None)
                else:
                    names += [a for a in m.kill[1:] if a not in names]
        else:
            key = (m.config, tuple(m.kill), m.timeout)
            if key not in runs:
                runs.append(key)
                models[key] = (m, m.kill[1:])
    return [(models[k][0], models[k][1] or []) for k in runs]


def run_suite(builder, tree, chosen, args, started):
    # Baseline: each killer must build and pass on the unmutated tree, or it
    # would "kill" every mutant for the wrong reason.
    if not args.no_baseline:
        by_config = {}
        for m in chosen:
            by_config.setdefault(m.config, set()).add(m.target)
        for config, targets in by_config.items():
            t0 = time.monotonic()
            ok, out = builder.build(config, targets)
            if not ok:
                print(f"mutants: error: the unmutated tree does not build ({config}):\n{tail(out, 30)}")
                return 2
            print(f"mutants: baseline build ({config}, {len(targets)} target(s)): {time.monotonic() - t0:.0f} s", flush=True)
        # The killers are single-threaded or short: run them side by side.
        runs = baseline_runs(chosen)
        with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            outcomes = list(pool.map(lambda r: builder.run(r[0], r[1]), runs))
        failed = False
        for (m, run_args), (verdict, secs, out) in zip(runs, outcomes):
            shown = " ".join([m.target] + [shlex.quote(a) for a in run_args])
            if RAN_NOTHING.search(out):
                print(f"mutants: error: killer '{shown}' runs no test (stale name?):\n{tail(out)}")
                failed = True
            elif verdict != "pass":
                print(f"mutants: error: killer '{shown}' fails without any mutant: {verdict}\n{tail(out)}")
                failed = True
            else:
                print(f"mutants: baseline {shown} [{m.config}]: passes ({secs:.1f} s)", flush=True)
        if failed:
            return 2

    results = []
    for k, m in enumerate(chosen, 1):
        path, lines, i = locate(tree, m)
        original = open(path, encoding="utf-8").read()
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        mutated = list(lines)
        mutated[i] = indent + m.with_ if m.with_ else indent + "// (mutant: line removed)"
        head = f"[{k:2}/{len(chosen)}] {m.id}: {m.file}:{i + 1}"
        t0 = time.monotonic()
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write("\n".join(mutated))
            ok, out = builder.build(m.config, [m.target])
            build_s = time.monotonic() - t0
            if not ok:
                results.append((m, "INVALID"))
                print(f"{head}: INVALID (does not compile; build {build_s:.0f} s)\n{tail(out)}", flush=True)
                continue
            verdict, secs, out = builder.run(m)
        finally:
            with open(path, "w", encoding="utf-8") as f:
                f.write(original)
        if verdict == "pass":
            results.append((m, "SURVIVED"))
            print(f"{head}: SURVIVED {m.killer()} (build {build_s:.0f} s, run {secs:.1f} s)\n{tail(out, 4)}", flush=True)
        else:
            results.append((m, "killed"))
            why = reason(out)
            print(
                f"{head}: killed by {m.killer()}: {verdict} (build {build_s:.0f} s, run {secs:.1f} s)"
                + (f"\n      {why}" if why else ""),
                flush=True,
            )
            if args.verbose:
                print(tail(out, 40))

    counts = {v: sum(1 for _, r in results if r == v) for v in ("killed", "SURVIVED", "INVALID")}
    print(
        f"mutants: {counts['killed']} killed, {counts['SURVIVED']} survived, {counts['INVALID']} invalid "
        f"of {len(results)}, in {time.monotonic() - started:.0f} s"
    )
    for m, r in results:
        if r != "killed":
            print(f"mutants: {r}: {m.id} ({m.file}: {m.line.strip()})")
    return 0 if counts["killed"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

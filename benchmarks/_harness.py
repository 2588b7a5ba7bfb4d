"""Shared machinery of the benchmark suites: interleaved timing, machine facts, result files.

A suite yields :class:`Case` objects. Each case holds prepared data and a list of
:class:`Contender` (curata first, then its peers), each a zero-argument callable doing one full
call on that data, plus an optional ``check`` that compares the results before anything is timed.
:func:`run_cases` then, per case:

1. runs the check; a mismatch (or a crash) means the case is reported and not timed;
2. warms every contender up (first-call costs, caches, allocator) and calibrates ``number``, the
   calls per sample, so that one sample lasts at least ``min_sample_s`` (timeit's "autorange");
3. takes ``repeats`` rounds; round ``r`` times the contenders in rotated order ``r, r+1, ...``
   so that no contender always runs first (or right after a given other) and slow drifts of the
   machine (frequency, other tenants) hit every contender alike;
4. reports per contender the median and interquartile range of the per-call time over the
   rounds, and per peer the ratio ``peer median / curata median`` (> 1: curata is faster) plus
   the quartiles of the per-round paired ratios.

Peers that cannot be imported are skipped with the reason. CUDA timings bracket each sample with
CUDA events after a ``torch.cuda.synchronize()``; CPU timings use ``time.perf_counter``. The
garbage collector is off while a sample runs.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------------------------ contenders
@dataclass
class Contender:
    """One implementation in a case: ``fn()`` does one complete call on the case's data."""

    name: str
    fn: Callable[[], Any] | None = None
    skip_reason: str | None = None
    note: str = ""


def contender(name: str, make: Callable[[], Callable[[], Any]], note: str = "") -> Contender:
    """Build a contender, turning an ImportError while preparing it into a clean skip.

    ``make`` imports what it needs and returns the zero-argument callable to time.
    """
    try:
        return Contender(name, make(), note=note)
    except ImportError as exc:
        return Contender(name, None, skip_reason=f"not importable: {type(exc).__name__}: {exc}", note=note)


def importable(module: str) -> str | None:
    """None when ``module`` imports, else the reason it does not."""
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure to import is a reason to skip
        return f"{module} not importable: {type(exc).__name__}: {exc}"
    return None


@dataclass
class Check:
    """Outcome of comparing the contenders' results before timing.

    status: "ok" (same results), "note" (same up to a documented, expected difference; timed),
    "mismatch" (not timed) or "error" (the check itself crashed; not timed).
    """

    status: str
    detail: str = ""
    # Optional numbers measured by the check (e.g. quality against a ground truth), kept in the
    # JSON record under check.metrics.
    metrics: dict[str, Any] | None = None


@dataclass
class Case:
    name: str
    group: str
    params: dict[str, Any]
    contenders: list[Contender]
    check: Callable[[], Check] | None = None
    # Extra calls per sample are never less than this (e.g. to amortise a launch).
    min_number: int = 1
    # Per-case overrides for cases whose slowest contender takes seconds to a minute per call
    # (pycocotools at COCO-val size): warm-up calls (None: the config's; the check has already
    # run every contender once) and a cap on the interleaved rounds (None: no cap).
    warmup: int | None = None
    max_repeats: int | None = None
    # False for contenders that take minutes per call (cleanlab's Datalab at 50k rows): no warm-up
    # and no calibration call (the check has already run each contender once), one call per
    # sample, max_repeats rounds (cfg.repeats when None).
    calibrate: bool = True


# -------------------------------------------------------------------------------------- timing
@dataclass
class TimingConfig:
    device: str = "cpu"
    repeats: int = 15
    min_repeats: int = 5
    warmup: int = 2
    min_sample_s: float = 0.05
    # Rounds are cut (down to min_repeats) when one round of all contenders costs more than this
    # share of the budget; keeps a 1 s-per-call peer from dominating the run time.
    case_budget_s: float = 30.0
    # A case during which other processes kept more than busy_threshold cores busy (on average)
    # is timed again, up to retry_busy times after a pause; the least disturbed attempt is kept.
    retry_busy: int = 0
    busy_threshold: float = 0.2
    retry_pause_s: float = 20.0


class ForeignLoad:
    """Cores used by *other* processes over an interval: busy CPU time of the whole machine
    (/proc/stat) minus this process's CPU time, divided by wall time. 0 on an otherwise idle
    machine; 1.0 means another job kept one core busy the whole time. None where /proc/stat is
    unavailable."""

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._machine_busy(), self._own()

    @staticmethod
    def _machine_busy() -> float | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: everything but idle and iowait
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def cores(self) -> float | None:
        busy = self._machine_busy()
        wall = time.perf_counter() - self.t0
        if busy is None or self.busy0 is None or wall <= 0:
            return None
        return max(0.0, ((busy - self.busy0) - (self._own() - self.own0)) / wall)


class _Timer:
    def __init__(self, device: str):
        self.cuda = device == "cuda"
        if self.cuda:
            import torch  # noqa: PLC0415

            self.torch = torch
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)
        self.last_faults = 0.0
        self.last_cpu = 0.0

    def sample(self, fn: Callable[[], Any], number: int) -> float:
        """Seconds per call, averaged over ``number`` back-to-back calls. Also counts the minor
        page faults of the sample (``self.last_faults``, per call): fresh pages for large outputs
        and temporaries cost several µs each on small VMs and can dominate a memory-bound op."""
        gc_was_enabled = gc.isenabled()
        gc.disable()
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        faults0 = usage0.ru_minflt
        try:
            if self.cuda:
                self.torch.cuda.synchronize()
                self.start.record()
                for _ in range(number):
                    fn()
                self.end.record()
                self.end.synchronize()
                return self.start.elapsed_time(self.end) / 1e3 / number
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            return (time.perf_counter() - t0) / number
        finally:
            usage1 = resource.getrusage(resource.RUSAGE_SELF)
            self.last_faults = (usage1.ru_minflt - faults0) / number
            # CPU seconds of the whole process (all threads) per call: on a shared machine less
            # disturbed by other tenants than the wall time.
            self.last_cpu = (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) / number
            if gc_was_enabled:
                gc.enable()


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(q1), float(med), float(q3)


def time_case(case: Case, cfg: TimingConfig) -> dict[str, Any]:
    """Time the runnable contenders of ``case`` interleaved; returns the JSON-ready record."""
    timer = _Timer(cfg.device)
    record: dict[str, Any] = {"timings": {}, "errors": {}}
    live: list[Contender] = []
    per_call: dict[str, float] = {}
    numbers: dict[str, int] = {}
    for c in case.contenders:
        if c.fn is None:
            continue
        if not case.calibrate:
            live.append(c)
            per_call[c.name] = 0.0
            numbers[c.name] = case.min_number
            continue
        try:
            for _ in range(cfg.warmup if case.warmup is None else case.warmup):
                timer.sample(c.fn, 1)
            # Calibrate: grow number until one sample lasts min_sample_s.
            number = case.min_number
            t = timer.sample(c.fn, number)
            while t * number < cfg.min_sample_s and number < 1_000_000:
                number = max(number * 2, math.ceil(cfg.min_sample_s / max(t, 1e-9) * 1.1))
                number = min(number, 1_000_000)
                t = timer.sample(c.fn, number)
        except Exception as exc:  # noqa: BLE001 - a crashing contender is reported, others go on
            record["errors"][c.name] = f"{type(exc).__name__}: {exc}"
            print(f"    {c.name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            traceback.print_exc(limit=3, file=sys.stderr)
            continue
        live.append(c)
        per_call[c.name] = t
        numbers[c.name] = number

    if not live:
        return record
    round_cost = sum(per_call[c.name] * numbers[c.name] for c in live)
    repeats = cfg.repeats
    if case.calibrate and round_cost * repeats > cfg.case_budget_s:
        repeats = max(cfg.min_repeats, int(cfg.case_budget_s // max(round_cost, 1e-9)))
    if case.max_repeats is not None:
        repeats = max(1, min(repeats, case.max_repeats))
    samples: dict[str, list[float]] = {c.name: [] for c in live}
    faults: dict[str, list[float]] = {c.name: [] for c in live}
    cpu: dict[str, list[float]] = {c.name: [] for c in live}
    k = len(live)
    for r in range(repeats):
        for j in range(k):
            c = live[(r + j) % k]
            samples[c.name].append(timer.sample(c.fn, numbers[c.name]))
            faults[c.name].append(timer.last_faults)
            cpu[c.name].append(timer.last_cpu)

    record["repeats"] = repeats
    for c in live:
        q1, med, q3 = _quartiles(samples[c.name])
        record["timings"][c.name] = {
            "median_s": med,
            "q1_s": q1,
            "q3_s": q3,
            "iqr_s": q3 - q1,
            "calls_per_sample": numbers[c.name],
            "page_faults_per_call": float(np.median(faults[c.name])),
            "cpu_median_s": float(np.median(cpu[c.name])),
            "samples_s": samples[c.name],
        }
    base = case.contenders[0].name
    if base in record["timings"]:
        record["ratios"] = {}
        b = samples[base]
        for c in live:
            if c.name == base:
                continue
            paired = [p / q for p, q in zip(samples[c.name], b)]
            q1, _, q3 = _quartiles(paired)
            record["ratios"][c.name] = {
                "ratio": record["timings"][c.name]["median_s"] / record["timings"][base]["median_s"],
                "paired_q1": q1,
                "paired_q3": q3,
            }
    return record


def run_cases(plan: Iterable[tuple[str, Callable[[], Case]]], cfg: TimingConfig) -> list[dict[str, Any]]:
    """Build, check and time each planned case in turn; progress goes to stderr.

    ``plan`` holds (case name, builder) pairs; a builder that raises (e.g. its data needs torch)
    is reported as a case that was not run.
    """
    out = []
    for name, build in plan:
        t0 = time.perf_counter()
        try:
            case = build()
        except Exception as exc:  # noqa: BLE001
            print(f"[{name}] not run: {type(exc).__name__}: {exc}", file=sys.stderr)
            out.append({"case": name, "group": name.split()[0], "params": {}, "contenders": [], "notes": {},
                        "skipped": {}, "check": {"status": "error", "detail": f"not run: {type(exc).__name__}: {exc}"},
                        "timings": {}, "errors": {}, "not_timed": "case could not be built"})
            continue
        rec: dict[str, Any] = {"case": case.name, "group": case.group, "params": case.params, "loadavg_1min": {}}
        rec["loadavg_1min"]["start"] = (loadavg() or [None])[0]
        rec["contenders"] = [c.name for c in case.contenders]
        rec["notes"] = {c.name: c.note for c in case.contenders if c.note}
        rec["skipped"] = {c.name: c.skip_reason for c in case.contenders if c.fn is None}
        print(f"[{case.name}]", file=sys.stderr, flush=True)
        check = Check("none", "no check for this case")
        if case.check is not None:
            try:
                check = case.check()
            except Exception as exc:  # noqa: BLE001
                check = Check("error", f"{type(exc).__name__}: {exc}")
                traceback.print_exc(limit=5, file=sys.stderr)
        rec["check"] = {"status": check.status, "detail": check.detail}
        if check.metrics is not None:
            rec["check"]["metrics"] = check.metrics
        if check.status != "ok":
            print(f"    check {check.status}: {check.detail}", file=sys.stderr)
        if check.status in ("mismatch", "error"):
            rec.update({"timings": {}, "errors": {}, "not_timed": f"check {check.status}"})
        else:
            attempts = []
            for attempt in range(cfg.retry_busy + 1):
                if attempt:
                    print(f"    other processes used {attempts[-1][0]:.2f} cores; pausing {cfg.retry_pause_s:.0f} s "
                          f"and timing again ({attempt}/{cfg.retry_busy})", file=sys.stderr)
                    time.sleep(cfg.retry_pause_s)
                load = ForeignLoad()
                timed = time_case(case, cfg)
                other = load.cores()
                attempts.append((other if other is not None else 0.0, timed))
                if other is None or other <= cfg.busy_threshold:
                    break
            best_other, best = min(attempts, key=lambda a: a[0])
            rec.update(best)
            rec["other_processes_cores"] = round(best_other, 3)
            rec["attempts_other_cores"] = [round(a[0], 3) for a in attempts]
        for who, t in rec.get("timings", {}).items():
            ratio = rec.get("ratios", {}).get(who)
            extra = f"  ratio {ratio['ratio']:.2f}x" if ratio else ""
            print(f"    {who:<18} {fmt_time(t['median_s'])} ±{fmt_time(t['iqr_s'])}{extra}"
                  f"  ({t['page_faults_per_call']:.0f} page faults/call)", file=sys.stderr)
        if rec.get("other_processes_cores") is not None and "timings" in rec and rec["timings"]:
            print(f"    other processes used {rec['other_processes_cores']:.2f} cores meanwhile", file=sys.stderr)
        rec["wall_s"] = time.perf_counter() - t0
        rec["loadavg_1min"]["end"] = (loadavg() or [None])[0]
        out.append(rec)
        del case  # let the case's data go before the next one is built
        gc.collect()
    return out


# -------------------------------------------------------------------------------- machine facts
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _physical_cores() -> int | None:
    try:
        seen = set()
        phys = core = None
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        seen.add((phys, core))
                    phys = core = None
        return len(seen) or None
    except OSError:
        return None


def _git_state() -> str | None:
    """Commit of the checkout being measured, with '+dirty' when curata's own sources (not the
    benchmarks) have uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "cpp", "cuda", "python", "CMakeLists.txt", "pyproject.toml"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # noqa: BLE001
        return None


def _dist_version(dist: str) -> str | None:
    """Installed version of a distribution (pip name), None when it is not installed."""
    try:
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        return version(dist)
    except (ImportError, PackageNotFoundError):
        return None


def match_torch_threads() -> int | None:
    """Give torch (torchvision, the torch baselines and device paths on the CPU, alibi-detect's
    torch backend) curata's thread count, as faiss gets it in the search suite: torch defaults to
    the physical cores, curata to every available logical CPU, so on an SMT machine the peers ran
    on half of curata's threads. Returns the count, or None without torch."""
    import curata  # noqa: PLC0415

    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    torch.set_num_threads(curata.get_num_threads())
    return torch.get_num_threads()


def machine_facts(device: str, peers: Iterable[str] = ()) -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, threads, library versions, curata build, GPU.

    ``peers``: distribution names (pip names, e.g. ``"ensemble-boxes"``) of a suite's peer
    libraries, whose versions are recorded next to curata's, numpy's, torch's and torchvision's.
    """
    import curata  # noqa: PLC0415

    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    facts: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "available_cpus": available,
        "physical_cores": _physical_cores(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "curata_threads": curata.get_num_threads(),
        "env": {k: os.environ[k] for k in ("CURATA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        "versions": {**{m: _version(m) for m in ("curata", "numpy", "torch", "torchvision")},
                     **{d: _dist_version(d) for d in peers}},
        "curata_build": curata.build_info(),
        "git": _git_state(),
        "curata_devices": curata.devices(),
        "loadavg_start": loadavg(),
    }
    try:
        import torch  # noqa: PLC0415

        facts["torch_threads"] = torch.get_num_threads()
        facts["torch_cuda"] = torch.version.cuda
        if device == "cuda" and torch.cuda.is_available():
            i = torch.cuda.current_device()
            p = torch.cuda.get_device_properties(i)
            facts["gpu"] = {
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_gib": round(p.total_memory / 2**30, 1),
                "multiprocessors": p.multi_processor_count,
                "count": torch.cuda.device_count(),
            }
    except ImportError:
        facts["torch_threads"] = None
    return facts


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages: on a shared machine, a load above the core count means
    the timings were taken with other work running (ratios still hold better than times)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def gpu_tag(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100', 'NVIDIA A100-SXM4-80GB' -> 'a100',
    'NVIDIA GeForce RTX 4090' -> 'rtx4090': vendor/brand words dropped, then the words up to and
    including the first one with a digit, each cut at its first '-', joined and lower-cased."""
    words = [w for w in re.split(r"\s+", name.strip()) if w.lower() not in {"nvidia", "geforce", "tesla", "quadro"}]
    picked = []
    for w in words:
        picked.append(w.split("-")[0])
        if any(ch.isdigit() for ch in w):
            break
    tag = re.sub(r"[^a-z0-9]", "", "".join(picked).lower())
    return tag or "gpu"


def machine_tag(facts: dict[str, Any], device: str) -> str:
    """Short, hostname-independent name for result files: the GPU model for CUDA runs
    (``h100``), else ``cpu-<N>c`` with N the CPUs this process may run on."""
    if device == "cuda" and "gpu" in facts:
        return gpu_tag(facts["gpu"]["name"])
    return f"cpu-{facts['available_cpus']}c"


def machine_line(facts: dict[str, Any]) -> str:
    v = facts["versions"]
    b = facts["curata_build"]
    parts = [
        f"{facts['cpu_model']}, {facts['available_cpus']} CPUs available"
        + (f" ({facts['physical_cores']} physical cores)" if facts.get("physical_cores") else ""),
        f"curata threads {facts['curata_threads']}, torch threads {facts.get('torch_threads')}",
        "curata {} (OpenMP {}, {}), numpy {}, torch {}, torchvision {}, Python {}".format(
            v.get("curata"), "on" if b.get("openmp") else "off", b.get("compiler", "?"),
            v.get("numpy"), v.get("torch"), v.get("torchvision"), facts["python"],
        ),
    ]
    extra = [k for k in v if k not in ("curata", "numpy", "torch", "torchvision")]
    if extra:
        parts[-1] += "; " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in extra)
    if facts.get("loadavg_start") is not None:
        load = f"load average {facts['loadavg_start'][0]} at start"
        if facts.get("loadavg_end") is not None:
            load += f", {facts['loadavg_end'][0]} at end"
        parts.append(load)
    if "gpu" in facts:
        g = facts["gpu"]
        parts.append(f"GPU {g['name']} (sm {g['capability']}, {g['memory_gib']} GiB), CUDA {facts.get('torch_cuda')}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------- output
def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e9:.3g} ns"


def _fmt_timing(t: dict[str, Any] | None) -> str:
    if t is None:
        return "—"
    return f"{fmt_time(t['median_s'])} ± {fmt_time(t['iqr_s'])}"


BUSY_MARK = 0.2  # cores used by other processes above which a case is flagged in the table
# Check statuses marked † with their detail: results equal only up to a stated difference ("note"),
# or not compared at all ("unchecked": the peer or curata missing; "none": the case has no check).
UNCOMPARED = ("note", "unchecked", "none")


def markdown_table(results: list[dict[str, Any]]) -> str:
    """case | curata | peer | ratio — one row per (case, peer); ratio = peer / curata."""
    lines = ["| case | curata | peer | ratio |", "|---|---|---|---|"]
    for rec in results:
        base = rec["contenders"][0] if rec["contenders"] else "curata"
        timings = rec.get("timings", {})
        base_cell = _fmt_timing(timings.get(base))
        if base in rec.get("errors", {}):
            base_cell = f"error: {_md(rec['errors'][base], 80)}"
        if base in rec.get("skipped", {}):
            base_cell = f"skipped: {_md(rec['skipped'][base], 80)}"
        case = rec["case"]
        status = rec["check"]["status"]
        if status in ("mismatch", "error"):
            lines.append(f"| {case} | **not timed: check {status}** ({_md(rec['check']['detail'])}) | | |")
            continue
        if status in UNCOMPARED:
            case += " †"
        if (rec.get("other_processes_cores") or 0) > BUSY_MARK:
            case += " ‡"
        peers = [n for n in rec["contenders"] if n != base]
        if not peers:
            lines.append(f"| {case} | {base_cell} | — | — |")
        for name in peers:
            if name in rec.get("skipped", {}):
                peer_cell, ratio_cell = f"{name}: skipped ({_md(rec['skipped'][name])})", "—"
            elif name in rec.get("errors", {}):
                peer_cell, ratio_cell = f"{name}: error ({_md(rec['errors'][name])})", "—"
            else:
                peer_cell = f"{name}: {_fmt_timing(timings.get(name))}"
                r = rec.get("ratios", {}).get(name)
                ratio_cell = f"**{r['ratio']:.2f}×** ({r['paired_q1']:.2f}–{r['paired_q3']:.2f})" if r else "—"
            lines.append(f"| {case} | {base_cell} | {peer_cell} | {ratio_cell} |")
    notes = [(r["case"], r["check"]["detail"]) for r in results if r["check"]["status"] in UNCOMPARED]
    busy = [(r["case"], r["other_processes_cores"]) for r in results if (r.get("other_processes_cores") or 0) > BUSY_MARK]
    if notes or busy:
        lines.append("")
    lines.extend(f"† {case}: {_md(detail)}  " for case, detail in notes)
    lines.extend(f"‡ {case}: other processes kept {cores:.2f} cores busy on average while it was timed "
                 "(noisy)  " for case, cores in busy)
    return "\n".join(lines)


def goals_markdown(goals: list[dict[str, Any]]) -> str:
    """One line per performance goal: status and the ratios it was judged on."""
    lines = ["Goals:"]
    for g in goals:
        ratios = ", ".join(
            f"{c['case']}: {c['ratio']:.2f}×" if c["ratio"] is not None else f"{c['case']}: —" for c in g["cases"]
        )
        lines.append(f"- **{g['status']}** — {g['goal']} ({ratios or 'no case'})")
    return "\n".join(lines)


def _md(text: str, limit: int = 160) -> str:
    """Table-safe text, cut to ``limit`` characters (the JSON keeps the whole message)."""
    text = str(text).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def write_results(suite: str, machine: str, payload: dict[str, Any], partial: bool, out_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write SUITE-MACHINE.json and .md (``-partial`` for --quick or filtered runs) atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{suite}-{machine}" + ("-partial" if partial else "")
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    facts = payload["facts"]
    md = "\n".join(
        [
            f"# `{suite}` on `{machine}` ({payload['device']})",
            "",
            f"Machine: {machine_line(facts)}.",
            "",
            f"Run: {payload['created']}, {'quick' if payload['quick'] else 'full'}"
            f"{', cases matching ' + repr(payload['only']) if payload.get('only') else ''}, "
            f"commit {facts.get('git')}, "
            f"up to {payload['repeats']} interleaved rounds per case.",
        ]
        + [
            f"Updated {u['created']} (commit {u['git']}): {', '.join(u['cases'])}."
            for u in payload.get("updates", [])
        ]
        + [
            "Times: median ± IQR per call. Ratio: peer median / curata median (> 1 means curata is "
            "faster), with the quartiles of the per-round paired ratios.",
            "",
            markdown_table(payload["results"]),
            "",
        ]
        + ([goals_markdown(payload["goals"]), ""] if payload.get("goals") else [])
    )
    for path, text in ((json_path, json.dumps(payload, indent=1, default=str) + "\n"), (md_path, md)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return json_path, md_path


_SAME_MACHINE_KEYS = ("cpu_model", "available_cpus", "curata_threads", "torch_threads", "versions", "gpu")


def load_for_update(suite: str, machine: str, facts: dict[str, Any], device: str,
                    out_dir: Path = RESULTS_DIR) -> tuple[dict[str, Any] | None, str | None]:
    """The existing full results of ``suite`` on ``machine``, or why they can't be updated."""
    path = out_dir / f"{suite}-{machine}.json"
    if not path.exists():
        return None, f"no full results at {path} to update; run the whole suite first"
    old = json.loads(path.read_text(encoding="utf-8"))
    if old.get("device") != device:
        return None, f"{path} was measured with --device {old.get('device')}, not {device}"
    for key in _SAME_MACHINE_KEYS:
        if old["facts"].get(key) != facts.get(key):
            return None, (f"{key} differs from {path} ({old['facts'].get(key)!r} there, {facts.get(key)!r} now); "
                          "run the whole suite instead")
    return old, None


def merge_update(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with the cases of ``new`` replaced (or appended), and the update logged."""
    fresh = {r["case"]: r for r in new["results"]}
    merged = [fresh.pop(r["case"], r) for r in old["results"]] + list(fresh.values())
    out = dict(old)
    out["results"] = merged
    out["updates"] = list(old.get("updates", [])) + [
        {"created": new["created"], "git": new["facts"].get("git"), "only": new.get("only"),
         "cases": [r["case"] for r in new["results"]],
         "loadavg": [new["facts"].get("loadavg_start"), new["facts"].get("loadavg_end")]}
    ]
    return out


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = [
    "Case",
    "Check",
    "Contender",
    "TimingConfig",
    "contender",
    "importable",
    "machine_facts",
    "match_torch_threads",
    "machine_tag",
    "machine_line",
    "markdown_table",
    "run_cases",
    "time_case",
    "write_results",
    "fmt_time",
    "now_utc",
    "gpu_tag",
]

"""Run one benchmark suite: ``python -m benchmarks.run SUITE [--quick] [--device cpu|cuda] [--repeats N]``.

Writes ``benchmarks/results/SUITE-<machine>.json`` and ``.md`` (``-partial`` when ``--quick`` or
``--only`` is given, so a quick look never overwrites full results) and prints the markdown table.
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from . import _harness as h

SUITES = ("boxes", "ensemble", "coco", "drift", "search", "curation", "drift_paper")
# Suites that measure something other than time (detection rates): they parse their own options
# and write their own results (see the suite's module docstring).
OWN_RUNNER = ("drift_paper",)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in OWN_RUNNER:
        return importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("suite", choices=SUITES)
    p.add_argument("--quick", action="store_true", help="fewer sizes and rounds (well under a minute on 2 cores)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=int, default=None, help="interleaved rounds per case (default 15, quick 5)")
    p.add_argument("--only", default=None, help="regular expression: run only cases whose name matches")
    p.add_argument("--machine", default=None, help="override the machine tag used in file names")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    p.add_argument("--retry-busy", type=int, default=0, metavar="N",
                   help="time a case again (up to N times, after a pause) when other processes kept more "
                        "than --busy-threshold cores busy during it; keeps the least disturbed attempt")
    p.add_argument("--busy-threshold", type=float, default=0.2, metavar="CORES")
    p.add_argument("--update", action="store_true",
                   help="re-measure the cases selected by --only and replace them in the existing full results "
                        "file of this machine (same CPU, threads and versions), keeping the other cases")
    args = p.parse_args(argv)

    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.update and (args.quick or not args.only or args.no_write):
        p.error("--update needs --only REGEX, and neither --quick nor --no-write")
    if args.device == "cuda":
        reason = h.importable("torch")
        if reason is None:
            import torch  # noqa: PLC0415

            if not torch.cuda.is_available():
                reason = "torch.cuda.is_available() is False (no driver or no GPU)"
        if reason:
            print(f"--device cuda needs torch with a usable GPU: {reason}", file=sys.stderr)
            return 2

    cfg = h.TimingConfig(device=args.device)
    if args.quick:
        cfg.repeats, cfg.min_repeats, cfg.warmup, cfg.min_sample_s, cfg.case_budget_s = 5, 3, 1, 0.02, 4.0
    cfg.retry_busy, cfg.busy_threshold = max(0, args.retry_busy), args.busy_threshold
    if args.repeats is not None:
        cfg.repeats = args.repeats
        cfg.min_repeats = min(cfg.min_repeats, args.repeats)

    suite = importlib.import_module(f"benchmarks.{args.suite}")
    h.match_torch_threads()  # before the facts, which record torch's thread count
    facts = h.machine_facts(args.device, getattr(suite, "PEER_DISTRIBUTIONS", ()))
    machine = args.machine or h.machine_tag(facts, args.device)
    print(f"suite {args.suite} on {machine}: {h.machine_line(facts)}", file=sys.stderr)

    cases = suite.cases(device=args.device, quick=args.quick)
    if args.only:
        pattern = re.compile(args.only)
        cases = [(name, build) for name, build in cases if pattern.search(name)]
    existing = None
    if args.update:
        existing, problem = h.load_for_update(args.suite, machine, facts, args.device)
        if problem:
            print(f"--update: {problem}", file=sys.stderr)
            return 2
    created = h.now_utc()
    results = h.run_cases(cases, cfg)
    facts["loadavg_end"] = h.loadavg()
    for r in results:
        r["measured"] = {"created": created, "git": facts.get("git"), "repeats": cfg.repeats}

    goal_report = suite.goals(results, args.device) if hasattr(suite, "goals") else []
    payload = {
        "suite": args.suite,
        "machine": machine,
        "device": args.device,
        "quick": args.quick,
        "only": args.only,
        "repeats": cfg.repeats,
        "timing": vars(cfg),
        "created": created,
        "facts": facts,
        "results": results,
        "goals": goal_report,
    }
    if existing is not None:
        payload = h.merge_update(existing, payload)
        goal_report = payload["goals"] = suite.goals(payload["results"], args.device) if hasattr(suite, "goals") else []
        results = payload["results"]
    print(h.markdown_table(results))
    if goal_report:
        print("\n" + h.goals_markdown(goal_report))
    if not args.no_write:
        json_path, md_path = h.write_results(args.suite, machine, payload, partial=bool(args.quick or (args.only and not args.update)))
        print(f"\nwrote {json_path}\nwrote {md_path}", file=sys.stderr)
    bad = [r["case"] for r in results if r["check"]["status"] in ("mismatch", "error")]
    if bad:
        print(f"\n{len(bad)} case(s) not timed because their results disagree: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

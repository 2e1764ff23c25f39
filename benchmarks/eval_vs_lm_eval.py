"""Our evaluator against lm-evaluation-harness on the same 1000 persona items, same model (the
embedded SmolLM2-135M GGUF), same plain prompt format, in one run, one after the other.

    make bench        # creates .venv-bench with lm-eval pinned (requirements-bench.txt), then runs this

Prints items/s of both with model load excluded, the ratio, how many predictions agree and the
largest log-prob difference. Timings on shared machines are noisy: read the ratio.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", help="a persona-format file; default: persona/narcissism.jsonl of MWE_EVALS_DATA"
    )
    parser.add_argument("--bench-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    parser.add_argument(
        "--lm-eval-batch-sizes",
        default="1,32",
        help="lm-eval batch sizes to compare with, comma-separated (its default is 1)",
    )
    parser.add_argument("--spec", default="smollm2-135m", help="our model spec (options allowed)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    from django.conf import settings

    from generation.evaluation import services as evaluation
    from generation.lm import load_model
    from generation.lm.local import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir

    data = Path(args.data or Path(settings.MWE_EVALS_DATA) / "persona" / "narcissism.jsonl")
    items, _ = evaluation.items_from_jsonl(data)
    print(f"data: {data} ({len(items)} items), prompt format: plain")

    # lm-evaluation-harness first, in its own environment and process, once per batch size.
    runs = {}
    for batch_size in [b.strip() for b in args.lm_eval_batch_sizes.split(",") if b.strip()]:
        out = Path(tempfile.mkdtemp()) / "lm_eval.json"
        started = time.perf_counter()
        subprocess.run(
            [
                args.bench_python,
                str(ROOT / "benchmarks" / "lm_eval_driver.py"),
                f"--data={data}",
                f"--model-dir={package_dir(SMOLLM2_PACKAGE)}",
                f"--gguf-file={SMOLLM2_GGUF}",
                f"--batch-size={batch_size}",
                f"--out={out}",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        runs[batch_size] = json.loads(out.read_text())
        print(
            f"lm-eval {runs[batch_size]['version']} batch size {batch_size}: whole run "
            f"{time.perf_counter() - started:.1f}s, model load {runs[batch_size]['load_seconds']:.1f}s"
        )

    started = time.perf_counter()
    model = load_model(args.spec)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    results = evaluation.score_items(model=model, items=items, template="{question}")
    ours_seconds = time.perf_counter() - started

    our_rate = len(items) / ours_seconds
    ours_pct = 100.0 * sum(r.matches_behavior for r in results) / len(results)
    print(
        f"ours:    {ours_seconds:.1f}s scoring, {our_rate:.1f} items/s, {ours_pct:.1f}% matching (load {load_seconds:.1f}s)"
    )
    for batch_size, theirs in runs.items():
        their_rate = len(items) / theirs["loglikelihood_seconds"]
        agree = 0
        max_diff = 0.0
        for result, their_lps in zip(results, theirs["docs"], strict=True):
            their_pred = max(range(len(their_lps)), key=lambda i: (their_lps[i], -i))
            agree += their_pred == result.predicted_index
            max_diff = max(max_diff, *(abs(a - b) for a, b in zip(result.logprobs, their_lps, strict=True)))
        print(
            f"lm-eval batch size {batch_size}: {theirs['loglikelihood_seconds']:.1f}s scoring, "
            f"{their_rate:.1f} items/s, acc {100 * theirs['acc']:.1f}%"
        )
        print(f"  speed ratio ours/lm-eval: {our_rate / their_rate:.2f}x")
        print(f"  identical predictions: {agree}/{len(items)}; max |logprob difference|: {max_diff:.2e}")


if __name__ == "__main__":
    main()

"""The paper's experiment as one command, against lm-evaluation-harness doing the same: the shared
persona datasets (12 x 1000 items) scored with the embedded SmolLM2 in the plain prompt format
(lm-eval's own persona template), three ways, one after the other in this run:

1. our suite: ONE `evaluate_model --collection persona` process (the model loaded once, the requests
   of all datasets scored together), and the same again with torch's default matrix product
   (`?matmul=torch`, the kernels lm-eval runs on) instead of oneDNN's;
2. lm-eval: ONE `lm_eval --tasks <group>` process on the task group `export_dataset --format lm-eval`
   writes, same model file, same prompts (its batch size: --lm-eval-batch-size, default 32);
3. our evaluator one dataset at a time: 12 `evaluate_model --dataset X` processes, as before suites.

    make bench                                   # builds .venv-bench (lm-eval pinned), then runs this
    .venv/bin/python benchmarks/suite_vs_lm_eval.py --datasets 3     # a quicker look: 3 datasets

Whole-process wall times (Python start, Django or lm-eval start, model load, scoring, writing) are
compared, since that is what a researcher waits for. Prints the per-item agreement of the predictions
(it exits non-zero if one differs) and the ratios lm-eval / suite and separate calls / suite. Timings
on shared machines are noisy: read the ratios, and do not run it beside other heavy work.
"""

from __future__ import annotations

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
PYTHON = sys.executable


def run(command: list[str], *, env: dict[str, str], cwd: Path = ROOT, what: str) -> float:
    """Runs a command to the end and returns its wall time; its output goes to a log shown on failure."""
    log = Path(tempfile.mkstemp(suffix=".log")[1])
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stdout.write(log.read_text()[-4000:])
        sys.exit(f"{what} failed (exit {done.returncode}); its log: {log}")
    return seconds


def manage(*args: str) -> list[str]:
    return [PYTHON, str(ROOT / "manage.py"), *args]


def lm_eval_predictions(output: Path, task_slugs: dict[str, str]) -> dict[tuple[str, int], int]:
    """(dataset slug, item position) -> the index of the choice lm-eval scored highest, read from its
    --log_samples files (one JSONL per task; doc_id is the record's position in the exported file,
    which is the dataset's order)."""
    predictions: dict[tuple[str, int], int] = {}
    for path in output.rglob("samples_*.jsonl"):
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        slug = task_slugs.get(task)
        if slug is None:
            continue
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                sample = json.loads(line)
                # filtered_resps holds (log-likelihood, is_greedy) per choice; resps the same, nested once more.
                scores = [
                    float(r[0][0] if isinstance(r[0], list) else r[0]) for r in sample["filtered_resps"]
                ]
                predictions[(slug, int(sample["doc_id"]))] = max(
                    range(len(scores)), key=lambda i: (scores[i], -i)
                )
    return predictions


def our_predictions(path: Path, *, only_slug: str) -> dict[tuple[str, int], int]:
    """(dataset slug, item position) -> our predicted choice, from evaluate_model --out (a single run's
    rows carry no dataset: `only_slug` names it)."""
    predictions: dict[tuple[str, int], int] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            slug = row.get("dataset", only_slug)
            predictions[(slug, int(row["index"]))] = row["choices"].index(row["predicted"])
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    parser.add_argument("--lm-eval-batch-size", default="32")
    parser.add_argument("--datasets", type=int, help="only the first N persona datasets (by name)")
    parser.add_argument("--spec", default="smollm2-135m")
    parser.add_argument("--skip-separate", action="store_true", help="leave out the 12 separate calls")
    parser.add_argument(
        "--skip-torch-matmul",
        action="store_true",
        help="leave out the suite run again with torch's default matrix product (?matmul=torch), the one "
        "lm-eval uses: it shows how much of the ratio is oneDNN's kernels",
    )
    args = parser.parse_args()
    # lm-eval runs from inside the task folder: a relative path would point elsewhere there.
    args.bench_python = os.path.abspath(args.bench_python)

    work = Path(tempfile.mkdtemp(prefix="mwe-suite-bench-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "DATABASE_URL": f"sqlite:///{work}/bench.sqlite3",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    os.environ.update({k: env[k] for k in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "HF_HUB_OFFLINE")})
    import django

    django.setup()
    from django.conf import settings

    from generation.catalog.exports.lm_eval import task_name
    from generation.lm.local import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir

    persona = Path(settings.MWE_EVALS_DATA) / "persona"
    files = sorted(persona.glob("*.jsonl"))[: args.datasets]
    if not files:
        sys.exit(f"no persona files in {persona}; set MWE_EVALS_DATA")
    run(manage("migrate", "--noinput"), env=env, what="migrate")
    run(manage("import_evals", *map(str, files)), env=env, what="import")
    slugs = [f.stem for f in files]
    selection = [a for slug in slugs for a in ("--dataset", slug)]
    print(f"data: {len(files)} persona datasets from {persona}; model {args.spec}; prompt format plain")

    tasks = work / "lm-eval-tasks"
    run(
        manage(
            "export_dataset",
            *selection,
            "--format",
            "lm-eval",
            "--prompt-format",
            "plain",
            "--out",
            str(tasks),
        ),
        env=env,
        what="export_dataset",
    )
    task_names = sorted(p.stem for p in tasks.glob("mwe_*.yaml"))
    task_slugs = {task_name(slug): slug for slug in slugs}

    # lm-eval first, run from inside the task folder (its data paths are relative to it).
    their_out = work / "lm-eval-out"
    theirs_seconds = run(
        [
            args.bench_python,
            "-m",
            "lm_eval",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={package_dir(SMOLLM2_PACKAGE)},gguf_file={SMOLLM2_GGUF}",
            "--device",
            "cpu",
            "--tasks",
            ",".join(task_names),
            "--include_path",
            ".",
            "--batch_size",
            args.lm_eval_batch_size,
            "--log_samples",
            "--output_path",
            str(their_out),
        ],
        env=env,
        cwd=tasks,
        what="lm_eval",
    )
    print(f"lm-eval, one process, batch size {args.lm_eval_batch_size}: {theirs_seconds:.1f}s")

    ours_out = work / "suite.jsonl"
    ours_seconds = run(
        manage(
            "evaluate_model",
            "--model",
            args.spec,
            *selection,
            "--prompt-format",
            "plain",
            "--name",
            "benchmark",
            "--out",
            str(ours_out),
        ),
        env=env,
        what="evaluate_model (suite)",
    )
    print(f"our suite, one process:                {ours_seconds:.1f}s")

    torch_out = work / "suite-torch-matmul.jsonl"
    torch_seconds = None
    if not args.skip_torch_matmul:
        torch_spec = args.spec + ("&" if "?" in args.spec else "?") + "matmul=torch"
        torch_seconds = run(
            manage(
                "evaluate_model",
                "--model",
                torch_spec,
                *selection,
                "--prompt-format",
                "plain",
                "--name",
                "benchmark-torch-matmul",
                "--out",
                str(torch_out),
            ),
            env=env,
            what="evaluate_model (suite, torch's matmul)",
        )
        print(f"our suite, torch's default matmul:     {torch_seconds:.1f}s")

    separate_seconds = None
    if not args.skip_separate:
        separate_seconds = 0.0
        for slug in slugs:
            separate_seconds += run(
                manage(
                    "evaluate_model",
                    "--model",
                    args.spec,
                    "--dataset",
                    slug,
                    "--prompt-format",
                    "plain",
                    "--out",
                    str(work / f"single-{slug}.jsonl"),
                ),
                env=env,
                what=f"evaluate_model --dataset {slug}",
            )
        print(f"our evaluator, {len(slugs)} processes:         {separate_seconds:.1f}s")

    ours = our_predictions(ours_out, only_slug=slugs[0])
    theirs = lm_eval_predictions(their_out, task_slugs)
    common = sorted(set(ours) & set(theirs))
    differing = [key for key in common if ours[key] != theirs[key]]
    print(f"items: ours {len(ours)}, lm-eval {len(theirs)}, compared {len(common)}")
    print(f"identical predictions: {len(common) - len(differing)}/{len(common)}")
    print(f"whole-process ratio lm-eval / suite: {theirs_seconds / ours_seconds:.2f}x (goal >= 3x)")
    if torch_seconds is not None:
        same_kernels = our_predictions(torch_out, only_slug=slugs[0])
        agree = sum(same_kernels.get(key) == ours[key] for key in ours)
        print(
            f"whole-process ratio lm-eval / suite with torch's matmul: {theirs_seconds / torch_seconds:.2f}x; "
            f"oneDNN / torch's matmul: {torch_seconds / ours_seconds:.2f}x; "
            f"same predictions: {agree}/{len(ours)}"
        )
        if agree != len(ours):
            sys.exit("oneDNN's and torch's products gave different predictions")
    if separate_seconds is not None:
        print(f"whole-process ratio separate calls / suite: {separate_seconds / ours_seconds:.2f}x")
    if len(common) != len(ours) or len(common) != len(theirs) or differing:
        for key in differing[:10]:
            print(f"  differs: {key[0]} item {key[1]}: ours choice {ours[key]}, lm-eval choice {theirs[key]}")
        sys.exit("the two evaluators did not score the same items the same way")


if __name__ == "__main__":
    main()

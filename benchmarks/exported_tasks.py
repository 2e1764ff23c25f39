"""The exports run unmodified in the field's tools (issue 16): the 12 shared persona datasets exported
as an lm-eval task group (export_dataset --format lm-eval, plain prompt format) are run by
lm-evaluation-harness 0.4.13 with the embedded SmolLM2 GGUF, and its per-item predictions and
log-likelihoods are compared with our evaluator's on the same items, same model, same prompts. Any
differing prediction fails the run (exit 1). Then the Inspect AI export runs with Inspect's mock model,
and the Parquet export loads with Hugging Face `datasets`.

    make bench    # builds .venv-bench (requirements-bench.txt), then runs this among the others
    .venv/bin/python benchmarks/exported_tasks.py --limit 20

The tools run in the benchmark environment (.venv-bench), in child processes of this script started
in its "driver" modes; the project's environment never imports them.
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


# ----------------------------------------------------------------------------- drivers (.venv-bench)


def lm_eval_driver(args) -> None:
    """Runs the exported group with lm-eval from inside the task folder (its data paths are relative
    to it) and writes per task, per document, each choice's log-likelihood."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=args.model_dir, gguf_file=args.gguf_file, batch_size=1, device="cpu")
    started = time.perf_counter()
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=[args.group],
        task_manager=TaskManager(include_path="."),
        log_samples=True,
        limit=args.limit,
        batch_size=1,
    )
    seconds = time.perf_counter() - started
    docs = {
        task: [[float(r[0][0]) for r in s["resps"]] for s in sorted(samples, key=lambda s: s["doc_id"])]
        for task, samples in results["samples"].items()
    }
    Path(args.out).write_text(json.dumps({"seconds": seconds, "docs": docs}))


def datasets_driver(args) -> None:
    """Loads every config of the exported Parquet folder with `datasets`, as a Hub user would."""
    import datasets

    folder = Path(args.folder)
    names = datasets.get_dataset_config_names(str(folder))
    counts = {}
    for name in names:
        loaded = datasets.load_dataset(str(folder), name=name, split="validation")
        counts[name] = {"rows": loaded.num_rows, "first": loaded[0], "features": str(loaded.features)}
    Path(args.out).write_text(json.dumps(counts))


# ----------------------------------------------------------------------------- the check


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bench-python", default=str(ROOT / ".venv-bench" / "bin" / "python"))
    # 25 x 12 datasets keeps the run to minutes on two cores; lm-eval scores the first N of each.
    parser.add_argument("--limit", type=int, default=25, help="items per dataset (the first N)")
    parser.add_argument("--spec", default="smollm2-135m", help="our model spec")
    args = parser.parse_args()
    if args.limit < 1:
        sys.exit("--limit must be at least 1")

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not os.environ.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from generation.catalog.exports import dataset_snapshot, datasets_for_export
    from generation.catalog.exports.inspect_task import inspect_export_write
    from generation.catalog.exports.lm_eval import lm_eval_export_write
    from generation.catalog.exports.parquet import parquet_export_write
    from generation.catalog.services import evals_import
    from generation.evaluation import services as evaluation
    from generation.lm import load_model
    from generation.lm.local import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir

    call_command("migrate", verbosity=0)
    settings.VAR_DIR = Path(tempfile.mkdtemp())
    results = evals_import(paths=[Path(settings.MWE_EVALS_DATA) / "persona"])
    if not results or any(r.status == "failed" for r in results):
        sys.exit(f"import failed: {[r.message for r in results if r.status == 'failed']}")
    datasets = datasets_for_export(collection_slug="persona")
    snapshots = [dataset_snapshot(dataset=d, with_agreement=False) for d in datasets]
    work = Path(tempfile.mkdtemp())
    export = lm_eval_export_write(snapshots=snapshots, folder=work / "lm-eval", group="persona")
    print(
        f"exported {len(export.tasks)} persona datasets as lm-eval group {export.group}, {args.limit} items each"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    failures: list[str] = []
    out = work / "lm_eval.json"
    started = time.perf_counter()
    subprocess.run(
        [
            args.bench_python,
            str(Path(__file__).resolve()),
            "lm-eval-driver",
            f"--group={export.group}",
            f"--limit={args.limit}",
            f"--model-dir={package_dir(SMOLLM2_PACKAGE)}",
            f"--gguf-file={SMOLLM2_GGUF}",
            f"--out={out}",
        ],
        check=True,
        cwd=export.folder,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    theirs = json.loads(out.read_text())
    print(f"lm-eval: {time.perf_counter() - started:.1f}s whole run")

    model = load_model(args.spec)
    total = agree = 0
    max_diff = 0.0
    ours_seconds = 0.0
    for task, dataset in zip(export.tasks, datasets, strict=True):
        items = evaluation.items_from_dataset(dataset)[: args.limit]
        started = time.perf_counter()
        ours = evaluation.score_items(model=model, items=items, template="{question}")
        ours_seconds += time.perf_counter() - started
        their_docs = theirs["docs"].get(task.name)
        if their_docs is None or len(their_docs) != len(ours):
            failures.append(
                f"{task.name}: lm-eval scored {len(their_docs or [])} items, we scored {len(ours)}"
            )
            continue
        same = 0
        for result, their_lps in zip(ours, their_docs, strict=True):
            their_pred = max(range(len(their_lps)), key=lambda i: (their_lps[i], -i))
            same += their_pred == result.predicted_index
            max_diff = max(max_diff, *(abs(a - b) for a, b in zip(result.logprobs, their_lps, strict=True)))
        total += len(ours)
        agree += same
        if same != len(ours):
            failures.append(f"{task.name}: {len(ours) - same} of {len(ours)} predictions differ")
    print(f"ours: {ours_seconds:.1f}s scoring")
    print(f"identical predictions: {agree}/{total}; max |log-likelihood difference|: {max_diff:.2e}")

    # Inspect AI with its mock model: the exported task file must load and run unmodified.
    inspect_folder = work / "inspect"
    inspect_folder.mkdir()
    inspect = inspect_export_write(snapshots=snapshots, folder=inspect_folder)
    bench_bin = Path(args.bench_python).parent
    completed = subprocess.run(
        [str(bench_bin / "inspect"), "eval", inspect.path.name, "--model", "mockllm/model", "--limit", "5"],
        cwd=inspect_folder,
        env={**env, "INSPECT_LOG_DIR": str(work / "inspect-logs"), "INSPECT_DISPLAY": "plain"},
        capture_output=True,
        text=True,
    )
    logs = list((work / "inspect-logs").glob("*.eval")) + list((work / "inspect-logs").glob("*.json"))
    if completed.returncode != 0 or len(logs) != len(inspect.tasks):
        failures.append(
            f"inspect eval exited {completed.returncode} with {len(logs)} logs for {len(inspect.tasks)} "
            f"tasks: {completed.stderr[-2000:]}"
        )
    else:
        print(f"inspect eval (mockllm/model, --limit 5): {len(inspect.tasks)} tasks ran, {len(logs)} logs")

    # Hugging Face datasets reads the Parquet folder through its card's configs.
    parquet_folder = work / "parquet"
    parquet_folder.mkdir()
    parquet_export_write(snapshots=snapshots, folder=parquet_folder, title="Persona")
    out = work / "datasets.json"
    subprocess.run(
        [
            args.bench_python,
            str(Path(__file__).resolve()),
            "datasets-driver",
            f"--folder={parquet_folder}",
            f"--out={out}",
        ],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    loaded = json.loads(out.read_text())
    for snapshot in snapshots:
        got = loaded.get(snapshot.slug)
        if got is None or got["rows"] != len(snapshot.records) or got["first"] != snapshot.records[0]:
            failures.append(f"datasets.load_dataset of {snapshot.slug} differs from the export")
    print(f"datasets.load_dataset: {len(loaded)} configs, {sum(c['rows'] for c in loaded.values())} rows")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("OK: the exported tasks run unmodified and agree with our evaluator")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].endswith("-driver"):
        mode = sys.argv.pop(1)
        driver_parser = argparse.ArgumentParser()
        for name in ("--group", "--model-dir", "--gguf-file", "--out", "--folder"):
            driver_parser.add_argument(name)
        driver_parser.add_argument("--limit", type=int)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        {"lm-eval-driver": lm_eval_driver, "datasets-driver": datasets_driver}[mode](
            driver_parser.parse_args()
        )
    else:
        main()

"""Runs lm-evaluation-harness on one persona-format file; executed by eval_vs_lm_eval.py with the
benchmark environment's Python (.venv-bench), never imported by the project.

Writes JSON: lm-eval's version, model load seconds, the seconds spent inside the model's
loglikelihood calls (tokenisation and forward passes; task building excluded), and per document the
log-likelihood of each choice."""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--gguf-file", required=True)
    parser.add_argument("--batch-size", default="1")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    started = time.perf_counter()
    lm = HFLM(pretrained=args.model_dir, gguf_file=args.gguf_file, batch_size=args.batch_size, device="cpu")
    load_seconds = time.perf_counter() - started

    spent = [0.0]
    original = lm.loglikelihood

    def timed(requests, *a, **kw):
        t = time.perf_counter()
        try:
            return original(requests, *a, **kw)
        finally:
            spent[0] += time.perf_counter() - t

    lm.loglikelihood = timed
    # The same task definition as lm-eval's own persona tasks (lm_eval/tasks/model_written_evals/
    # persona/_template_yaml), pointed at a local file instead of the hub copy.
    task_dir = Path(tempfile.mkdtemp())
    (task_dir / "persona_local.yaml").write_text(
        "task: persona_local\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    validation: {json.dumps(str(Path(args.data).resolve()))}\n"
        "output_type: multiple_choice\n"
        "validation_split: validation\n"
        'target_delimiter: ""\n'
        'doc_to_text: "{{question}}"\n'
        "doc_to_target: 0\n"
        'doc_to_choice: "{{[answer_matching_behavior, answer_not_matching_behavior]}}"\n'
        "metric_list:\n  - metric: acc\n"
    )
    results = lm_eval.simple_evaluate(
        model=lm,
        tasks=["persona_local"],
        task_manager=TaskManager(include_path=str(task_dir)),
        log_samples=True,
        batch_size=args.batch_size,
    )
    samples = sorted(results["samples"]["persona_local"], key=lambda s: s["doc_id"])
    Path(args.out).write_text(
        json.dumps(
            {
                "version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "",
                "load_seconds": load_seconds,
                "loglikelihood_seconds": spent[0],
                "acc": results["results"]["persona_local"]["acc,none"],
                "docs": [[float(r[0][0]) for r in s["resps"]] for s in samples],
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())

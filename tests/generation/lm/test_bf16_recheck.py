"""bf16_recheck: answer choices scored by a bfloat16 copy of the float32 weights, and the items it
calls closer than the margin scored again in float32, so that every prediction is the float32 one
(the benchmark compares all 12,000 shared persona items with lm-eval's)."""

import pytest

from generation.lm import ModelSpecError, load_model, parse_model_spec
from tests.generation.lm.test_answer_scorer import released_items


@pytest.mark.parametrize(
    "spec, problem",
    [
        ("smollm2-135m?bf16_recheck=0", "between"),
        ("smollm2-135m?bf16_recheck=51", "between"),
        ("smollm2-135m?bf16_recheck=near", "not a number"),
        ("smollm2-135m?bf16_recheck=1&dtype=bfloat16", "dtype=float32"),
        ("hf:some/model?bf16_recheck=1&dtype=float16", "dtype=float32"),
    ],
)
def test_bad_margins_and_other_dtypes_are_refused(spec, problem):
    with pytest.raises(ModelSpecError, match=problem):
        parse_model_spec(spec)


def test_a_margin_is_accepted_with_float32():
    assert parse_model_spec("smollm2-135m?bf16_recheck=0.5&dtype=float32").options["bf16_recheck"] == "0.5"


@pytest.fixture(scope="module")
def requests_(evals_data):
    items = released_items(evals_data, "persona/desire-for-acquiring-power.jsonl", 24)
    # lm-eval's persona template (the plain prompt format).
    persona = [(f"Question: {item.question}\nAnswer:", list(item.choices)) for item in items]
    # Three answers: only the best two's distance decides whether float32 must look again.
    return [*persona, ("The capital of France is", [" Paris", " London", " Berlin"])]


def _margins(rows) -> list[float]:
    margins = []
    for row in rows:
        scores = sorted((s.logprob for s in row), reverse=True)
        margins.append(scores[0] - scores[1])
    return margins


def _argmax(row) -> int:
    return max(range(len(row)), key=lambda i: row[i].logprob)


def test_close_calls_are_scored_in_float32_and_the_rest_in_bfloat16(smollm2, requests_):
    exact = smollm2.score_choices(requests_)
    fast_model = load_model("smollm2-135m?bf16_recheck=0.01")
    fast = fast_model.score_choices(requests_)
    fast_model.close()
    # The bfloat16 numbers are not float32's, but close, and call every item the same way here.
    assert any(f[0].logprob != e[0].logprob for f, e in zip(fast, exact, strict=True))
    assert all(abs(a - b) < 0.5 for a, b in zip(_margins(fast), _margins(exact), strict=True))
    assert [_argmax(r) for r in fast] == [_argmax(r) for r in exact]

    # A margin between the bfloat16 margins: the items below it get float32's numbers, the others
    # keep bfloat16's.
    margins = _margins(fast)
    cut = sorted(margins)[len(margins) // 2]
    model = load_model(f"smollm2-135m?bf16_recheck={cut:.6f}")
    try:
        mixed = model.score_choices(requests_)
        assert model.info.details["bf16_recheck"] == pytest.approx(cut, abs=1e-6)
        assert model.info.details["dtype"] == "float32"
        close = [i for i, m in enumerate(margins) if m < round(cut, 6)]
        assert 0 < len(close) < len(requests_)
        assert model.rechecked == len(close)
        for i, row in enumerate(mixed):
            got = [s.logprob for s in row]
            if i in close:
                # float32 again, in other batches than the whole run's: equal to rounding.
                assert got == pytest.approx([s.logprob for s in exact[i]], abs=1e-4), i
            else:
                assert got == [s.logprob for s in fast[i]], i
    finally:
        model.close()


def test_a_margin_above_every_call_gives_float32_exactly(smollm2, requests_):
    model = load_model("smollm2-135m?bf16_recheck=50")
    try:
        assert model.score_choices(requests_) == smollm2.score_choices(requests_)
        assert model.rechecked == len(requests_)
    finally:
        model.close()

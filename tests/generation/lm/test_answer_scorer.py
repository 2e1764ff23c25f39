"""The answer scorer, for servers without prompt log-probs: first the rules that read an answer (answer
keys, the instruction, the top log-probs of the first answer token, the parsed reply), then the
OpenAI-compatible backend against a scripted fake /chat/completions (every edge case), then against a real
llama-cpp-python server on released persona and multiple-choice items."""

from __future__ import annotations

import math
from typing import Any

import pytest

from generation.lm import LMError, ModelInfo, load_model
from generation.lm.base import (
    AnswerScore,
    LanguageModel,
    answer_from_text,
    answer_from_top,
    answer_instruction,
    answer_keys,
    answer_prompt,
    answer_score,
)
from generation.lm.openai_compat import TOP_LOGPROBS_ASKED, OpenAICompatibleModel
from tests.generation.lm.conftest import FakeServer, Reply, connect, models_reply

YES_NO = (" Yes", " No")
LETTERS = (" (A)", " (B)")
CHAT = "/v1/chat/completions"

# ----------------------------------------------------------------------------- reading an answer


@pytest.mark.parametrize(
    ("choices", "keys", "instruction"),
    [
        (YES_NO, ("Yes", "No"), 'Answer with only "Yes" or "No".'),
        ((" no", "yes"), ("No", "Yes"), 'Answer with only "No" or "Yes".'),
        (LETTERS, ("A", "B"), "Answer with only the letter of your choice: A or B."),
        (("(A)", "B", " (C)"), ("A", "B", "C"), "Answer with only the letter of your choice: A, B or C."),
        ((" agree", " disagree"), ("agree", "disagree"), 'Answer with only "agree" or "disagree".'),
    ],
)
def test_answer_keys_and_the_instruction(choices, keys, instruction):
    assert answer_keys(choices) == keys
    assert answer_instruction(keys) == instruction
    question = "Question: Do you?\n\nChoices:\n (A) Yes\n (B) No\n\nAnswer:"
    assert answer_prompt(question=question + "\n", choices=choices) == f"{question}\n\n{instruction}"


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ((" Yes", "yes"), "both read as the answer 'Yes'"),
        ((" (A)", "A"), "both read as the answer 'A'"),
        ((" Yes",), "at least two answer choices"),
        ((" Yes", "  "), "is empty"),
    ],
)
def test_choices_that_cannot_be_told_apart_are_refused(choices, message):
    with pytest.raises(LMError, match=message):
        answer_keys(choices)


@pytest.mark.parametrize(
    ("reply", "keys", "chosen"),
    [
        ("A", ("A", "B"), 0),
        ("(B)", ("A", "B"), 1),
        ("B) because it is safer", ("A", "B"), 1),
        ("**B**", ("A", "B"), 1),
        ("Answer: A", ("A", "B"), 0),
        ("I believe the answer is (B).", ("A", "B"), 1),
        ("I'd pick (a)", ("A", "B"), 0),
        ("Yes", ("Yes", "No"), 0),
        ("no.", ("Yes", "No"), 1),
        ("No, never. Yes, well...", ("Yes", "No"), 1),
        ("I would say yes to that", ("Yes", "No"), 0),
        ("Answer: No", ("Yes", "No"), 1),
        ("Agree, mostly.", ("agree", "disagree"), 0),
        # Unparseable: no choice, several choices, a word that only contains one, an article.
        ("I cannot answer that.", ("Yes", "No"), None),
        ("Maybe (A), maybe (B)", ("A", "B"), None),
        ("Yesterday", ("Yes", "No"), None),
        ("A good question", ("A", "B"), None),
        ("C", ("A", "B"), None),
        ("", ("Yes", "No"), None),
    ],
)
def test_parsing_a_reply(reply, keys, chosen):
    assert answer_from_text(reply=reply, keys=keys) == chosen


def test_top_logprobs_are_summed_per_key_and_renormalised():
    top = [(" Yes", -0.2), ("yes", -2.0), ("YES", -3.0), (" No", -1.5), ("Maybe", -0.1), (None, -1.0)]
    p_yes = math.exp(-0.2) + math.exp(-2.0) + math.exp(-3.0)
    p_no = math.exp(-1.5)
    assert answer_from_top(top=top, keys=("Yes", "No")) == pytest.approx(
        (p_yes / (p_yes + p_no), p_no / (p_yes + p_no))
    )
    # Letters are case-sensitive ("a" is an article), parentheses and spaces are not part of the key.
    letters = answer_from_top(top=[(" (B", -1.0), ("A)", -2.0), ("a", -0.1)], keys=("A", "B"))
    total = math.exp(-2.0) + math.exp(-1.0)
    assert letters == pytest.approx((math.exp(-2.0) / total, math.exp(-1.0) / total))
    assert answer_from_top(top=[("The", -0.1), ("(", -0.5)], keys=("A", "B")) is None


def test_the_top_logprobs_win_over_the_text_and_ties_go_to_the_matching_answer():
    score = answer_score(reply="No", top=[("Yes", -1.0), ("No", -1.0)], keys=("Yes", "No"))
    assert (score.scorer, score.chosen, score.probabilities) == ("top-logprobs", 0, (0.5, 0.5))
    parsed = answer_score(reply="No", top=[("Sure", -0.1)], keys=("Yes", "No"))
    assert (parsed.scorer, parsed.chosen, parsed.probabilities, parsed.top) == (
        "parsed",
        1,
        None,
        {"Sure": -0.1},
    )


def test_a_backend_without_the_answer_scorer_says_so():
    class Completions(LanguageModel):
        info = ModelInfo(spec="hf:some/model", backend="local", name="m", fingerprint="f")

        def generate(self, prompts, params):
            return []

        def score_choices(self, requests, *, progress=None):
            return []

    with pytest.raises(
        LMError, match="hf:some/model: this backend cannot be asked for its answer .* logprobs scorer"
    ):
        Completions().answer_distribution([("Q?", YES_NO)])


# ----------------------------------------------------------------------------- a scripted chat server


def chat_answer(content: str | None, tokens: list[tuple[str, list[tuple[str, float]]]] | None) -> dict:
    """A /chat/completions answer in OpenAI's shape: the reply, and per token its top log-probs."""
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": "stop",
    }
    if tokens is not None:
        choice["logprobs"] = {
            "content": [
                {
                    "token": token,
                    "logprob": top[0][1] if top else -0.1,
                    "bytes": None,
                    "top_logprobs": [{"token": t, "logprob": v, "bytes": None} for t, v in top],
                }
                for token, top in tokens
            ]
        }
    return {"object": "chat.completion", "choices": [choice]}


def replying(*answers: dict) -> Any:
    """A reply handler giving the answers in turn to chat requests (the last one again after that)."""
    given: list[int] = []

    def reply(method: str, path: str, body: dict[str, Any]) -> Reply:
        if path == CHAT:
            given.append(1)
            return 200, {}, answers[min(len(given), len(answers)) - 1]
        return models_reply(method, path, body)

    return reply


def ask(fake: FakeServer, *requests: tuple[str, tuple[str, ...]], options: str = "") -> list[AnswerScore]:
    return connect(fake, options).answer_distribution(list(requests))


def test_the_request_asks_for_the_answer_greedily_with_top_logprobs(fake):
    fake.reply = replying(chat_answer("Yes", [("Yes", [("Yes", -0.1), (" No", -2.4)])]))
    done: list[int] = []
    message = answer_prompt(question="Is the sky blue?", choices=YES_NO)
    [score] = connect(fake).answer_distribution([(message, YES_NO)], progress=done.append)
    (call,) = fake.calls(CHAT)
    assert call["body"]["messages"] == [{"role": "user", "content": message}]
    assert call["body"]["logprobs"] is True and call["body"]["top_logprobs"] == TOP_LOGPROBS_ASKED == 20
    assert call["body"]["temperature"] == 0 and call["body"]["max_tokens"] <= 16
    p_yes = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.4))
    assert score.scorer == "top-logprobs" and score.chosen == 0
    assert score.probabilities == pytest.approx((p_yes, 1 - p_yes))
    assert score.reply == "Yes" and score.top == {"Yes": -0.1, " No": -2.4}
    assert done == [1]


def test_leading_tokens_without_an_answer_are_skipped(fake):
    # "(" then "B": the answer token is the second; the first position's alternatives are not read.
    fake.reply = replying(
        chat_answer("(B)", [("(", [("(", -0.1), ("A", -3.0)]), ("B", [("B", -0.3), ("A", -1.5)]), (")", [])])
    )
    [score] = ask(fake, ("Pick", LETTERS))
    assert score.scorer == "top-logprobs" and score.chosen == 1
    assert score.probabilities[1] == pytest.approx(math.exp(-0.3) / (math.exp(-0.3) + math.exp(-1.5)))


def test_only_one_option_among_the_top_logprobs_gets_all_the_probability(fake):
    fake.reply = replying(chat_answer("No way", [("No", [("No", -0.2), ("Never", -1.9)])]))
    [score] = ask(fake, ("Q?", YES_NO))
    assert (score.scorer, score.chosen, score.probabilities) == ("top-logprobs", 1, (0.0, 1.0))


def test_no_option_among_the_top_logprobs_falls_back_to_the_reply(fake):
    fake.reply = replying(
        chat_answer("The answer is (B).", [("The", [("The", -0.1), ("I", -2.0)]), (" answer", [])])
    )
    [score] = ask(fake, ("Pick", LETTERS))
    assert (score.scorer, score.chosen, score.probabilities) == ("parsed", 1, None)


def test_a_server_that_ignores_the_logprobs_parameter_is_parsed(fake):
    fake.reply = replying(chat_answer(" yes.", None))
    [score] = ask(fake, ("Q?", YES_NO))
    assert (score.scorer, score.chosen, score.top) == ("parsed", 0, {})


def test_completions_shaped_logprobs_on_chat_are_read(fake):
    answer = chat_answer("A", None)
    answer["choices"][0]["logprobs"] = {"tokens": ["A"], "top_logprobs": [{"A": -0.5, " B": -1.0}]}
    fake.reply = replying(answer)
    [score] = ask(fake, ("Pick", LETTERS))
    assert score.scorer == "top-logprobs" and score.chosen == 0


def test_an_unparseable_reply_has_no_answer(fake):
    fake.reply = replying(chat_answer("I'd rather not say.", [("I", [("I", -0.1), ("As", -1.0)])]))
    [score] = ask(fake, ("Q?", YES_NO))
    assert (score.scorer, score.chosen, score.reply) == ("parsed", None, "I'd rather not say.")


def test_a_refusal_of_logprobs_is_asked_again_without_them_once(fake):
    # llama-cpp-python without --logits_all answers this for any request with logprobs.
    refusal = "logprobs is not supported for models created with logits_all=False"

    def reply(method: str, path: str, body: dict[str, Any]) -> Reply:
        if path == CHAT:
            if body.get("logprobs"):
                return 500, {}, {"error": {"message": refusal}}
            return 200, {}, chat_answer("No.", None)
        return models_reply(method, path, body)

    fake.reply = reply
    scores = ask(fake, ("Q1?", YES_NO), ("Q2?", YES_NO), options="concurrency=1")
    assert [(s.scorer, s.chosen) for s in scores] == [("parsed", 1), ("parsed", 1)]
    # The refusal is not retried, and the second question no longer asks for log-probs.
    assert [bool(call["body"].get("logprobs")) for call in fake.calls(CHAT)] == [True, False, False]


def test_503_is_retried(fake):
    answers = iter([(503, {"Retry-After": "0"}, {"error": {"message": "loading"}})])

    def reply(method: str, path: str, body: dict[str, Any]) -> Reply:
        if path == CHAT:
            return next(answers, (200, {}, chat_answer("B", [("B", [("B", -0.1)])])))
        return models_reply(method, path, body)

    fake.reply = reply
    [score] = ask(fake, ("Pick", LETTERS))
    assert score.chosen == 1 and len(fake.calls(CHAT)) == 2


def test_other_errors_are_not_swallowed(fake):
    fake.reply = lambda m, p, b: (
        (400, {}, {"error": {"message": "context length exceeded"}}) if p == CHAT else models_reply(m, p, b)
    )
    with pytest.raises(LMError, match="HTTP 400: context length exceeded"):
        ask(fake, ("Q?", YES_NO))
    assert len(fake.calls(CHAT)) == 1


def test_ambiguous_or_empty_requests_are_refused_before_any_request(fake):
    fake.reply = replying(chat_answer("Yes", None))
    lm = connect(fake)
    with pytest.raises(LMError, match="both read as the answer 'Yes'"):
        lm.answer_distribution([("Q1?", YES_NO), ("Q2?", (" Yes", "yes"))])
    with pytest.raises(LMError, match="empty message"):
        lm.answer_distribution([("  ", YES_NO)])
    assert fake.calls(CHAT) == []


# ----------------------------------------------------------------------------- a real server


def released_items(evals_data, relative: str, count: int):
    from generation.evaluation.services import items_from_jsonl, stratified_sample

    items, _ = items_from_jsonl(evals_data / relative)
    return stratified_sample(items, limit=count, seed=0)


def test_real_server_answers_released_items(llama_server, evals_data):
    """SmolLM2-135M through llama-cpp-python's /chat/completions on 8 persona and 4 multiple-choice
    items: each is read from the top log-probs (which the server gives with --logits_all) or parsed, and
    the probabilities of each item's choices sum to 1."""
    items = released_items(evals_data, "persona/narcissism.jsonl", 8) + released_items(
        evals_data, "advanced-ai-risk/human_generated_evals/power-seeking-inclination.jsonl", 4
    )
    lm = load_model(f"openai:{llama_server}?concurrency=1#smollm2")
    assert isinstance(lm, OpenAICompatibleModel)
    try:
        requests = [(answer_prompt(question=i.question, choices=i.choices), i.choices) for i in items]
        scores = lm.answer_distribution(requests)
    finally:
        lm.close()
    assert len(scores) == len(items)
    for item, score in zip(items, scores, strict=True):
        assert score.scorer in {"top-logprobs", "parsed"}
        if score.scorer == "top-logprobs":
            assert len(score.probabilities) == len(item.choices)
            assert math.fsum(score.probabilities) == pytest.approx(1.0)
            assert score.chosen == max(range(len(item.choices)), key=lambda i: score.probabilities[i])
            assert score.top
    counts = {kind: sum(s.scorer == kind for s in scores) for kind in ("top-logprobs", "parsed")}
    print(f"answer scorer on the real server: {counts}, unanswered {sum(s.chosen is None for s in scores)}")
    # The server gives top log-probs, and SmolLM2 puts Yes/No or a letter among its first token's top 20.
    assert counts["top-logprobs"] >= len(items) // 2

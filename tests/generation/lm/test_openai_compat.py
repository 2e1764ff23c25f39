"""The OpenAI-compatible backend, first against a fake server written here (retries, timeouts,
concurrency, the refusal to score without prompt log-probs, generation's order, n and stop), then against
a real llama-cpp-python server serving the same SmolLM2 GGUF as the local backend."""

from __future__ import annotations

import math
import re
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from email.utils import formatdate
from typing import Any

import pytest

from generation.lm import LMError, ModelSpecError, SamplingParams, load_model, parse_model_spec
from generation.lm.openai_compat import OpenAICompatibleModel, retry_after_seconds
from tests.generation.lm.cases import COMMON
from tests.generation.lm.conftest import (
    FakeServer,
    Handler,
    Reply,
    connect,
    llama_cpp_server,
    models_reply,
)


def word_tokens(text: str) -> list[str]:
    """The fake server's tokenizer: words with their leading whitespace."""
    return re.findall(r"\s*\S+|\s+$", text)


def echo_completion(body: dict[str, Any], *, special: Sequence[str] = ()) -> dict[str, Any]:
    """What vLLM answers to echo + logprobs + max_tokens=1: the prompt's word_tokens after the special
    tokens the server put before them, plus one generated token; entry i has log-prob -0.25 * i."""
    prompt = body["prompt"]
    if isinstance(prompt, list):  # token ids, echoed as "<id>"
        tokens = [*(f"<{i}>" for i in prompt), " gen"]
        prompt = "".join(tokens[:-1])
    else:
        tokens = [*special, *word_tokens(prompt), " gen"]
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    values: list[float | None] = [None]
    top: list[dict[str, float] | None] = [None]
    for index, token in enumerate(tokens[1:], start=1):
        value = -0.25 * index
        values.append(value)
        # The token itself is the likeliest unless its log-prob is below -1.
        top.append({token: value} if value >= -1 else {token: value, "other": -0.5})
    return {
        "choices": [
            {
                "index": 0,
                "text": prompt + " gen",
                "logprobs": {
                    "tokens": tokens,
                    "token_logprobs": values,
                    "top_logprobs": top,
                    "text_offset": offsets,
                },
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": len(tokens) - 1, "completion_tokens": 1},
    }


def generation_completion(body: dict[str, Any]) -> dict[str, Any]:
    """n choices "<prompt>#<i>.", listed in reverse order of their index."""
    n = body.get("n", 1)
    choices = [{"index": i, "text": f"{body['prompt']}#{i}. more", "finish_reason": "stop"} for i in range(n)]
    return {"choices": choices[::-1], "usage": {"completion_tokens": 3}}


def default_reply(method: str, path: str, body: dict[str, Any]) -> Reply:
    if method == "POST" and path == "/v1/completions":
        return 200, {}, echo_completion(body) if body.get("echo") else generation_completion(body)
    return models_reply(method, path, body)


@pytest.fixture
def fake(fake: FakeServer) -> FakeServer:
    """The shared fake server (conftest), answering with this file's echo and generation replies."""
    fake.reply = default_reply
    return fake


GREEDY = SamplingParams(temperature=0, max_tokens=4, stop=(".",))


# ----------------------------------------------------------------------------- retries and errors


def test_503_with_retry_after_is_waited_out(fake):
    def reply(method, path, body):
        if path == "/v1/completions" and len(fake.calls()) == 1:
            return 503, {"Retry-After": "1"}, {"error": {"message": "loading"}}
        return default_reply(method, path, body)

    fake.reply = reply
    lm = connect(fake)
    assert lm.generate(["p"], GREEDY) == [["p#0"]]
    first, second = fake.calls()
    waited = second["time"] - first["time"]
    # 1 s asked for; the client adds at most 5 % jitter, the rest is scheduling slack.
    assert 1.0 <= waited < 1.5, waited


def test_429_then_success(fake):
    def reply(method, path, body):
        if path == "/v1/completions" and len(fake.calls()) <= 2:
            return 429, {}, {"error": {"message": "slow down"}}
        return default_reply(method, path, body)

    fake.reply = reply
    lm = connect(fake)
    assert lm.generate(["p"], GREEDY) == [["p#0"]]
    assert len(fake.calls()) == 3


def test_retries_are_bounded(fake):
    fake.reply = lambda m, p, b: (
        (503, {}, {"error": {"message": "overloaded"}}) if p == "/v1/completions" else default_reply(m, p, b)
    )
    lm = connect(fake, "retries=2")
    with pytest.raises(LMError, match=r"after 3 attempts with HTTP 503: overloaded"):
        lm.generate(["p"], GREEDY)
    assert len(fake.calls()) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_errors_that_will_not_heal_fail_at_once(fake, status):
    fake.reply = lambda m, p, b: (
        (status, {}, {"error": {"message": "bad max_tokens"}})
        if p == "/v1/completions"
        else default_reply(m, p, b)
    )
    lm = connect(fake)
    with pytest.raises(LMError, match=rf"HTTP {status}: bad max_tokens"):
        lm.generate(["p"], GREEDY)
    assert len(fake.calls()) == 1


def test_timeout_raises(fake):
    def reply(method, path, body):
        if path == "/v1/completions":
            time.sleep(1.0)
        return default_reply(method, path, body)

    fake.reply = reply
    lm = connect(fake, "timeout=0.2")
    started = time.monotonic()
    with pytest.raises(LMError, match=r"no answer within 0.2 s"):
        lm.generate(["p"], GREEDY)
    assert time.monotonic() - started < 0.9


def test_unreachable_server_fails_at_load():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(LMError, match="cannot be reached"):
        load_model(f"openai:http://127.0.0.1:{port}/v1?retries=0#m")


def test_retry_after_parsing():
    now = 1_000_000.0
    assert retry_after_seconds(value="3", now=now) == 3.0
    assert retry_after_seconds(value=formatdate(now + 5, usegmt=True), now=now) == pytest.approx(5.0)
    assert retry_after_seconds(value=formatdate(now - 5, usegmt=True), now=now) == 0.0
    assert retry_after_seconds(value="soon", now=now) is None
    assert retry_after_seconds(value=None, now=now) is None


# ----------------------------------------------------------------------------- model info and options


def test_info_fingerprints_the_models_entry_and_sends_the_api_key(fake, monkeypatch):
    monkeypatch.setenv("MWE_MODEL_KEY_TEST", "sekrit")
    first = connect(fake, "api_key_env=MWE_MODEL_KEY_TEST").info
    second = connect(fake).info  # `created` differs; the fingerprint must not
    assert first.backend == "openai" and first.name == "fake"
    assert first.fingerprint == second.fingerprint and first.fingerprint.startswith("models:sha256:")
    assert "requests" in first.versions
    assert fake.calls("/v1/models")[0]["auth"] == "Bearer sekrit"


def test_no_key_is_sent_unless_the_spec_names_its_variable(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "a-real-openai-key")
    connect(fake)
    assert all(call["auth"] is None for call in fake.calls("/v1/models"))


def test_unknown_model_and_missing_key_are_refused(fake, monkeypatch):
    with pytest.raises(LMError, match=r"does not serve 'other'; it serves: fake"):
        connect(fake, model="other")
    monkeypatch.delenv("MWE_MODEL_KEY_NO_SUCH", raising=False)
    with pytest.raises(LMError, match="MWE_MODEL_KEY_NO_SUCH is not set"):
        connect(fake, "api_key_env=MWE_MODEL_KEY_NO_SUCH")


# ----------------------------------------------------------------------------- where a key may go


@pytest.mark.parametrize("name", ["SECRET_KEY", "DATABASE_URL"])
def test_a_spec_cannot_send_the_sites_own_secrets(fake, monkeypatch, name):
    monkeypatch.setenv(name, "the-sites-own-secret")
    with pytest.raises(ModelSpecError, match=rf"api_key_env={name}.*MWE_MODEL_KEY_"):
        connect(fake, f"api_key_env={name}")
    assert fake.log == []


def test_a_host_outside_the_allowlist_gets_no_request(fake, monkeypatch, settings):
    monkeypatch.setenv("MWE_MODEL_KEY_TEST", "sekrit")
    port = fake.server.server_address[1]
    settings.MWE_MODEL_SERVER_HOSTS = ["localhost", f"127.0.0.1:{port + 1}"]
    with pytest.raises(ModelSpecError, match=r"127\.0\.0\.1.*MWE_MODEL_SERVER_HOSTS"):
        connect(fake, "api_key_env=MWE_MODEL_KEY_TEST")
    settings.MWE_MODEL_SERVER_HOSTS = []
    with pytest.raises(ModelSpecError, match="MWE_MODEL_SERVER_HOSTS"):
        connect(fake, "api_key_env=MWE_MODEL_KEY_TEST")
    assert fake.log == []
    # Listed with its port, or without one (any port), it is reached, key and all.
    for entry in (f"127.0.0.1:{port}", "127.0.0.1"):
        settings.MWE_MODEL_SERVER_HOSTS = [entry]
        connect(fake, "api_key_env=MWE_MODEL_KEY_TEST")
    assert [call["auth"] for call in fake.calls("/v1/models")] == ["Bearer sekrit"] * 2


@pytest.fixture
def elsewhere() -> Iterator[FakeServer]:
    """A second server, on another port: where a redirect would take the client."""
    server = FakeServer()
    yield server
    server.stop()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed(fake, elsewhere, monkeypatch, status):
    monkeypatch.setenv("MWE_MODEL_KEY_TEST", "sekrit")

    def reply(method, path, body):
        if path == "/v1/models":
            return status, {"Location": elsewhere.url + "/models"}, {}
        return default_reply(method, path, body)

    fake.reply = reply
    with pytest.raises(LMError, match=rf"HTTP {status}.*redirect.*not followed"):
        connect(fake, "api_key_env=MWE_MODEL_KEY_TEST")
    assert [call["auth"] for call in fake.calls("/v1/models")] == ["Bearer sekrit"]
    assert elsewhere.log == []


def test_a_redirect_in_the_middle_of_a_run_is_not_followed(fake, elsewhere, monkeypatch):
    monkeypatch.setenv("MWE_MODEL_KEY_TEST", "sekrit")
    lm = connect(fake, "api_key_env=MWE_MODEL_KEY_TEST")

    def reply(method, path, body):
        if path == "/v1/completions":
            return 307, {"Location": elsewhere.url + "/completions"}, {}
        return default_reply(method, path, body)

    fake.reply = reply
    with pytest.raises(LMError, match="HTTP 307.*not followed"):
        lm.generate(["p"], GREEDY)
    assert elsewhere.log == []


def test_chat_prompt_needs_a_tokenizer(fake):
    with pytest.raises(LMError, match="needs the model's chat template.*tokenizer="):
        connect(fake).chat_prompt("Hi?")


def test_chat_option_generates_through_chat_completions(fake):
    def reply(method, path, body):
        if path == "/v1/chat/completions":
            content = body["messages"][0]["content"]
            return (
                200,
                {},
                {"choices": [{"index": 0, "message": {"role": "assistant", "content": content + "!"}}]},
            )
        return default_reply(method, path, body)

    fake.reply = reply
    assert connect(fake, "chat=1").generate(["hi"], GREEDY) == [["hi!"]]
    with pytest.raises(ModelSpecError, match="chat=2 must be between 0 and 1"):
        parse_model_spec(f"openai:{fake.url}?chat=2#fake")


# ----------------------------------------------------------------------------- generation


def test_generate_keeps_prompt_order_and_n_and_cuts_stop(fake):
    def reply(method, path, body):
        if path == "/v1/completions":
            # Later prompts answer sooner, so completion order is the reverse of prompt order.
            time.sleep(0.02 * (9 - int(body["prompt"][1:])))
        return default_reply(method, path, body)

    fake.reply = reply
    lm = connect(fake, "concurrency=8")
    prompts = [f"p{i}" for i in range(10)]
    params = SamplingParams(n=3, temperature=1.0, max_tokens=8, stop=(".",), seed=5)
    assert lm.generate(prompts, params) == [[f"{p}#0", f"{p}#1", f"{p}#2"] for p in prompts]
    body = fake.calls()[0]["body"]
    assert (body["n"], body["stop"], body["seed"], body["temperature"]) == (3, ["."], 5, 1.0)


def test_a_server_that_ignores_n_gets_n_requests(fake):
    def reply(method, path, body):
        if path == "/v1/completions":
            return 200, {}, {"choices": [{"index": 0, "text": f"{body['prompt']}@{body.get('seed')}"}]}
        return default_reply(method, path, body)

    fake.reply = reply
    lm = connect(fake)
    params = SamplingParams(n=3, temperature=1.0, max_tokens=8, seed=10)
    expected = [[f"{p}@10", f"{p}@11", f"{p}@12"] for p in ("a", "b")]
    assert lm.generate(["a", "b"], params) == expected
    assert len(fake.calls()) == 6
    # Now known: every sample is its own request from the start.
    assert lm.generate(["a", "b"], params) == expected
    assert len(fake.calls()) == 12 and all(c["body"]["n"] == 1 for c in fake.calls()[6:])


def test_concurrency_is_bounded(fake):
    def reply(method, path, body):
        if path == "/v1/completions":
            time.sleep(0.05)
        return default_reply(method, path, body)

    fake.reply = reply
    lm = connect(fake, "concurrency=3")
    fake.max_in_flight = 0
    lm.generate([f"p{i}" for i in range(12)], GREEDY)
    lm.score_choices([(f"Question {i}?", [" Yes", " No"]) for i in range(6)])
    assert 1 < fake.max_in_flight <= 3


def test_the_operator_caps_what_a_spec_asks_for(fake, monkeypatch):
    monkeypatch.setenv("MWE_MODEL_SERVER_MAX_CONCURRENCY", "2")
    lm = connect(fake, "concurrency=50")
    assert lm.concurrency == 2
    monkeypatch.setenv("MWE_MODEL_SERVER_MAX_CONCURRENCY", "lots")
    with pytest.raises(LMError, match="MWE_MODEL_SERVER_MAX_CONCURRENCY"):
        connect(fake, "concurrency=50")


# ----------------------------------------------------------------------------- scoring


def test_scores_come_from_the_continuation_tokens(fake):
    lm = connect(fake)
    seen: list[int] = []
    (row, second) = lm.score_choices(
        [("Is the sky blue? ", ["Yes", "No it is not"]), ("Q:", [" a"])], progress=seen.append
    )
    # "Is the sky blue?" + " Yes": tokens 0..4, the answer is token 4, log-prob -0.25 * 4.
    assert row[0].tokens == (" Yes",) and row[0].token_logprobs == (-1.0,)
    assert row[0].is_greedy is True
    # " No it is not" is tokens 4..7 of the prompt; the last ones fall below -1, so not greedy.
    assert row[1].tokens == (" No", " it", " is", " not")
    assert row[1].logprob == pytest.approx(-0.25 * (4 + 5 + 6 + 7))
    assert row[1].is_greedy is False
    assert second[0].tokens == (" a",) and second[0].logprob == pytest.approx(-0.25)
    assert sum(seen) == 2
    body = fake.calls()[0]["body"]
    assert (body["echo"], body["logprobs"], body["max_tokens"], body["temperature"]) == (True, 1, 1, 0)


def test_without_top_logprobs_nothing_is_greedy(fake):
    def reply(method, path, body):
        if path == "/v1/completions":
            answer = echo_completion(body)
            del answer["choices"][0]["logprobs"]["top_logprobs"]
            return 200, {}, answer
        return default_reply(method, path, body)

    fake.reply = reply
    ((score,),) = connect(fake).score_choices([("A B", [" C"])])
    assert score.is_greedy is False and score.logprob == pytest.approx(-0.5)


def test_a_token_across_the_boundary_is_refused_without_a_tokenizer(fake):
    # word_tokens("Answer:" + "Yes") is one token, half context, half answer.
    with pytest.raises(LMError, match=r"'Answer:Yes' spans the end of the context"):
        connect(fake).score_choices([("Answer:", ["Yes"])])


def vllm_like(fake: FakeServer) -> Handler:
    """A fake that also has vLLM's /tokenize (over word_tokens, with a BOS id 1 that it echoes as <s>)."""

    def reply(method, path, body):
        if path == "/tokenize":
            return 200, {}, {"tokens": [1] + [100 + len(t) for t in word_tokens(body["prompt"])]}
        if path == "/v1/completions" and body.get("echo"):
            return 200, {}, echo_completion(body, special=["<s>"])
        return default_reply(method, path, body)

    return reply


def test_the_servers_tokenizer_applies_lm_evals_rule_across_the_boundary(fake):
    fake.reply = vllm_like(fake)
    lm = connect(fake)
    # tokenize("Answer:") is [BOS, "Answer:"] and tokenize("Answer:Yes No") [BOS, "Answer:Yes", " No"]:
    # lm-eval scores the context's own tokens followed by what lies past their count, [BOS, "Answer:",
    # " No"], which no text tokenizes to, so it goes to vLLM as token ids.
    ((score,),) = lm.score_choices([("Answer:", ["Yes No"])])
    assert fake.calls()[-1]["body"]["prompt"] == [1, 107, 103]
    assert score.tokens == ("<103>",) and score.token_logprobs == (-0.5,)
    ((plain,),) = lm.score_choices([("Is it? ", ["Yes"])])
    assert plain.tokens == (" Yes",)


def test_an_echo_that_disagrees_with_the_tokenizer_is_refused(fake):
    reply = vllm_like(fake)

    def shortened(method, path, body):
        if path == "/tokenize":
            return 200, {}, {"tokens": [1] + [7] * (len(word_tokens(body["prompt"])) + 2)}
        return reply(method, path, body)

    fake.reply = shortened
    with pytest.raises(LMError, match="cannot be found with certainty"):
        connect(fake).score_choices([("A B C", [" D"])])


def broken_echo(change: Callable[[dict[str, Any]], None]) -> Handler:
    def reply(method, path, body):
        if path == "/v1/completions":
            answer = echo_completion(body)
            change(answer)
            return 200, {}, answer
        return default_reply(method, path, body)

    return reply


def no_logprobs(answer: dict[str, Any]) -> None:
    answer["choices"][0]["logprobs"] = None


def no_echo(answer: dict[str, Any]) -> None:
    # llama.cpp's llama-server: echo ignored, log-probs for the generated token only.
    choice = answer["choices"][0]
    choice["text"] = " gen"
    choice["logprobs"] = {
        "tokens": [" gen"],
        "token_logprobs": [-0.1],
        "top_logprobs": [{" gen": -0.1}],
        "text_offset": [0],
    }


def null_logprobs(answer: dict[str, Any]) -> None:
    logprobs = answer["choices"][0]["logprobs"]
    logprobs["token_logprobs"] = [None] * len(logprobs["token_logprobs"])


def chat_style_logprobs(answer: dict[str, Any]) -> None:
    answer["choices"][0]["logprobs"] = {"content": [{"token": " gen", "logprob": -0.1}]}


@pytest.mark.parametrize("change", [no_logprobs, no_echo, null_logprobs, chat_style_logprobs])
def test_a_server_without_prompt_logprobs_cannot_score(fake, change):
    fake.reply = broken_echo(change)
    with pytest.raises(LMError, match=r"cannot score answer choices.*vLLM.*--logits_all true"):
        connect(fake).score_choices([("Is the sky blue?", [" Yes", " No"])])


def test_a_refusal_of_logprobs_is_not_retried(fake):
    message = "logprobs is not supported for models created with logits_all=False"
    fake.reply = lambda m, p, b: (
        (500, {}, {"error": {"message": message}}) if p == "/v1/completions" else default_reply(m, p, b)
    )
    with pytest.raises(LMError, match=r"cannot score answer choices.*HTTP 500: logprobs is not supported"):
        connect(fake).score_choices([("Is the sky blue?", [" Yes"])])
    assert len(fake.calls()) == 1


def test_bad_score_requests_are_refused(fake):
    lm = connect(fake)
    with pytest.raises(LMError, match="no answer choices"):
        lm.score_choices([("Q?", [])])
    with pytest.raises(LMError, match="adds no token"):
        lm.score_choices([("Q?", [""])])
    with pytest.raises(LMError, match="empty context"):
        lm.score_choices([("", [" hello"])])
    assert fake.calls() == []


def llama_cpp_python_like(*, generated: str | None = None) -> Handler:
    """A fake with llama-cpp-python's /extras/tokenize and /extras/detokenize (word tokens, no BOS)
    whose completions generate the biased token, or `generated` when given (a bias ignored)."""
    vocabulary: dict[str, int] = {}

    def ids(text: str) -> list[int]:
        return [vocabulary.setdefault(token, 100 + len(vocabulary)) for token in word_tokens(text)]

    def reply(method, path, body):
        if path == "/extras/tokenize":
            return 200, {}, {"tokens": ids(body["input"])}
        if path == "/extras/detokenize":
            words = {i: t for t, i in vocabulary.items()}
            return 200, {}, {"text": "".join(words[i] for i in body["tokens"])}
        if path == "/v1/completions" and not body.get("echo"):
            (forced,) = body["logit_bias"]
            words = {i: t for t, i in vocabulary.items()}
            text = generated if generated is not None else words[int(forced)]
            logprobs = {"tokens": [text], "token_logprobs": [-0.5], "top_logprobs": [{text: -0.5}]}
            return 200, {}, {"choices": [{"index": 0, "text": text, "logprobs": logprobs}]}
        return default_reply(method, path, body)

    return reply


def test_llama_cpp_python_without_bos_is_scored_one_token_at_a_time(fake):
    fake.reply = llama_cpp_python_like()
    ((score,),) = connect(fake).score_choices([("Pick one: ", ["(A) or"])])
    assert score.tokens == (" (A)", " or") and score.logprob == -1.0 and score.is_greedy
    prompts = [c["body"]["prompt"] for c in fake.calls()]
    assert prompts == ["Pick one:", "Pick one: (A)"]


def test_a_forced_token_that_is_not_generated_is_refused(fake):
    fake.reply = llama_cpp_python_like(generated=" gen")
    with pytest.raises(LMError, match=r"asked to generate ' Yes' .* generated ' gen'"):
        connect(fake).score_choices([("Is it?", [" Yes"])])


def test_a_straddling_token_is_refused_where_only_text_is_taken(fake):
    fake.reply = llama_cpp_python_like()
    with pytest.raises(LMError, match=r"a token spans the end of the context.*takes prompts as text only"):
        connect(fake).score_choices([("Answer:", ["Yes No"])])


# ----------------------------------------------------------------------------- a real server

# Scored by both backends. llama.cpp computes with the Q4_1 weights as they are (and 8-bit quantized
# activations), transformers with the weights dequantized to float32, so the log-probs differ: on these
# cases by at most 0.219 (llama-cpp-python 0.3.36 against transformers 5.24 on CPU; over 80 answers to 40
# persona and multiple-choice questions the largest difference was 0.477 and 5 argmaxes of 40 differed,
# see docs/model-servers.md). The tolerance leaves room for other CPUs' kernels.
REAL_SERVER_TOLERANCE = 0.35
# The server backend scores no empty context (its first prompt token has no log-prob) and has no
# chat template of its own here.
REAL_CASES = COMMON


@pytest.fixture
def served(llama_server) -> Iterator[OpenAICompatibleModel]:
    # One request at a time: llama.cpp's numbers depend a little on which tokens it evaluates together
    # and which it reuses from the previous request's cache, so a fixed order gives repeatable numbers.
    lm = load_model(f"openai:{llama_server}?concurrency=1&tokenizer=smollm2-135m#smollm2")
    assert isinstance(lm, OpenAICompatibleModel)
    yield lm
    lm.close()


def test_real_server_scores_like_the_local_backend(served, smollm2):
    remote = served.score_choices(REAL_CASES)
    local = smollm2.score_choices(REAL_CASES)
    largest = 0.0
    for (context, choices), remote_row, local_row in zip(REAL_CASES, remote, local, strict=True):
        for choice, a, b in zip(choices, remote_row, local_row, strict=True):
            assert len(a.token_logprobs) == len(b.token_logprobs), (context, choice, a.tokens, b.tokens)
            assert math.fsum(a.token_logprobs) == pytest.approx(a.logprob)
            largest = max(largest, abs(a.logprob - b.logprob))
        best_remote = max(range(len(choices)), key=lambda i: remote_row[i].logprob)
        best_local = max(range(len(choices)), key=lambda i: local_row[i].logprob)
        assert best_remote == best_local, (context, remote_row, local_row)
    print(f"largest |remote - local| log-prob: {largest:.4f}")
    assert largest <= REAL_SERVER_TOLERANCE


def test_real_server_generates(served, smollm2):
    params = SamplingParams(temperature=0, max_tokens=5)
    ((remote,),) = served.generate(["The capital of France is"], params)
    ((local,),) = smollm2.generate(["The capital of France is"], params)
    assert "Paris" in remote and "Paris" in local
    # llama-cpp-python ignores n: one request per sample.
    sampled = served.generate(["Once upon a time", "Hello"], SamplingParams(n=2, max_tokens=4, seed=3))
    assert [len(texts) for texts in sampled] == [2, 2] and all(isinstance(t, str) for r in sampled for t in r)


def test_real_server_info_and_chat_prompt(served, smollm2):
    assert (served.info.backend, served.info.name) == ("openai", "smollm2")
    assert served.info.fingerprint.startswith("models:sha256:")
    assert served.chat_prompt("Hi?") == smollm2.chat_prompt("Hi?")


def test_echo_and_one_token_at_a_time_agree_where_the_model_adds_a_bos():
    # With a BOS token llama-cpp-python's echo is aligned, so this server is scored from the echo; the
    # one-token-at-a-time path must give the same numbers on the same server, up to llama.cpp's rounding.
    with llama_cpp_server(
        "--logits_all", "true", "--kv_overrides", "tokenizer.ggml.add_bos_token=bool:true"
    ) as url:
        lm = load_model(f"openai:{url}#smollm2")
        assert isinstance(lm, OpenAICompatibleModel)
        cases = REAL_CASES[:2]
        echoed = lm.score_choices(cases)
        tokenizer = lm._server_tokenizer()
        assert tokenizer is not None and tokenizer.special_prefix == (1,)
        for (context, choices), row in zip(cases, echoed, strict=True):
            context_tokens = lm._tokens(tokenizer=tokenizer, text=context)
            for choice, score in zip(choices, row, strict=True):
                whole = lm._tokens(tokenizer=tokenizer, text=context + choice)
                stepwise = lm._score_stepwise(
                    tokenizer=tokenizer,
                    context=context,
                    prompt=context + choice,
                    context_tokens=context_tokens,
                    continuation_tokens=whole[len(context_tokens) :],
                )
                assert stepwise.tokens == score.tokens
                # Not equal: the echo evaluates the answer's tokens in one batch, the other path one by
                # one, and llama.cpp's Q4_1 kernels round differently for each (up to 0.090 measured).
                # A misaligned echo would be off by nats.
                assert stepwise.token_logprobs == pytest.approx(score.token_logprobs, abs=0.2)
        lm.close()


def test_real_server_without_logits_all_cannot_score():
    with llama_cpp_server("--logits_all", "false") as url:
        lm = load_model(f"openai:{url}#smollm2")
        with pytest.raises(LMError, match=r"cannot score answer choices.*logits_all"):
            lm.score_choices(REAL_CASES[:1])
        lm.close()


@pytest.mark.django_db
def test_real_server_runs_the_generation_pipeline(served, minilm):
    """The generator and the discriminator of a run are the llama.cpp server: the way a real-scale
    run uses vLLM or another OpenAI-compatible server (docs/model-servers.md)."""
    from generation.pipeline.methods import PersonaSpec
    from generation.pipeline.run import Models, generation_run_create, generation_run_execute

    spec = PersonaSpec(
        behavior="power seeking",
        description="wants to acquire as much power as possible",
        slug="served-run",
        generator=served.spec.raw,
        discriminator=served.spec.raw,
        per_label=3,
        keep_per_label=1,
        batch_size=3,
        max_tokens=24,
        floor=0.0,
        requirement_floor=0.0,
    )
    run = generation_run_create(spec=spec)
    generation_run_execute(run=run, models=Models(generator=served, discriminator=served, embedder=minilm))
    run.refresh_from_db()
    assert run.status == "succeeded" and run.generator_info["backend"] == "openai"
    candidates = list(run.candidates.all())
    assert len(candidates) == 6 and all(c.reason for c in candidates)
    scored = [c for c in candidates if c.scores]
    assert scored and all(0.0 <= c.label_probability <= 1.0 for c in scored)
    assert run.dataset.example_count == sum(c.decision == "kept" for c in candidates)

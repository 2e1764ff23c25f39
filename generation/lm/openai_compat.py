"""OpenAI-compatible backend: any server that speaks /v1/completions (vLLM, llama-cpp-python's server,
llama.cpp's llama-server, Ollama, hosted APIs).

Generation works with all of them. Scoring answer choices needs the log-probs of the prompt's own tokens
(`echo: true` with `logprobs` on /completions), which only some servers give (docs/model-servers.md); a
server that does not gets a clear LMError, never a made-up score.

Scoring follows lm-evaluation-harness's rule, as the local backend does: split_whitespace, then context
tokens = tokenize(context), continuation tokens = tokenize(context + continuation)[len(context tokens):],
and the score is log p(continuation tokens | context tokens). The server's own tokenizer decides, read
from its tokenize endpoint when it has one (vLLM and llama.cpp `/tokenize`, llama-cpp-python
`/extras/tokenize`):

- Usually the whole prompt's tokens begin with the context's tokens; the prompt goes as text and the last
  len(continuation tokens) echoed tokens are the answer's.
- Where a token straddles the context/continuation boundary they do not, and lm-eval's sequence (the
  context's own tokens, then the whole's past their count) is the tokenization of no text: it goes to vLLM
  as token ids, and other servers, which take text only, get an LMError instead of a different score.
- llama-cpp-python pairs echoed tokens with the wrong positions for models whose tokenizer adds no BOS
  (see _score_stepwise); there each answer token is scored as a generated token, one request each.

Without a tokenize endpoint the boundary comes from the character offsets the server returns
(`text_offset`): one that falls between two tokens is used as it is (BPE tokenizers give the context alone
the same tokens there), and a token that straddles it raises LMError, since lm-eval's count cannot be
known without the tokenizer. The first token of a prompt has no log-prob; it always belongs to the context.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import os
import platform
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from generation.lm.base import (
    ANSWER_MAX_TOKENS,
    TOP_LOGPROBS_ASKED,
    AnswerScore,
    ChoiceScore,
    LanguageModel,
    LMError,
    ModelInfo,
    ModelSpecError,
    ProgressCallback,
    SamplingParams,
    answer_keys,
    answer_score,
    cut_at_stop,
    first_answer_token,
    split_whitespace,
)
from generation.lm.specs import ModelSpec, openai_spec_check, parse_model_spec

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A Retry-After beyond this is not waited out in full: the retry then most likely fails again and the
# run reports the server's message, which beats a run that hangs for an hour without saying why.
MAX_RETRY_WAIT_S = 60.0
MAX_BACKOFF_S = 30.0
# How long the optional probes at load time (server version) may take: they only decorate ModelInfo.
PROBE_TIMEOUT_S = 5.0
SERVERS_THAT_SCORE = (
    "Servers that can: vLLM (`vllm serve MODEL`), and llama-cpp-python's server started with "
    "`--logits_all true`; llama.cpp's llama-server, Ollama and OpenAI's own API cannot. "
    "See docs/model-servers.md."
)
# Messages by which servers say that they refuse echo or prompt log-probs. llama-cpp-python answers
# HTTP 500 for a model loaded without logits_all, which would otherwise be retried in vain.
UNSUPPORTED_SCORING = re.compile(r"echo|logprob|logits_all|prompt_logprobs", re.IGNORECASE)
# Greedy-check slack: servers round log-probs when they serialise them (vLLM also clamps at -9999).
GREEDY_SLACK = 1e-6
# Large enough that the biased token wins greedy sampling whatever the logits (they stay within about
# +-100 for the models in use), small enough to stay finite in float32 arithmetic.
FORCE_BIAS = 1000.0
# The answer scorer's request: enough tokens for "The answer is (A)." when the first token carries no
# option and the reply must be parsed; 20 alternatives, the most OpenAI's API and vLLM's default give.


class ServerError(LMError):
    """An HTTP request that failed for good: `status` is None for a connection failure or timeout."""

    def __init__(self, message: str, *, status: int | None = None, server_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


@dataclass(frozen=True)
class _Tokenizer:
    """A server's tokenize endpoint: how to call it and which tokens it puts before any text."""

    path: str
    body: Callable[[str], dict[str, Any]]
    server: str
    special_prefix: tuple[int, ...] = ()


@dataclass(frozen=True)
class _Echo:
    """The per-token arrays of an echoed completion; the first `prompt_entries` are the prompt's."""

    owner: OpenAICompatibleModel
    tokens: list[Any]
    values: list[Any]
    top: list[Any] | None
    offsets: list[Any] | None
    prompt_entries: int

    def score(self, *, first: int, count: int) -> ChoiceScore:
        span = range(first, first + count)
        values = [self.values[i] for i in span]
        if any(not isinstance(v, int | float) for v in values):
            raise self.owner._cannot_score(why="it returned null log-probs for the prompt's tokens")
        # Without the alternatives there is no telling whether the answer was the likeliest, so such a
        # server's answers are never greedy (requests ask for logprobs=1, so servers that follow the API
        # give them).
        greedy = self.top is not None and all(
            _is_likeliest(value=self.values[i], alternatives=self.top[i]) for i in span
        )
        return ChoiceScore(
            logprob=math.fsum(float(v) for v in values),
            token_logprobs=tuple(float(v) for v in values),
            tokens=tuple(str(self.tokens[i]) for i in span),
            is_greedy=greedy,
        )


def _is_likeliest(*, value: float, alternatives: Any) -> bool:
    return (
        isinstance(alternatives, dict)
        and bool(alternatives)
        and value >= max(alternatives.values()) - GREEDY_SLACK
    )


def _tokenizer_candidates(*, model: str) -> list[_Tokenizer]:
    # Each with the special tokens the server's completions endpoint adds, so the counts agree.
    return [
        _Tokenizer("/extras/tokenize", lambda text: {"input": text, "model": model}, "llama-cpp-python"),
        _Tokenizer(
            "/tokenize",
            lambda text: {"model": model, "prompt": text, "add_special_tokens": True},
            "vllm",
        ),
        _Tokenizer("/tokenize", lambda text: {"content": text, "add_special": True}, "llama.cpp"),
    ]


def retry_after_seconds(*, value: str | None, now: float) -> float | None:
    """A Retry-After header as seconds from `now` (epoch seconds): delta-seconds or an HTTP date."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _server_message(response: requests.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload.get("message")))
        if isinstance(error, dict):
            return str(error.get("message") or error)[:500]
        if error is not None:
            return (error if isinstance(error, str) else json.dumps(error))[:500]
    return json.dumps(payload)[:500]


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise LMError(f"{name}={raw!r} must be a positive whole number")
    return int(raw)


class OpenAICompatibleModel(LanguageModel):
    """A model served over the OpenAI API. Spec options: concurrency (parallel requests, default 4),
    timeout (seconds per request, default 60), retries (default 3), api_key_env (the MWE_MODEL_KEY_*
    variable holding a Bearer token; no key is sent without it), tokenizer (a local spec whose chat template
    chat_prompt uses), chat=1 (generate through /chat/completions)."""

    # First backoff step; each retry doubles it (tests shorten it).
    backoff_base_s = 0.5

    def __init__(self, spec: ModelSpec) -> None:
        # Again here, for a ModelSpec built by hand rather than parsed; before anything is sent.
        openai_spec_check(spec=spec)
        self.spec = spec
        self.base_url = spec.target.rstrip("/")
        # Tokenize and version endpoints live beside /v1, not under it.
        self.root_url = re.sub(r"/v1$", "", self.base_url)
        self.timeout = spec.option_float("timeout", 60.0, low=0.1, high=3600.0)
        # The operator's ceiling on one process's parallel requests to a model server, whatever a
        # spec asks for: a spec typed in the site must not be able to flood a shared vLLM server.
        # The server sees at most (models workers) x this.
        ceiling = _env_int("MWE_MODEL_SERVER_MAX_CONCURRENCY", 64)
        self.concurrency = min(spec.option_int("concurrency", 4, high=256), ceiling)
        self.retries = spec.option_int("retries", 3, low=0, high=20)
        self.use_chat = spec.option_int("chat", 0, low=0, high=1) == 1
        self.tokenizer_spec = spec.options.get("tokenizer")
        if self.tokenizer_spec is not None:
            try:
                tokenizer_spec = parse_model_spec(self.tokenizer_spec)
            except ModelSpecError as exc:
                raise LMError(f"{spec.raw}: option tokenizer: {exc}") from exc
            if tokenizer_spec.backend != "local":
                raise LMError(
                    f"{spec.raw}: option tokenizer must name a local model (smollm2-135m or hf:...)"
                )
        # A key is sent only where the spec names its variable: picking up OPENAI_API_KEY on its own
        # would hand a real OpenAI key to whatever server a spec points at.
        key_env = spec.options.get("api_key_env", "")
        api_key = os.environ.get(key_env, "") if key_env else ""
        if key_env and not api_key:
            raise LMError(
                f"{spec.raw}: api_key_env={key_env}, but the environment variable {key_env} is not set"
            )

        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.concurrency + 2, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["Accept"] = "application/json"
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-compat")
        self._lock = threading.Lock()
        self._tokenizer: _Tokenizer | None = None
        self._tokenizer_probed = False
        self._context_tokens: dict[str, list[int]] = {}
        self._n_honoured: bool | None = None
        self._chat_tokenizer: Any = None
        # False once the server refused log-probs on /chat/completions: the answer scorer then parses.
        self._chat_logprobs: bool | None = None
        self.info = self._model_info()

    # ------------------------------------------------------------------------- HTTP

    def _request(
        self,
        *,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        permanent: re.Pattern[str] | None = None,
    ) -> Any:
        """The decoded JSON answer. Retries connection failures and 429/5xx with exponential backoff
        and jitter, or as long as Retry-After says; raises ServerError with the server's message."""
        retries = self.retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        attempt = 0
        while True:
            wait_s: float | None = None
            try:
                # Redirects are not followed: the server was checked against the operator's list, the
                # place it points to was not, and the request carries the prompts and the key.
                response = self._session.request(
                    method, url, json=body, timeout=timeout, allow_redirects=False
                )
            except requests.exceptions.ReadTimeout as exc:
                # Not retried: a server slower than the timeout stays slower, and a retry adds load.
                raise ServerError(
                    f"{self.spec.raw}: {method} {url} got no answer within {timeout:g} s "
                    f"(raise it with ?timeout=SECONDS): {exc}"
                ) from exc
            except requests.exceptions.RequestException as exc:
                if attempt >= retries:
                    raise ServerError(
                        f"{self.spec.raw}: {method} {url} failed after {attempt + 1} attempt(s): {exc}"
                    ) from exc
            else:
                if 300 <= response.status_code < 400:
                    raise LMError(
                        f"{self.spec.raw}: {method} {url} answered HTTP {response.status_code}, a redirect to "
                        f"{response.headers.get('Location', '')[:200]!r}, which is not followed (it could take "
                        "the request and its key to another server); put the address it redirects to in "
                        "the spec"
                    )
                if response.status_code < 400:
                    try:
                        return response.json()
                    except ValueError as exc:
                        raise ServerError(
                            f"{self.spec.raw}: {method} {url} answered with something other than JSON: "
                            f"{response.text[:200]!r}",
                            status=response.status_code,
                        ) from exc
                message = _server_message(response)
                status = response.status_code
                refused = status != 429 and permanent is not None and permanent.search(message) is not None
                heals = status in RETRY_STATUSES and not refused
                if not heals or attempt >= retries:
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise ServerError(
                        f"{self.spec.raw}: {method} {url} failed{tries} with HTTP {status}: {message}",
                        status=status,
                        server_message=message,
                    )
                wait_s = retry_after_seconds(value=response.headers.get("Retry-After"), now=time.time())
            if wait_s is not None:
                # Honour the server's wait, plus a little jitter so that parallel workers told the same
                # thing do not all come back in the same instant.
                delay = min(wait_s, MAX_RETRY_WAIT_S) + random.uniform(0, 0.05 * max(wait_s, 1.0))
            else:
                step = min(MAX_BACKOFF_S, self.backoff_base_s * 2**attempt)
                delay = random.uniform(step / 2, step)
            time.sleep(delay)
            attempt += 1

    def _post(self, *, path: str, body: dict[str, Any], permanent: re.Pattern[str] | None = None) -> Any:
        return self._request(method="POST", url=self.base_url + path, body=body, permanent=permanent)

    def _run_all(
        self, *, tasks: Sequence[Callable[[], Any]], done: Callable[[int, Any], None] | None = None
    ) -> list[Any]:
        """Runs the tasks on the pool (at most `concurrency` at once); results in task order. The first
        failure cancels what has not started and is raised."""
        futures: dict[Future, int] = {self._pool.submit(task): index for index, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    results[futures[future]] = future.result()
                    if done is not None:
                        done(futures[future], results[futures[future]])
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        return results

    # ------------------------------------------------------------------------- model info

    def _model_info(self) -> ModelInfo:
        details: dict[str, Any] = {"base_url": self.base_url}
        try:
            listing = self._request(method="GET", url=self.base_url + "/models")
        except ServerError as exc:
            if exc.status is None or exc.status >= 500:
                raise LMError(f"{self.spec.raw}: the server cannot be reached: {exc}") from exc
            if exc.status in {401, 403}:
                raise LMError(
                    f"{self.spec.raw}: the server refused the API key (see api_key_env): {exc}"
                ) from exc
            # Some gateways serve completions without listing models: the run is then pinned by name only.
            entry = None
            details["models_endpoint"] = f"HTTP {exc.status}"
        else:
            entries = listing.get("data", []) if isinstance(listing, dict) else []
            served = [e for e in entries if isinstance(e, dict) and "id" in e]
            entry = next((e for e in served if e["id"] == self.spec.model), None)
            if entry is None:
                # Ollama lists "name:latest" and accepts "name".
                entry = next((e for e in served if e["id"] == f"{self.spec.model}:latest"), None)
            if entry is None:
                ids = ", ".join(sorted(str(e["id"]) for e in served)) or "none"
                raise LMError(
                    f"{self.spec.raw}: the server does not serve {self.spec.model!r}; it serves: {ids}"
                )
        versions = {"python": platform.python_version(), "requests": requests.__version__}
        versions.update(self._server_versions())
        # A server's weights cannot be counted from here: its family, training, size (parameters_source
        # "spec") and steps are what the spec declares, and absent when it declares none.
        from generation.lm.specs import declared_details

        return ModelInfo(
            spec=self.spec.raw,
            backend="openai",
            name=self.spec.model,
            fingerprint=self.fingerprint(entry=entry, model=self.spec.model),
            versions=versions,
            details={**details, **declared_details(spec=self.spec)},
        )

    @staticmethod
    def fingerprint(*, entry: dict[str, Any] | None, model: str) -> str:
        """sha256 of the server's /models entry for the served model, less the fields that change from
        one request or restart to the next (`created`, `permission`).

        What it pins down: the served id and whatever the server says about what it loaded (vLLM: `root`,
        the path or hub id of the weights, `parent`, `max_model_len`; llama.cpp: `meta` with the
        parameter count, file size and vocabulary; Ollama: `owned_by`). What it does not: the weights'
        bytes, their quantization or dtype when the server does not report them, the server's sampling
        defaults, nor the host; two servers that load different files under the same id and report the
        same metadata get the same fingerprint (llama-cpp-python reports little beyond the id). A server
        without /models gets `unlisted:` and the hash of the name alone."""
        if entry is None:
            return "unlisted:sha256:" + hashlib.sha256(model.encode()).hexdigest()
        stable = {k: v for k, v in entry.items() if k not in {"created", "permission", "permissions"}}
        text = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
        return "models:sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def _server_versions(self) -> dict[str, str]:
        probes = [
            ("/version", "version", "vllm"),  # vLLM
            ("/api/version", "version", "ollama"),  # Ollama
            ("/props", "build_info", "llama.cpp"),  # llama.cpp's llama-server
        ]
        for path, key, name in probes:
            try:
                payload = self._request(
                    method="GET",
                    url=self.root_url + path,
                    retries=0,
                    timeout=min(self.timeout, PROBE_TIMEOUT_S),
                )
            except LMError:
                continue
            if isinstance(payload, dict) and isinstance(payload.get(key), str | int | float):
                return {name: str(payload[key])}
        return {}

    # ------------------------------------------------------------------------- tokenization

    def _server_tokenizer(self) -> _Tokenizer | None:
        with self._lock:
            if self._tokenizer_probed:
                return self._tokenizer
            for candidate in _tokenizer_candidates(model=self.spec.model):
                try:
                    empty = self._tokenize_with(tokenizer=candidate, text="")
                    probe = self._tokenize_with(tokenizer=candidate, text="Hello")
                except LMError:
                    continue
                if probe:
                    self._tokenizer = _Tokenizer(
                        candidate.path, candidate.body, candidate.server, special_prefix=tuple(empty)
                    )
                    break
            self._tokenizer_probed = True
            return self._tokenizer

    def _tokenize_with(self, *, tokenizer: _Tokenizer, text: str) -> list[int]:
        payload = self._request(method="POST", url=self.root_url + tokenizer.path, body=tokenizer.body(text))
        tokens = payload.get("tokens") if isinstance(payload, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise LMError(f"{self.spec.raw}: {tokenizer.path} answered without a list of token ids")
        return tokens

    def _tokens(self, *, tokenizer: _Tokenizer, text: str, cache: bool = False) -> list[int]:
        """The tokens the server's completions endpoint makes of `text`, special tokens included."""
        if cache:
            with self._lock:
                known = self._context_tokens.get(text)
            if known is not None:
                return known
        tokens = self._tokenize_with(tokenizer=tokenizer, text=text)
        if cache:
            with self._lock:
                self._context_tokens[text] = tokens
        return tokens

    def _detokenize(self, *, tokens: list[int]) -> str:
        # Only llama-cpp-python's route is needed (see _score_stepwise).
        payload = self._request(
            method="POST",
            url=self.root_url + "/extras/detokenize",
            body={"tokens": tokens, "model": self.spec.model},
        )
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            raise LMError(f"{self.spec.raw}: /extras/detokenize answered without a text")
        return text

    # ------------------------------------------------------------------------- scoring

    def score_choices(
        self,
        requests: Sequence[tuple[str, Sequence[str]]],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[list[ChoiceScore]]:
        jobs: list[tuple[int, int, str, str]] = []
        for item, (context, choices) in enumerate(requests):
            if not choices:
                raise LMError(f"request {item} has no answer choices")
            for choice, continuation in enumerate(choices):
                scored_context, scored_continuation = split_whitespace(context, continuation)
                if not scored_context:
                    raise LMError(
                        f"{self.spec.raw}: request {item} has an empty context; a server gives no log-prob "
                        "for the first token of a prompt, so score it with a local model or give a context"
                    )
                if not scored_continuation:
                    raise LMError(f"answer {continuation!r} adds no token after its context (request {item})")
                jobs.append((item, choice, scored_context, scored_continuation))
        results: list[list[ChoiceScore | None]] = [[None] * len(choices) for _, choices in requests]
        remaining = [len(choices) for _, choices in requests]

        def done(index: int, score: ChoiceScore) -> None:
            item, choice, _, _ = jobs[index]
            results[item][choice] = score
            remaining[item] -= 1
            if remaining[item] == 0 and progress is not None:
                progress(1)

        tasks = [
            (
                lambda context=context, continuation=continuation: self._score_one(
                    context=context, continuation=continuation
                )
            )
            for _, _, context, continuation in jobs
        ]
        self._run_all(tasks=tasks, done=done)
        return results  # type: ignore[return-value]

    def _cannot_score(self, *, why: str) -> LMError:
        return LMError(
            f"{self.spec.raw}: this server cannot score answer choices: scoring needs the log-probs of the "
            f"prompt's own tokens (echo with logprobs on /completions), and {why}. {SERVERS_THAT_SCORE}"
        )

    def _score_one(self, *, context: str, continuation: str) -> ChoiceScore:
        prompt = context + continuation
        tokenizer = self._server_tokenizer()
        if tokenizer is None:
            echo = self._echo(prompt=prompt)
            first = self._continuation_by_offsets(echo=echo, context=context, prompt=prompt)
            return echo.score(first=first, count=echo.prompt_entries - first)

        context_tokens = self._tokens(tokenizer=tokenizer, text=context, cache=True)
        whole = self._tokens(tokenizer=tokenizer, text=prompt)
        continuation_tokens = whole[len(context_tokens) :]
        if not continuation_tokens:
            raise LMError(f"answer {continuation!r} adds no token after its context")
        # lm-eval scores context_tokens + continuation_tokens. Where a token straddles the boundary that
        # sequence is not the tokenization of the prompt text, so it can only be sent as token ids.
        straddles = whole[: len(context_tokens)] != context_tokens
        if tokenizer.server == "llama-cpp-python" and not tokenizer.special_prefix:
            if straddles:
                raise self._straddle_error(
                    prompt=prompt, context=context, how="it takes prompts as text only"
                )
            return self._score_stepwise(
                tokenizer=tokenizer,
                context=context,
                prompt=prompt,
                context_tokens=context_tokens,
                continuation_tokens=continuation_tokens,
            )
        if straddles and tokenizer.server != "vllm":
            raise self._straddle_error(prompt=prompt, context=context, how="it takes prompts as text only")
        sequence = context_tokens + continuation_tokens
        echo = self._echo(prompt=sequence if straddles else prompt)
        # Servers may leave out of the echo the special tokens they put before the text (llama-cpp-python
        # drops the BOS); those carry no log-prob anyway, so the answer is counted from the end.
        expected = {len(sequence)}
        prefix = tokenizer.special_prefix
        if prefix and tuple(sequence[: len(prefix)]) == prefix:
            expected.add(len(sequence) - len(prefix))
        count = len(continuation_tokens)
        if echo.prompt_entries not in expected:
            if echo.prompt_entries < count + 1:
                raise self._cannot_score(
                    why=f"it returned log-probs for {echo.prompt_entries} prompt tokens of {len(sequence)}"
                )
            raise LMError(
                f"{self.spec.raw}: the server echoed {echo.prompt_entries} prompt tokens, but its tokenize "
                f"endpoint ({tokenizer.path}) makes {len(sequence)} of the same text; the answer's tokens "
                "cannot be found with certainty, so no score is given"
            )
        if echo.prompt_entries - count < 1:
            # The first echoed token has no log-prob: it must belong to the context.
            raise LMError(f"{self.spec.raw}: the context adds no token before the answer {continuation!r}")
        return echo.score(first=echo.prompt_entries - count, count=count)

    def _straddle_error(self, *, prompt: str, context: str, how: str) -> LMError:
        return LMError(
            f"{self.spec.raw}: a token spans the end of the context and the start of the answer "
            f"{prompt[len(context) :]!r}; lm-evaluation-harness scores the context's own tokens followed by "
            f"the rest, which this server cannot be given because {how}. No score is given rather than a "
            "different one; vLLM takes token ids and scores such answers"
        )

    def _echo(self, *, prompt: str | list[int]) -> _Echo:
        """The server's log-probs for the prompt's own tokens (echo), checked for what scoring needs."""
        body = {
            "model": self.spec.model,
            "prompt": prompt,
            "echo": True,
            "logprobs": 1,
            # 1, not 0: llama-cpp-python reads max_tokens=0 as "until the context is full", and vLLM
            # accepts 0 only in some versions. The one generated token is left out of the score.
            "max_tokens": 1,
            "temperature": 0,
        }
        answer = self._completion_for_scoring(body=body)
        choice = answer["choices"][0]
        logprobs = choice.get("logprobs")
        if not isinstance(logprobs, dict):
            raise self._cannot_score(why="it returned no logprobs")
        tokens = logprobs.get("tokens")
        values = logprobs.get("token_logprobs")
        if not isinstance(tokens, list) or not isinstance(values, list):
            raise self._cannot_score(why="its logprobs have no per-token `tokens` and `token_logprobs`")
        if len(tokens) != len(values):
            raise LMError(f"{self.spec.raw}: logprobs.tokens and logprobs.token_logprobs differ in length")
        text = choice.get("text")
        if isinstance(prompt, str) and (not isinstance(text, str) or not text.startswith(prompt)):
            raise self._cannot_score(why="it did not echo the prompt")
        generated = (answer.get("usage") or {}).get("completion_tokens")
        if not isinstance(generated, int) or not 0 <= generated <= len(tokens):
            raise LMError(
                f"{self.spec.raw}: /completions gave no usable usage.completion_tokens, which tells the "
                "echoed prompt tokens from the generated one"
            )
        top = logprobs.get("top_logprobs")
        offsets = logprobs.get("text_offset")
        return _Echo(
            owner=self,
            tokens=tokens,
            values=values,
            top=top if isinstance(top, list) and len(top) == len(tokens) else None,
            offsets=offsets if isinstance(offsets, list) and len(offsets) == len(tokens) else None,
            prompt_entries=len(tokens) - generated,
        )

    def _completion_for_scoring(self, *, body: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self._post(path="/completions", body=body, permanent=UNSUPPORTED_SCORING)
        except ServerError as exc:
            if (
                exc.status is not None
                and exc.status != 429
                and UNSUPPORTED_SCORING.search(exc.server_message)
            ):
                raise self._cannot_score(why=f"it refused: HTTP {exc.status}: {exc.server_message}") from exc
            raise
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LMError(f"{self.spec.raw}: /completions answered without choices: {str(answer)[:300]}")
        return answer

    def _continuation_by_offsets(self, *, echo: _Echo, context: str, prompt: str) -> int:
        """The first answer entry, from the tokens' character offsets, for servers without a tokenize
        endpoint."""
        if echo.offsets is None or echo.prompt_entries < 1:
            raise self._cannot_score(why="it returned no text offsets for the prompt's tokens")
        offsets, tokens, last = echo.offsets, echo.tokens, echo.prompt_entries - 1
        # Offsets count from the start of the echoed tokens, which may begin with a special token that is
        # not in the prompt text (vLLM echoes "<s>"): the prompt's last token ends where the prompt ends.
        shift = offsets[last] + len(str(tokens[last])) - len(prompt)
        boundary = len(context) + shift
        first = next((i for i in range(echo.prompt_entries) if offsets[i] == boundary), None)
        if first is None:
            straddling = next(
                (
                    i
                    for i in range(echo.prompt_entries)
                    if offsets[i] < boundary < offsets[i] + len(str(tokens[i]))
                ),
                None,
            )
            token = repr(tokens[straddling]) if straddling is not None else "a token"
            raise LMError(
                f"{self.spec.raw}: {token} spans the end of the context and the start of the answer "
                f"{prompt[len(context) :]!r}, and the server has no tokenize endpoint with which to apply "
                "lm-evaluation-harness's rule; no score is given rather than a wrong one"
            )
        if first < 1:
            raise LMError(f"{self.spec.raw}: the context adds no token before the answer")
        return first

    def _score_stepwise(
        self,
        *,
        tokenizer: _Tokenizer,
        context: str,
        prompt: str,
        context_tokens: list[int],
        continuation_tokens: list[int],
    ) -> ChoiceScore:
        """Scores one answer token per request, for llama-cpp-python serving a model whose tokenizer adds
        no BOS token: there its echo pairs each prompt token with the log-probs of the position after it
        (llama_cpp/llama.py, _create_completion, up to 0.3.36 at least), but the log-probs of a
        generated token are right. So each answer token is made the generated one, after the context and
        the answer tokens before it, by a logit bias that the sampler applies to its own copy of the
        logits; the reported log-prob comes from the model's logits, before any bias."""
        values: list[float] = []
        pieces: list[str] = []
        greedy = True
        text = context
        for step, token in enumerate(continuation_tokens):
            if step + 1 == len(continuation_tokens):
                following = prompt
            else:
                # Only the answer's tokens are detokenized: the context's may hold special tokens that a
                # detokenizer leaves out. The server takes text, so the text must read back as exactly
                # lm-eval's tokens, and lie on the way to the prompt.
                following = context + self._detokenize(tokens=continuation_tokens[: step + 1])
                prefix = context_tokens + continuation_tokens[: step + 1]
                if (
                    not prompt.startswith(following)
                    or self._tokens(tokenizer=tokenizer, text=following) != prefix
                ):
                    raise LMError(
                        f"{self.spec.raw}: the first {step + 1} token(s) of the answer {prompt[len(context) :]!r} "
                        "do not make a text that the server reads back as the same tokens, and it takes "
                        "prompts as text only; no score is given rather than one for other tokens"
                    )
            body = {
                "model": self.spec.model,
                "prompt": text,
                "max_tokens": 1,
                "temperature": 0,
                "logprobs": 1,
                "logit_bias": {str(token): FORCE_BIAS},
            }
            answer = self._completion_for_scoring(body=body)
            choice = answer["choices"][0]
            logprobs = choice.get("logprobs")
            if not isinstance(logprobs, dict) or not logprobs.get("token_logprobs"):
                raise self._cannot_score(why="it returned no logprobs for a generated token")
            value = logprobs["token_logprobs"][0]
            piece = following[len(text) :]
            if choice.get("text") != piece or not isinstance(value, int | float):
                raise LMError(
                    f"{self.spec.raw}: asked to generate {piece!r} (token {token}) after {text!r}, the server "
                    f"generated {choice.get('text')!r}; no score is given rather than one for another token"
                )
            greedy = greedy and _is_likeliest(
                value=value, alternatives=(logprobs.get("top_logprobs") or [None])[0]
            )
            values.append(float(value))
            pieces.append(piece)
            text = following
        return ChoiceScore(
            logprob=math.fsum(values), token_logprobs=tuple(values), tokens=tuple(pieces), is_greedy=greedy
        )

    # ------------------------------------------------------------------------- generation

    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[str]]:
        if self._n_honoured is False and params.n > 1:
            # The server gives one completion per request: ask n times, with distinct seeds so that a
            # seeded call does not return n copies of one sample.
            tasks = [
                (
                    lambda prompt=prompt, k=k: self._complete(
                        prompt=prompt, params=params, n=1, seed=self._seed(params=params, k=k)
                    )
                )
                for prompt in prompts
                for k in range(params.n)
            ]
            flat = self._run_all(tasks=tasks)
            return [
                [texts[0] for texts in flat[i * params.n : (i + 1) * params.n]] for i in range(len(prompts))
            ]
        tasks = [(lambda prompt=prompt: self._generate_n(prompt=prompt, params=params)) for prompt in prompts]
        return self._run_all(tasks=tasks)

    @staticmethod
    def _seed(*, params: SamplingParams, k: int) -> int | None:
        return None if params.seed is None else params.seed + k

    def _generate_n(self, *, prompt: str, params: SamplingParams) -> list[str]:
        texts = self._complete(prompt=prompt, params=params, n=params.n, seed=params.seed)
        if params.n > 1:
            with self._lock:
                self._n_honoured = len(texts) >= params.n
        while len(texts) < params.n:
            texts += self._complete(
                prompt=prompt, params=params, n=1, seed=self._seed(params=params, k=len(texts))
            )[:1]
        return texts[: params.n]

    def _complete(self, *, prompt: str, params: SamplingParams, n: int, seed: int | None) -> list[str]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "n": n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = seed
        if self.use_chat:
            body["messages"] = [{"role": "user", "content": prompt}]
            answer = self._post(path="/chat/completions", body=body)
        else:
            body["prompt"] = prompt
            answer = self._post(path="/completions", body=body)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or not choices:
            raise LMError(f"{self.spec.raw}: the server answered without choices: {str(answer)[:300]}")
        texts: list[str] = []
        # Servers list choices in any order; `index` says which is which.
        ordered = sorted(
            (choice for choice in choices if isinstance(choice, dict)),
            key=lambda choice: choice.get("index", 0),
        )
        for choice in ordered:
            text = (choice.get("message") or {}).get("content") if self.use_chat else choice.get("text")
            if not isinstance(text, str):
                text = ""
            texts.append(cut_at_stop(text=text, stop=params.stop))
        return texts

    # ------------------------------------------------------------------------- the answer scorer

    def answer_distribution(
        self,
        requests: Sequence[tuple[str, Sequence[str]]],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[AnswerScore]:
        """Each message as one user turn on /chat/completions (the server applies the model's chat
        template), greedy, with the top log-probs of the reply's tokens; whatever the spec's chat option
        (which is about generation). A server that refuses log-probs there is asked again without them and
        its replies are parsed (generation.lm.base.answer_score)."""
        # Every request is checked before the first is sent: an ambiguous item fails the call at once.
        keyed = []
        for index, (message, choices) in enumerate(requests):
            if not message.strip():
                raise LMError(f"request {index} of the answer scorer has an empty message")
            keyed.append((message, answer_keys(choices)))

        def done(index: int, result: AnswerScore) -> None:
            if progress is not None:
                progress(1)

        tasks = [
            (lambda message=message, keys=keys: self._answer_one(message=message, keys=keys))
            for message, keys in keyed
        ]
        return self._run_all(tasks=tasks, done=done)

    def _answer_one(self, *, message: str, keys: Sequence[str]) -> AnswerScore:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": message}],
            "max_tokens": ANSWER_MAX_TOKENS,
            "temperature": 0,
        }
        with self._lock:
            ask_logprobs = self._chat_logprobs is not False
        answer = None
        if ask_logprobs:
            try:
                answer = self._post(
                    path="/chat/completions",
                    body={**body, "logprobs": True, "top_logprobs": TOP_LOGPROBS_ASKED},
                    permanent=UNSUPPORTED_SCORING,
                )
            except ServerError as exc:
                # llama-cpp-python without logits_all answers HTTP 500 "logprobs is not supported"; some
                # gateways refuse the parameter with a 400. Either way the reply can still be parsed.
                if (
                    exc.status is None
                    or exc.status == 429
                    or not UNSUPPORTED_SCORING.search(exc.server_message)
                ):
                    raise
                with self._lock:
                    self._chat_logprobs = False
        if answer is None:
            answer = self._post(path="/chat/completions", body=body)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise LMError(f"{self.spec.raw}: /chat/completions answered without choices: {str(answer)[:300]}")
        choice = min((c for c in choices if isinstance(c, dict)), key=lambda c: c.get("index", 0))
        content = (choice.get("message") or {}).get("content")
        reply = content if isinstance(content, str) else ""
        tokens, tops = _reply_logprobs(choice.get("logprobs"))
        position = first_answer_token(tokens)
        return answer_score(reply=reply, top=tops[position] if position is not None else None, keys=keys)

    # ------------------------------------------------------------------------- chat

    def chat_prompt(self, user_message: str) -> str:
        if self.tokenizer_spec is None:
            raise LMError(
                f"{self.spec.raw}: the chat prompt format needs the model's chat template, which a server "
                "does not give out; add ?tokenizer=SPEC naming a local tokenizer of the same model "
                "(e.g. tokenizer=smollm2-135m), or use the plain or paper prompt format"
            )
        tokenizer = self._load_chat_tokenizer()
        if not getattr(tokenizer, "chat_template", None):
            raise LMError(f"{self.spec.raw}: the tokenizer {self.tokenizer_spec} has no chat template")
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )

    def _load_chat_tokenizer(self) -> Any:
        with self._lock:
            if self._chat_tokenizer is None:
                self._chat_tokenizer = load_local_tokenizer(spec=self.tokenizer_spec or "")
            return self._chat_tokenizer

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._session.close()


def _reply_logprobs(logprobs: Any) -> tuple[list[str], list[list[tuple[str, float]]]]:
    """A chat reply's tokens and each one's top log-probs: OpenAI's chat shape (`content`: a list of
    {token, logprob, top_logprobs: [{token, logprob}]}) or the completions shape some servers give on chat
    too (`tokens`, `top_logprobs`: [{token: logprob}]). Empty lists when the server gave none (it ignored
    the parameter), so the reply is parsed."""
    if not isinstance(logprobs, dict):
        return [], []
    content = logprobs.get("content")
    if isinstance(content, list):
        tokens: list[str] = []
        tops: list[list[tuple[str, float]]] = []
        for entry in content:
            if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
                break
            alternatives = entry.get("top_logprobs")
            tokens.append(entry["token"])
            tops.append(
                [(a.get("token"), a.get("logprob")) for a in alternatives if isinstance(a, dict)]
                if isinstance(alternatives, list)
                else []
            )
        return tokens, tops
    tokens_field, top_field = logprobs.get("tokens"), logprobs.get("top_logprobs")
    if isinstance(tokens_field, list) and isinstance(top_field, list) and len(top_field) == len(tokens_field):
        return [str(t) for t in tokens_field], [
            list(t.items()) if isinstance(t, dict) else [] for t in top_field
        ]
    return [], []


def load_local_tokenizer(*, spec: str) -> Any:
    """The transformers tokenizer of a local model spec, without its weights. Imported here, on first
    use, so that generation through a server never pays for importing transformers."""
    from transformers import AutoTokenizer

    from generation.lm.local import embedded_source
    from generation.lm.specs import EMBEDDED_MODELS

    parsed = parse_model_spec(spec)
    kwargs: dict[str, Any] = {}
    if parsed.target in EMBEDDED_MODELS:
        source, kwargs["gguf_file"] = embedded_source(name=parsed.target)
    else:
        source = parsed.target
        if "gguf_file" in parsed.options:
            kwargs["gguf_file"] = parsed.options["gguf_file"]
        if "revision" in parsed.options:
            kwargs["revision"] = parsed.options["revision"]
    try:
        return AutoTokenizer.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise LMError(f"tokenizer {spec}: could not load it: {exc}") from exc

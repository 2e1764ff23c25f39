"""What an openai: spec may name: the variable its key comes from (MWE_MODEL_KEY_* only) and the
server it talks to (a host the operator lists in MWE_MODEL_SERVER_HOSTS). Both are checked when the
spec is parsed, before anything is loaded or sent; the HTTP side is in test_openai_compat.py."""

from __future__ import annotations

import pytest

from generation.lm import ModelSpecError, parse_model_spec
from generation.lm.specs import EMBEDDED_DEFAULT, EMBEDDED_MODELS, declared_details


@pytest.mark.parametrize(
    "name", ["SECRET_KEY", "DATABASE_URL", "OPENAI_API_KEY", "MWE_MODEL_KEY_", "mwe_model_key_x"]
)
def test_a_key_variable_outside_the_prefix_is_refused(name):
    with pytest.raises(ModelSpecError, match=rf"api_key_env={name}.*MWE_MODEL_KEY_<NAME>"):
        parse_model_spec(f"openai:http://127.0.0.1:8000/v1?api_key_env={name}#m")


def test_a_prefixed_key_variable_is_accepted():
    spec = parse_model_spec("openai:http://127.0.0.1:8000/v1?api_key_env=MWE_MODEL_KEY_OPENAI#m")
    assert spec.options["api_key_env"] == "MWE_MODEL_KEY_OPENAI"


def test_the_default_allowlist_is_loopback(settings):
    assert settings.MWE_MODEL_SERVER_HOSTS == ["127.0.0.1", "localhost", "::1"]
    for url in [
        "http://127.0.0.1:8000/v1",
        "http://localhost/v1",
        "https://LOCALHOST:9/v1",
        "http://[::1]:8000/v1",
    ]:
        assert parse_model_spec(f"openai:{url}#m").target == url
    with pytest.raises(ModelSpecError) as caught:
        parse_model_spec("openai:http://models.internal:8000/v1#m")
    message = str(caught.value)
    assert "models.internal" in message and "MWE_MODEL_SERVER_HOSTS" in message


@pytest.mark.parametrize(
    ("entries", "url", "allowed"),
    [
        # A host without a port allows every port on it.
        (["models.example"], "http://models.example:8000/v1", True),
        (["models.example"], "https://models.example/v1", True),
        # Host names compare case-insensitively.
        (["Models.Example"], "http://MODELS.example:8000/v1", True),
        # host:port allows that port only; a URL without a port has its scheme's default.
        (["models.example:8000"], "http://models.example:8000/v1", True),
        (["models.example:8000"], "http://models.example:8001/v1", False),
        (["models.example:443"], "https://models.example/v1", True),
        (["models.example:443"], "http://models.example/v1", False),
        (["[::1]:8000"], "http://[::1]:8000/v1", True),
        (["[::1]:8000"], "http://[::1]:8001/v1", False),
        (["::1"], "http://[::1]:8001/v1", True),
        # No suffix or prefix matching: another host is another host.
        (["example"], "http://models.example/v1", False),
        (["models.example"], "http://models.example.evil/v1", False),
        (["127.0.0.1"], "http://127.0.0.2:8000/v1", False),
        # Production's default: no model server at all until the operator lists one.
        ([], "http://127.0.0.1:8000/v1", False),
    ],
)
def test_the_allowlist(settings, entries, url, allowed):
    settings.MWE_MODEL_SERVER_HOSTS = entries
    spec = f"openai:{url}#m"
    if allowed:
        assert parse_model_spec(spec).target == url
    else:
        with pytest.raises(ModelSpecError, match="MWE_MODEL_SERVER_HOSTS"):
            parse_model_spec(spec)


@pytest.mark.parametrize(
    "url",
    [
        # Credentials in the URL, and a backslash that parsers disagree about, leave doubt about which
        # host a request goes to; such URLs are refused whatever the allowlist says.
        "http://user:pw@127.0.0.1:8000/v1",
        "http://127.0.0.1:8000\\@models.evil/v1",
        "http://127.0.0.1:99999/v1",
    ],
)
def test_urls_with_an_unclear_host_are_refused(settings, url):
    settings.MWE_MODEL_SERVER_HOSTS = ["127.0.0.1", "models.evil"]
    with pytest.raises(ModelSpecError):
        parse_model_spec(f"openai:{url}#m")


def test_a_malformed_allowlist_entry_is_named(settings):
    settings.MWE_MODEL_SERVER_HOSTS = ["http://models.example/"]
    with pytest.raises(ModelSpecError, match=r"MWE_MODEL_SERVER_HOSTS.*'http://models.example/'"):
        parse_model_spec("openai:http://models.example/v1#m")


def test_local_specs_need_no_allowlist(settings):
    settings.MWE_MODEL_SERVER_HOSTS = []
    assert parse_model_spec("smollm2-135m").backend == "local"
    assert parse_model_spec("hf:HuggingFaceTB/SmolLM2-135M").backend == "local"


# --- What a spec declares about its model (family, training, params, steps) --------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {}),
        ("family=Llama%203.1&training=instruct", {"family": "Llama 3.1", "training": "instruct"}),
        # A + in a query is a space unless written %2B.
        ("training=sft%2Brlhf", {"training": "sft+rlhf"}),
        ("params=270M", {"parameters": 270_000_000, "parameters_source": "spec"}),
        ("params=7B", {"parameters": 7_000_000_000, "parameters_source": "spec"}),
        ("params=1.1b", {"parameters": 1_100_000_000, "parameters_source": "spec"}),
        ("params=1.5e9", {"parameters": 1_500_000_000, "parameters_source": "spec"}),
        ("params=134515008", {"parameters": 134_515_008, "parameters_source": "spec"}),
        ("steps=0", {"training_steps": 0}),
        ("steps=1200000", {"training_steps": 1_200_000}),
    ],
)
def test_declared_details_for_every_backend(query, expected):
    for raw in (f"hf:org/model?{query}", f"openai:http://127.0.0.1:8000/v1?{query}#m"):
        assert declared_details(spec=parse_model_spec(raw)) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("params=1.5", "whole number"),
        ("params=0", "whole number"),
        ("params=2e15", "whole number"),
        ("params=7Q", "not a parameter count"),
        ("params=", "not a parameter count"),
        ("params=-7B", "not a parameter count"),
        ("training=", "1 to 40 characters"),
        ("training=<script>", "1 to 40 characters"),
        ("family=" + "x" * 41, "1 to 40 characters"),
        ("family=a/b", "1 to 40 characters"),
        ("steps=-1", "between 0 and"),
        ("steps=many", "not an integer"),
        ("params=7B&params=8B", "given twice"),
    ],
)
def test_malformed_declarations_are_refused_at_parse_time(query, message):
    for raw in (f"hf:org/model?{query}", f"openai:http://127.0.0.1:8000/v1?{query}#m"):
        with pytest.raises(ModelSpecError, match=message):
            parse_model_spec(raw)


@pytest.mark.parametrize("name", ["smollm2-135m", "gemma3-270m"])
def test_embedded_models_parse_and_declare_nothing(name):
    spec = parse_model_spec(f"{name}?batch_size=8&device=cpu")
    assert (spec.backend, spec.target, spec.options) == ("local", name, {"batch_size": "8", "device": "cpu"})
    assert name in EMBEDDED_MODELS
    # Their family, training and size are known facts, not declarations.
    for query in ("family=x", "training=base", "params=1B", "steps=3", "gguf_file=x.gguf", "revision=main"):
        with pytest.raises(ModelSpecError, match="unknown option"):
            parse_model_spec(f"{name}?{query}")


def test_the_embedded_models_facts():
    assert EMBEDDED_DEFAULT == "smollm2-135m"
    smol, gemma = EMBEDDED_MODELS["smollm2-135m"], EMBEDDED_MODELS["gemma3-270m"]
    assert (smol.family, smol.training, smol.assembled) == ("SmolLM2", "instruct", False)
    assert (gemma.family, gemma.training, gemma.assembled) == ("Gemma 3", "base", True)
    assert gemma.gguf_file == "gemma-3-270m-q4_k_m.gguf"


@pytest.mark.parametrize("raw", ["", "gemma3", "gemma3-270m-it", "smollm2"])
def test_errors_list_every_spec_form(raw):
    with pytest.raises(ModelSpecError) as caught:
        parse_model_spec(raw)
    for form in ("smollm2-135m", "gemma3-270m", "hf:", "openai:"):
        assert form in str(caught.value)

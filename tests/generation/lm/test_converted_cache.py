"""The converted copy of a local GGUF model (generation/lm/local.py, converted_folder): a load after
the first reads the transformers form saved by the first, and gets the same model bit for bit.

Cost: three loads of SmolLM2 into a temporary cache (two converting its GGUF, about 20 s each on two
cores, one from the copy)."""

from __future__ import annotations

import logging

import pytest
import torch

from generation.lm import load_model
from generation.lm.local import CONVERTED_MARK, converted_folder, converted_store
from tests.generation.lm.cases import CHAT, COMMON, EMPTY_CONTEXT

REQUESTS = [*COMMON, EMPTY_CONTEXT, CHAT]


def converted_folders(cache):
    root = cache / "converted"
    return sorted(root.iterdir()) if root.exists() else []


@pytest.fixture
def loads(settings, tmp_path, monkeypatch):
    """load_model on a temporary cache, recording what each transformers load was asked to read."""
    import generation.lm.local as local

    settings.MWE_MODEL_CACHE = tmp_path / "cache"
    sources: list[str] = []
    real = local.AutoModelForCausalLM.from_pretrained

    def recorded(source, *args, **kwargs):
        sources.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(local.AutoModelForCausalLM, "from_pretrained", recorded)
    return settings.MWE_MODEL_CACHE, sources


def test_the_second_load_reads_the_copy_gets_the_same_model_and_a_broken_copy_is_replaced(loads, caplog):
    cache, sources = loads
    first = load_model("smollm2-135m")
    [folder] = converted_folders(cache)
    # The copy: whole (its mark written last), readable by the site's other processes, nothing partial.
    assert (folder / CONVERTED_MARK).is_file() and (folder / "model.safetensors").is_file()
    assert folder.stat().st_mode & 0o777 == 0o755
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert "float32" in folder.name and first.info.fingerprint.removeprefix("sha256:")[:32] in folder.name

    second = load_model("smollm2-135m")
    assert sources == [sources[0], str(folder)] and sources[0] != str(folder)
    # Bit for bit: the same tensors, the same tokens, the same chat template, the same scores.
    first_state, second_state = first.model.state_dict(), second.model.state_dict()
    assert first_state.keys() == second_state.keys()
    for name, tensor in first_state.items():
        assert second_state[name].dtype == tensor.dtype and torch.equal(second_state[name], tensor), name
    for context, choices in REQUESTS:
        for text in (context, *choices, context + choices[0]):
            assert second._encode(text) == first._encode(text), text
    assert second.tokenizer.chat_template == first.tokenizer.chat_template
    assert second.chat_prompt("Are you an AI?") == first.chat_prompt("Are you an AI?")
    reference = first.score_choices(REQUESTS)
    assert second.score_choices(REQUESTS) == reference
    # What a run records does not say which way it was loaded.
    assert second.info == first.info
    first.close()
    second.close()

    # A copy broken after it was written (a truncated file) is dropped, and the GGUF converted again.
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    with caplog.at_level(logging.WARNING, logger="generation.lm.local"):
        third = load_model("smollm2-135m")
    assert "could not load the converted copy" in caplog.text
    assert sources[-1] != str(folder) and third.score_choices(REQUESTS) == reference
    # ... and a good copy written in its place.
    assert converted_folders(cache) == [folder] and weights.stat().st_size == size

    # A cache that cannot be written costs only the speed-up: a warning, no exception.
    blocked = cache / "blocked"
    blocked.write_text("a file where the folder should be")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="generation.lm.local"):
        converted_store(
            folder=blocked / "copy", model=third.model, tokenizer=third.tokenizer, digest="0" * 64
        )
    assert "not keeping a converted copy" in caplog.text
    third.close()


def test_the_copy_can_be_turned_off(settings, tmp_path):
    settings.MWE_MODEL_CACHE = tmp_path
    assert converted_folder(digest="ab" * 32, dtype_name="float32").parent == tmp_path / "converted"
    settings.MWE_CACHE_CONVERTED_MODELS = False
    assert converted_folder(digest="ab" * 32, dtype_name="float32") is None


def test_a_model_transformers_cannot_save_loads_without_a_copy(settings, tmp_path, monkeypatch, caplog):
    import generation.lm.local as local

    def refuses(*, model, folder):
        raise ValueError("The model is quantized with gguf and is not serializable")

    monkeypatch.setattr(local, "_save_dequantized", refuses)
    folder = tmp_path / "converted" / "copy"
    with caplog.at_level(logging.WARNING, logger="generation.lm.local"):
        converted_store(folder=folder, model=object(), tokenizer=object(), digest="0" * 64)
    assert "not keeping a converted copy" in caplog.text and "not serializable" in caplog.text
    # Nothing half-written is left to be taken for a copy.
    assert not folder.exists() and list(folder.parent.iterdir()) == []

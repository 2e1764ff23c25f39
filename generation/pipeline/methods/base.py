"""What every generation method shares: the common part of a spec, the discriminator's questions,
and the contract between a method and the pipeline in generation.pipeline.run.

A method says, for each phase of a run, which labels to write candidates for, the prompt of each
batch, how to parse a sample, which questions the discriminator answers about a candidate and how
those answers become a label probability and requirement scores, and how kept candidates become
released-format records. The pipeline does everything else the same way for all methods: batches
under idempotent keys, scoring in chunks, calibration, floors, de-duplication, top K, publishing.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from django import forms

from generation.catalog.services import dataset_slug_usable
from generation.lm import LanguageModel, LMError, ModelSpecError, SamplingParams, parse_model_spec
from generation.prompts import paper_prompt

YES, NO = " Yes", " No"


class GenerationError(ValueError):
    """A spec that cannot run; raised before any model is called, and nothing is written."""


@dataclass(frozen=True)
class Question:
    """One question the discriminator answers about a candidate: the softmax over `choices` of
    log p(choice | prompt). `calibrate` marks questions whose mean answer over a run should be
    uninformative (the run asks for as many candidates of each label), so it can be divided out."""

    name: str
    prompt: str
    choices: tuple[str, ...]
    calibrate: bool = True


@dataclass(frozen=True)
class Parsed:
    text: str = ""
    parsed: dict[str, Any] | None = None
    problem: str = ""


@dataclass(frozen=True)
class Interpretation:
    """What a candidate's answers mean: its label probability, the scores shown and floored, and
    the score it is ranked by among its label."""

    label_probability: float
    scores: dict[str, float]
    rank: float
    failing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Records:
    """The dataset a run publishes: one dict of Example columns per kept candidate, in file order."""

    kind: str
    description: str
    field_order: list[str]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class BaseSpec:
    """Parameters every method takes. The paper sampled its 52B generator at temperature 1.4 and
    top-p 0.975; a 135M model at that temperature writes noise, so the defaults suit the embedded
    model. Pass the paper's for big ones."""

    behavior: str
    description: str
    slug: str
    generator: str = "smollm2-135m"
    discriminator: str = "smollm2-135m"
    per_label: int = 50
    keep_per_label: int = 20
    floor: float = 0.5
    requirement_floor: float = 0.5
    requirements: tuple[str, ...] = ("relevance",)
    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 48
    batch_size: int = 16
    seed: int = 0
    near_duplicate: float = 0.9
    # Divide out the discriminator's answer bias (see generation.pipeline.run.apply_scores).
    calibrate: bool = True

    method: ClassVar[str] = ""
    requirement_names: ClassVar[tuple[str, ...]] = ()

    def problems(self) -> list[str]:
        """Everything wrong with the spec, in words a user can act on; subclasses add their own."""
        problems = []
        if not self.behavior.strip():
            problems.append("the behavior needs a name")
        if len(self.description.strip()) < 3:
            problems.append("describe the behavior, e.g. 'is politically liberal'")
        if not dataset_slug_usable(self.slug):
            problems.append(f"'{self.slug}' is not a usable slug (letters, digits, - and _)")
        for name in ("generator", "discriminator"):
            try:
                parse_model_spec(getattr(self, name))
            except ModelSpecError as exc:
                problems.append(f"{name}: {exc}")
        if not 1 <= self.per_label <= 100_000:
            problems.append("per_label must be between 1 and 100000")
        if not 1 <= self.keep_per_label <= self.per_label:
            problems.append("keep_per_label must be between 1 and per_label")
        for name in ("floor", "requirement_floor"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1")
        if not 0.0 < self.near_duplicate <= 1.0:
            problems.append("near_duplicate must be in (0, 1]")
        unknown = [r for r in self.requirements if r not in self.requirement_names]
        if unknown:
            problems.append(f"unknown requirements {unknown}; known: {sorted(self.requirement_names)}")
        try:
            SamplingParams(
                n=self.batch_size, temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens
            )
        except ValueError as exc:
            problems.append(str(exc))
        if not 1 <= self.batch_size <= 1024:
            problems.append("batch_size must be between 1 and 1024")
        return problems

    def validate(self) -> None:
        problems = self.problems()
        if problems:
            raise GenerationError("; ".join(problems))

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseSpec:
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name, value in values.items():
            if isinstance(value, list) and str(known[name].type).startswith("tuple"):
                values[name] = tuple(value)
        return cls(**values)

    @property
    def description_clause(self) -> str:
        return self.description.strip().rstrip(".")


class Method:
    """The contract a generation method fulfils; see the module docstring. One instance per spec.

    A method also says what its users give it beyond the common spec: the generation form's fields
    and the generate_dataset command's options that only it reads, and how each becomes its spec's
    values. The form and the command know only the common part and ask every method for the rest."""

    name: ClassVar[str]
    spec_class: ClassVar[type[BaseSpec]]
    # Labels whose kept candidates are balanced to the scarcest one (False: top K per label each).
    balance_labels: ClassVar[bool] = True
    # What the method writes, in the form's method help ("NAME: ...") and the command's help.
    form_help: ClassVar[str] = ""
    command_help: ClassVar[str] = ""

    def __init__(self, spec: BaseSpec) -> None:
        self.spec = spec

    @classmethod
    def form_fields(cls) -> dict[str, forms.Field]:
        """The generation form's fields that only this method reads (new instances on each call)."""
        return {}

    @classmethod
    def spec_values_from_form(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Spec values from the form's cleaned data; a GenerationError is what the form shows."""
        return {}

    @classmethod
    def add_arguments(cls, parser: ArgumentParser) -> None:
        """The command's options that only this method reads."""

    @classmethod
    def spec_values_from_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Spec values from the command's options; a GenerationError is what the command says."""
        return {}

    def phases(self) -> tuple[str, ...]:
        return ("main",)

    def phase_of(self, label: str) -> str:
        return "main"

    def describe_label(self, label: str) -> str:
        """A label as a decision's reason names it."""
        return label.strip()

    def labels(self, *, phase: str, kept_earlier: Sequence[Any]) -> list[str]:
        """Labels to write candidates for; `kept_earlier` are the candidates kept by earlier phases."""
        raise NotImplementedError

    def samples_per_label(self, *, phase: str) -> int:
        return self.spec.per_label

    def keep_per_label(self, *, phase: str) -> int:
        return self.spec.keep_per_label

    def prompt(self, *, generator: LanguageModel, phase: str, label: str, seed: int) -> str:
        raise NotImplementedError

    def sampling(self, *, phase: str) -> tuple[int, tuple[str, ...]]:
        """(max_tokens, stop sequences) of a phase's samples."""
        return self.spec.max_tokens, ("\n", "\nHuman:", "\nAssistant:")

    def parse(self, *, phase: str, label: str, raw: str, prompt: str) -> Parsed:
        raise NotImplementedError

    def questions(self, *, phase: str, label: str, text: str, parsed: dict[str, Any]) -> list[Question]:
        raise NotImplementedError

    def interpret(
        self, *, phase: str, label: str, probabilities: dict[str, list[float]], parsed: dict[str, Any]
    ) -> Interpretation:
        raise NotImplementedError

    def records(self, *, kept: Sequence[Any]) -> Records:
        """The published dataset's rows from the final phase's kept candidates, in file order."""
        raise NotImplementedError


def chat_or_dialogue(generator: LanguageModel, instruction: str) -> str:
    """The instruction in the generator's chat template; servers without one here get the paper's
    own Human/Assistant form."""
    try:
        return generator.chat_prompt(instruction)
    except LMError:
        return paper_prompt(instruction) + " "


def yes_no_question(name: str, question: str, *, calibrate: bool = True) -> Question:
    return Question(
        name=name,
        prompt=paper_prompt(question),
        choices=(YES, NO),
        calibrate=calibrate,
    )


def label_and_requirements(
    *,
    spec: BaseSpec,
    probabilities: dict[str, list[float]],
    target: int,
    rank_by_mean: bool = False,
) -> Interpretation:
    """The common reading: the label question's probability of the target choice, each requirement's
    P(yes); ranked by the label probability, or (the paper's multiple-choice ranking) by the mean of
    the label and requirement probabilities."""
    label_p = min(1.0, max(0.0, probabilities["label"][target]))
    requirements = {name: probabilities[name][0] for name in spec.requirements}
    failing = tuple(
        f"{name} {value:.3f} < {spec.requirement_floor}"
        for name, value in requirements.items()
        if value < spec.requirement_floor
    )
    rank = (label_p + sum(requirements.values())) / (1 + len(requirements)) if rank_by_mean else label_p
    return Interpretation(
        label_probability=label_p, scores={"label": label_p, **requirements}, rank=rank, failing=failing
    )


def first_line(raw: str) -> str:
    return raw.strip().splitlines()[0].strip() if raw.strip() else ""


def word_count_problem(text: str, *, low: int, high: int) -> str:
    words = text.split()
    if len(words) < low:
        return f"too short ({len(words)} words, at least {low})"
    if len(words) > high:
        return f"too long ({len(words)} words, at most {high})"
    return ""


def jsonl_objects(text: str, *, what: str) -> list[dict[str, Any]]:
    """One JSON object per non-blank line, as the command's files and the form's text areas give them;
    errors name `what` and the line."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise GenerationError(f"{what}, line {number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise GenerationError(f"{what}, line {number}: expected a JSON object")
        rows.append(row)
    return rows


def jsonl_file(path: str) -> list[dict[str, Any]]:
    """The JSON objects of a file given to the command, one per line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GenerationError(f"cannot read {path}: {exc}") from None
    return jsonl_objects(text, what=path)

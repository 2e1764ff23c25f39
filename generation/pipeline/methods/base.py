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
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from django import forms

from generation.catalog.services import dataset_slug_usable
from generation.lm import LanguageModel, LMError, ModelSpecError, SamplingParams, parse_model_spec
from generation.prompts import paper_prompt

YES, NO = " Yes", " No"
# Named sampling profiles: the paper's values where it gives them, and values that suit the small
# embedded model (a 135M model sampled at the paper's temperature 1.4 writes noise).
PAPER, SMALL_MODEL = "paper", "small-model"
PROFILE_NAMES = (PAPER, SMALL_MODEL)
# Who the prompts are about: the paper's persona datasets say "Suppose there is a person who ..." or,
# for the AI-risk personas, "Suppose there is an AI system that ..." (section 3.1).
PERSON, AI_SYSTEM = "person", "ai-system"
# The dialogue's turns: a sample that reaches one has stopped writing its own text.
DIALOGUE_STOPS = ("\nHuman:", "\nAssistant:")


class GenerationError(ValueError):
    """A spec that cannot run; raised before any model is called, and nothing is written."""


@dataclass(frozen=True)
class Question:
    """One question the discriminator answers about a candidate: the softmax over `choices` of
    log p(choice | prompt). `calibrate` marks questions whose mean answer over a run should be
    uninformative (the run asks for as many candidates of each label), so it can be divided out when
    the run calibrates. Requirement questions are never calibrated, whatever this says (paper
    section 2: a requirement's probability is averaged into the rank as the discriminator gives it)."""

    name: str
    prompt: str
    choices: tuple[str, ...]
    calibrate: bool = True


@dataclass(frozen=True)
class Framing:
    """How the prompts name who shows the behavior: the paper's clause ("Suppose there is a person
    who ..."), and the noun and pronoun our own prompts use around it."""

    clause: str
    noun: str
    pronoun: str


FRAMINGS = {
    PERSON: Framing(clause="a person who", noun="a person", pronoun="they"),
    AI_SYSTEM: Framing(clause="an AI system that", noun="an AI system", pronoun="it"),
}


@dataclass(frozen=True)
class Profile:
    """How a method samples its generator, and whether the label question is batch-calibrated,
    under one named profile. A run records the profile's name in its spec; explicit spec values
    (temperature, top_p, max_tokens, calibrate) override the profile's."""

    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    calibrate: bool = False


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
    """The dataset a run publishes: one dict of Example columns per row, in file order."""

    kind: str
    description: str
    field_order: list[str]
    rows: list[dict[str, Any]]
    # What the assistant's reply starts with before the answer when the dataset is scored in the
    # paper's format (Dataset.answer_prefix), e.g. sycophancy's " I believe the best answer is".
    answer_prefix: str = ""
    # The index in `kept` of the candidate each row was written from; None: row i from candidate i.
    # A candidate may give several rows (a sycophancy biography before every question): it is
    # linked to the first.
    sources: list[int] | None = None


@dataclass(frozen=True)
class BaseSpec:
    """Parameters every method takes. The defaults are the paper's (sections 2, 3.1 and 5.2): the
    generator samples under the "paper" profile; per label, the top `keep_per_label` (500) among the
    candidates whose label the discriminator finds the more likely (the 0.5 floor), "or all of them,
    whichever is smaller", with no balancing to the scarcest label; requirements are averaged into the
    rank, not floored; the discriminator's probabilities are used as they are.

    `profile` names the sampling values and calibration of Method.profiles: "paper", or
    "small-model", values that suit the embedded 135M model (lower temperature, batch calibration of
    the label question). temperature, top_p, max_tokens and calibrate override the profile's value
    when set; None means the profile's. Our departures are options: balance_labels,
    requirement_floor, calibrate."""

    behavior: str
    description: str
    slug: str
    generator: str = "smollm2-135m"
    discriminator: str = "smollm2-135m"
    profile: str = PAPER
    # "person" ("Suppose there is a person who ...") or "ai-system" ("... an AI system that ...").
    framing: str = PERSON
    per_label: int = 50
    # An upper bound per label; the paper's 500. It may exceed per_label.
    keep_per_label: int = 500
    floor: float = 0.5
    # Ours: the least probability each requirement must have (None: requirements only enter the rank).
    requirement_floor: float | None = None
    requirements: tuple[str, ...] = ("relevance",)
    # Ours: keep as many of each label as the scarcest label has (the paper keeps the top K of each).
    balance_labels: bool = False
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    batch_size: int = 16
    seed: int = 0
    near_duplicate: float = 0.9
    # Ours: divide out the discriminator's answer bias on the label question (batch calibration, see
    # generation.pipeline.selection.apply_scores). None: the profile's (off in the paper profile).
    calibrate: bool | None = None

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
        if self.profile not in PROFILE_NAMES:
            problems.append(f"unknown profile {self.profile!r}; known: {', '.join(PROFILE_NAMES)}")
        if self.framing not in FRAMINGS:
            problems.append(f"unknown framing {self.framing!r}; known: {', '.join(FRAMINGS)}")
        if not 1 <= self.per_label <= 100_000:
            problems.append("per_label must be between 1 and 100000")
        if not 1 <= self.keep_per_label <= 100_000:
            problems.append("keep_per_label must be between 1 and 100000")
        if not 0.0 <= self.floor <= 1.0:
            problems.append("floor must be between 0 and 1")
        if self.requirement_floor is not None and not 0.0 <= self.requirement_floor <= 1.0:
            problems.append("requirement_floor must be between 0 and 1 (or empty: no floor)")
        if not 0.0 < self.near_duplicate <= 1.0:
            problems.append("near_duplicate must be in (0, 1]")
        unknown = [r for r in self.requirements if r not in self.requirement_names]
        if unknown:
            known = ", ".join(sorted(self.requirement_names)) or "none for this method"
            problems.append(f"unknown requirements {unknown}; known: {known}")
        try:
            # The overrides given; the profile's own values are valid by construction.
            SamplingParams(
                n=self.batch_size,
                temperature=1.0 if self.temperature is None else self.temperature,
                top_p=1.0 if self.top_p is None else self.top_p,
                max_tokens=1 if self.max_tokens is None else self.max_tokens,
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
        if "profile" not in data:
            # Stored before profiles existed: its sampling values are explicit in it and were the
            # small model's, it calibrated by its own "calibrate", and its labels were balanced.
            values["profile"] = SMALL_MODEL
            values.setdefault("balance_labels", True)
        for name, value in values.items():
            if isinstance(value, list) and str(known[name].type).startswith("tuple"):
                values[name] = tuple(value)
        return cls(**values)

    @property
    def description_clause(self) -> str:
        return self.description.strip().rstrip(".")

    @property
    def framing_words(self) -> Framing:
        return FRAMINGS.get(self.framing, FRAMINGS[PERSON])

    @property
    def subject(self) -> str:
        """Who the behavior is about, as the prompts name them: "a person who is politically liberal"."""
        return f"{self.framing_words.clause} {self.description_clause}"


class Method:
    """The contract a generation method fulfils; see the module docstring. One instance per spec.

    A method also says what its users give it beyond the common spec: the generation form's fields
    and the generate_dataset command's options that only it reads, and how each becomes its spec's
    values. The form and the command know only the common part and ask every method for the rest."""

    name: ClassVar[str]
    spec_class: ClassVar[type[BaseSpec]]
    # Whether the labels are answer classes that spec.balance_labels may balance (False: Winogender's
    # labels are occupations, each with its own top K).
    balance_labels: ClassVar[bool] = True
    # How the generator samples under each named profile (spec.profile), and whether the label
    # question is batch-calibrated. The paper's sampler (section 3.1, also section 5.2): temperature
    # 1.4, top-p 0.975. The small model's: what the embedded 135M model writes sense with.
    profiles: ClassVar[dict[str, Profile]] = {
        PAPER: Profile(temperature=1.4, top_p=0.975, max_tokens=48, stop=("\n", *DIALOGUE_STOPS)),
        SMALL_MODEL: Profile(
            temperature=0.9, top_p=0.95, max_tokens=48, stop=("\n", *DIALOGUE_STOPS), calibrate=True
        ),
    }
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

    def sampling_profile(self, *, phase: str) -> Profile:
        """How a phase's samples are drawn and whether its label question is calibrated: the spec's
        profile, with the spec's explicit values (temperature, top_p, max_tokens, calibrate) over it.
        The one place the pipeline and selection read these from."""
        overrides = {
            name: getattr(self.spec, name)
            for name in ("temperature", "top_p", "max_tokens", "calibrate")
            if getattr(self.spec, name) is not None
        }
        return replace(self.profiles[self.spec.profile], **overrides)

    def sampling_record(self) -> dict[str, Any]:
        """What a run records of its sampling: the profile's name and each phase's resolved values."""
        phases = {}
        for phase in self.phases():
            profile = self.sampling_profile(phase=phase)
            phases[phase] = {**asdict(profile), "stop": list(profile.stop)}
        return {"profile": self.spec.profile, "phases": phases}

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


def instruction_prompt(
    *, spec: BaseSpec, generator: LanguageModel, instruction: str, reply_start: str
) -> str:
    """An instruction to the generator, its reply begun with `reply_start`. The paper profile sends
    it as the paper did, in the Human/Assistant dialogue, whatever the generator's own template (the
    discriminator's questions and the evaluation's paper format use it too). The small-model profile
    (ours) uses the generator's chat template, which a small chat model follows far better; a server
    without one here gets the dialogue."""
    if spec.profile == PAPER:
        return f"{paper_prompt(instruction)} {reply_start}"
    try:
        return generator.chat_prompt(instruction) + reply_start
    except LMError:
        return f"{paper_prompt(instruction)} {reply_start}"


def yes_no_question(name: str, question: str, *, calibrate: bool = True) -> Question:
    return Question(
        name=name,
        prompt=paper_prompt(question),
        choices=(YES, NO),
        calibrate=calibrate,
    )


def label_and_requirements(
    *, spec: BaseSpec, probabilities: dict[str, list[float]], target: int
) -> Interpretation:
    """The paper's reading (section 2; section 5.2 for multiple choice): the label question's
    probability of the target choice and each requirement's P(yes), ranked by their mean ("the
    highest average probability from p_d across all requirements, including label correctness").
    Without requirements the rank is the label probability. A requirement fails only under
    spec.requirement_floor, our option (none by default)."""
    label_p = min(1.0, max(0.0, probabilities["label"][target]))
    requirements = {name: probabilities[name][0] for name in spec.requirements}
    floor = spec.requirement_floor
    failing = (
        ()
        if floor is None
        else tuple(f"{name} {value:.3f} < {floor}" for name, value in requirements.items() if value < floor)
    )
    rank = (label_p + sum(requirements.values())) / (1 + len(requirements))
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

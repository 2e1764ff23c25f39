"""Reading and writing the JSONL formats released with the paper (anthropics/evals).

Pure functions with no database access: `read_evals_file` parses and validates a whole file and
detects its format from the fields, `record_to_json_line` writes a record back. The services module
turns a parsed file into rows: it validates a file in a first pass that keeps no records
(`keep_records=False`) and writes it in a second (`iter_records`), so memory does not grow with the
size of a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Folder names of the release, mapped to what they mean.
COLLECTIONS: dict[str, tuple[str, str]] = {
    "persona": (
        "Persona",
        "Yes/no statements about a model's personality, desires and views (paper section 3).",
    ),
    "sycophancy": (
        "Sycophancy",
        "Questions prefixed with a user's biography; a sycophantic model repeats the user's view "
        "(paper section 4).",
    ),
    "advanced-ai-risk": (
        "Advanced AI risk",
        "Multiple-choice questions on behaviors related to risks from advanced AI, written by "
        "crowdworkers and by a language model (paper section 5).",
    ),
    "winogenerated": (
        "Winogenerated",
        "Winogender-style sentences with a blank for a pronoun, generated with an LM (paper section 6).",
    ),
}
ADVANCED_AI_RISK_SUBSETS = {
    "human_generated_evals": ("human", "Human-written"),
    "lm_generated_evals": ("lm", "LM-written"),
    "prompts_for_few_shot_generation": ("few-shot", "Few-shot prompts"),
}
CHOICE_ANSWER = re.compile(r"^ ?\([A-Z]\)$")
COMMIT_IN_SOURCE = re.compile(r"commit\s+`?([0-9a-f]{40})\b")
# The length of Example.answer_matching_behavior (a varchar on PostgreSQL): longer answers must fail
# validation, not the database write.
MAX_ANSWER_CHARS = 500
# What a record may carry beyond the known columns (kept in Example.extra and shown on the public
# example page): nesting levels of one field's value (a list of strings is 1), and the size of all
# of them as compact JSON. The released files reach 1 level and 560 bytes (winogenerated, whose
# fields are all extra); a record nested thousands of levels deep made a 33 MB page and can exhaust
# the parser's recursion.
DEFAULT_MAX_EXTRA_DEPTH = 8
DEFAULT_MAX_EXTRA_BYTES = 16 * 1024


class EvalsFormatError(ValueError):
    """A file that cannot be imported; the message names the file, line and field."""

    def __init__(
        self,
        path: str,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ):
        self.path = path
        self.line = line
        self.field = field
        self.detail = message
        where = path if line is None else f"{path}, line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FormatSpec:
    name: str
    kind: str  # a Dataset.Kind value
    purpose: str  # a Dataset.Purpose value
    description: str


PERSONA = FormatSpec("persona", "yes_no", "evaluation", "persona yes/no statements")
YES_NO = FormatSpec("yes-no", "yes_no", "evaluation", "yes/no questions")
MULTIPLE_CHOICE = FormatSpec("multiple-choice", "multiple_choice", "evaluation", "multiple choice")
FEW_SHOT = FormatSpec("few-shot", "multiple_choice", "few_shot", "few-shot generation prompts")
SYCOPHANCY = FormatSpec("sycophancy", "sycophancy", "evaluation", "sycophancy")
WINOGENDER_EXAMPLES = FormatSpec("winogender", "winogender", "evaluation", "Winogender schemas")
WINOGENDER_OCCUPATIONS = FormatSpec(
    "winogender-occupations", "winogender", "reference", "Winogender occupations"
)
FORMATS = {
    spec.name: spec
    for spec in (
        PERSONA,
        YES_NO,
        MULTIPLE_CHOICE,
        FEW_SHOT,
        SYCOPHANCY,
        WINOGENDER_EXAMPLES,
        WINOGENDER_OCCUPATIONS,
    )
}


# An example's text, the one a person reads and searches and the explorer embeds: its statement,
# else its question, else (Winogender files have neither) the sentence with a blank, else the
# occupation. Example.text, the pages' and the API's searches and the importer all read it here.
TEXT_FIELDS = ("statement", "question")
TEXT_EXTRA_KEYS = ("sentence_with_blank", "occupation")
# The same places as query lookups (for searches) and the columns they are in (for .only()).
TEXT_LOOKUPS = (*TEXT_FIELDS, *(f"extra__{key}" for key in TEXT_EXTRA_KEYS))
TEXT_COLUMNS = (*TEXT_FIELDS, "extra")


def record_text(*, statement: str, question: str, extra: dict[str, Any]) -> str:
    for value in (statement, question, *(extra.get(key, "") for key in TEXT_EXTRA_KEYS)):
        if value:
            return value
    return ""


@dataclass
class ParsedRecord:
    """One line of a file, split into the columns the Example model has and the rest."""

    position: int
    line: int
    question: str
    statement: str
    answer_matching_behavior: str
    answer_not_matching_behavior: str | list[str] | None
    label_confidence: float | None
    extra: dict[str, Any]
    key_order: list[str]
    text_hash: str

    @property
    def text(self) -> str:
        return record_text(statement=self.statement, question=self.question, extra=self.extra)


@dataclass(frozen=True)
class ReadLimits:
    """What a file must stay within; the services module takes them from the settings."""

    max_line_bytes: int
    max_extra_depth: int = DEFAULT_MAX_EXTRA_DEPTH
    max_extra_bytes: int = DEFAULT_MAX_EXTRA_BYTES


@dataclass
class ParsedFile:
    """A validated file. `records` is empty when it was read with keep_records=False: then
    `iter_records` reads them again, one at a time."""

    path: Path
    display_path: str
    sha256: str
    format: FormatSpec
    records: list[ParsedRecord]
    field_order: list[str]
    ensure_ascii: bool
    record_count: int = 0
    limits: ReadLimits | None = None
    skipped_blank_lines: int = 0
    warnings: list[str] = field(default_factory=list)
    label_counts: dict[str, int] = field(default_factory=dict)
    duplicate_positions: list[tuple[int, int]] = field(default_factory=list)
    sorted_by_confidence: bool = False


# ----------------------------------------------------------------------------- text helpers


def normalize_text(text: str) -> str:
    """The form two texts must share to count as the same example: Unicode-compatible,
    case-folded, with runs of whitespace collapsed and curly quotes made straight."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.casefold().split())


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def behavior_name(stem: str) -> str:
    """`desire-for-acquiring-power` -> `desire for acquiring power`; keeps acronyms (HHH)."""
    return stem.replace("_", " ").replace("-", " ").strip()


def record_to_json_line(record: dict[str, Any], *, ensure_ascii: bool) -> str:
    """Serialises a record the way the released files are written (json.dumps defaults)."""
    return json.dumps(record, ensure_ascii=ensure_ascii)


# ----------------------------------------------------------------------------- reading


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _iter_lines(path: Path, display: str, max_line_bytes: int, digest: hashlib._Hash):
    """Yields (line number, decoded text), feeding every byte into digest, never holding a line
    longer than the limit in memory."""
    with path.open("rb") as handle:
        line_no = 0
        while True:
            # limit+2 so that a line of exactly the limit still arrives whole with its CRLF ending.
            raw = handle.readline(max_line_bytes + 2)
            if not raw:
                break
            line_no += 1
            digest.update(raw)
            # A longer line shows up as content over the limit, however it ends.
            if len(raw.rstrip(b"\r\n")) > max_line_bytes:
                raise EvalsFormatError(
                    display,
                    f"line is longer than the limit of {max_line_bytes:,} bytes "
                    "(set MWE_IMPORT_MAX_LINE_BYTES to raise it)",
                    line=line_no,
                )
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise EvalsFormatError(
                    display,
                    f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at column {exc.start + 1}",
                    line=line_no,
                ) from None
            yield line_no, text


def _has_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character anywhere (PostgreSQL text and jsonb cannot store it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    return False


def _detect_format(first: dict[str, Any], *, path_parts: tuple[str, ...]) -> FormatSpec | None:
    keys = set(first)
    if {"sentence_with_blank", "pronoun_options"} <= keys:
        return WINOGENDER_EXAMPLES
    if {"occupation", "other_person"} <= keys and "question" not in keys:
        return WINOGENDER_OCCUPATIONS
    if not {"question", "answer_matching_behavior", "answer_not_matching_behavior"} <= keys:
        return None
    if "prompts_for_few_shot_generation" in path_parts:
        return FEW_SHOT
    if "statement" in keys:
        return PERSONA
    question = first.get("question")
    if (
        isinstance(first.get("answer_not_matching_behavior"), list)
        or "user_affiliation" in keys
        or (isinstance(question, str) and question.startswith("Hello, my name is"))
    ):
        return SYCOPHANCY
    answer = first.get("answer_matching_behavior")
    if isinstance(answer, str) and answer.strip() in {"Yes", "No"}:
        return YES_NO
    return MULTIPLE_CHOICE


def _expect_str(obj, key, display, line, *, required=True, allow_empty=False) -> str:
    if key not in obj:
        if required:
            raise EvalsFormatError(display, "missing", line=line, field=key)
        return ""
    value = obj[key]
    if not isinstance(value, str):
        raise EvalsFormatError(
            display,
            f"expected a string, got {type(value).__name__} {value!r:.60}",
            line=line,
            field=key,
        )
    if not allow_empty and not value.strip():
        raise EvalsFormatError(display, "must not be empty", line=line, field=key)
    return value


def _expect_number(obj, key, display, line, *, required=True, low=None, high=None):
    if key not in obj:
        if required:
            raise EvalsFormatError(display, "missing", line=line, field=key)
        return None
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalsFormatError(
            display,
            f"expected a number, got {type(value).__name__} {value!r:.60}",
            line=line,
            field=key,
        )
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        raise EvalsFormatError(
            display,
            f"must be between {low} and {high}, got {value!r}",
            line=line,
            field=key,
        )
    return value


def _parse_record(
    obj: dict[str, Any], spec: FormatSpec, *, display: str, line: int, position: int
) -> ParsedRecord:
    question = statement = matching = ""
    not_matching: str | list[str] | None = None
    confidence: float | None = None
    columns = {
        "question",
        "statement",
        "answer_matching_behavior",
        "answer_not_matching_behavior",
        "label_confidence",
    }

    if spec in (WINOGENDER_EXAMPLES, WINOGENDER_OCCUPATIONS):
        for key in ("occupation", "other_person"):
            _expect_str(obj, key, display, line)
        if spec is WINOGENDER_EXAMPLES:
            sentence = _expect_str(obj, "sentence_with_blank", display, line)
            if "_" not in sentence:
                raise EvalsFormatError(
                    display,
                    "has no blank '_' for the pronoun",
                    line=line,
                    field="sentence_with_blank",
                )
            options = obj.get("pronoun_options")
            if (
                not isinstance(options, list)
                or not options
                or not all(isinstance(o, str) and o for o in options)
            ):
                raise EvalsFormatError(
                    display,
                    "expected a non-empty list of strings",
                    line=line,
                    field="pronoun_options",
                )
            if "index" in obj and (isinstance(obj["index"], bool) or not isinstance(obj["index"], int)):
                raise EvalsFormatError(display, "expected an integer", line=line, field="index")
        _expect_number(
            obj,
            "BLS_percent_women_2019",
            display,
            line,
            required=False,
            low=0,
            high=100,
        )
        _expect_str(obj, "BLS_original_occupation", display, line, required=False)
        # Winogender records have no gold label and no question column: everything is extra.
        columns = set()
    else:
        question = _expect_str(obj, "question", display, line)
        matching = _expect_str(obj, "answer_matching_behavior", display, line)
        if len(matching) > MAX_ANSWER_CHARS:
            raise EvalsFormatError(
                display,
                f"longer than {MAX_ANSWER_CHARS} characters ({len(matching):,})",
                line=line,
                field="answer_matching_behavior",
            )
        raw_not = obj.get("answer_not_matching_behavior")
        if "answer_not_matching_behavior" not in obj:
            raise EvalsFormatError(display, "missing", line=line, field="answer_not_matching_behavior")
        if isinstance(raw_not, str):
            if not raw_not.strip():
                raise EvalsFormatError(
                    display,
                    "must not be empty",
                    line=line,
                    field="answer_not_matching_behavior",
                )
            not_matching = raw_not
            others = [raw_not]
        elif isinstance(raw_not, list) and raw_not and all(isinstance(a, str) and a.strip() for a in raw_not):
            not_matching = list(raw_not)
            others = not_matching
        else:
            raise EvalsFormatError(
                display,
                f"expected a string or a non-empty list of strings, got {raw_not!r:.60}",
                line=line,
                field="answer_not_matching_behavior",
            )
        if matching in others:
            raise EvalsFormatError(
                display,
                f"the matching answer {matching!r} is also listed as not matching",
                line=line,
                field="answer_not_matching_behavior",
            )
        if spec is PERSONA:
            statement = _expect_str(obj, "statement", display, line)
        else:
            statement = _expect_str(obj, "statement", display, line, required=False)
        value = _expect_number(obj, "label_confidence", display, line, required=False, low=0.0, high=1.0)
        confidence = None if value is None else float(value)
        if "user_affiliation" in obj:
            _expect_str(obj, "user_affiliation", display, line)

    extra = {key: value for key, value in obj.items() if key not in columns}
    record = ParsedRecord(
        position=position,
        line=line,
        question=question,
        statement=statement,
        answer_matching_behavior=matching,
        answer_not_matching_behavior=not_matching,
        label_confidence=confidence,
        extra=extra,
        key_order=list(obj),
        text_hash="",
    )
    record.text_hash = text_hash(record.text)
    return record


def find_upstream_commit(path: Path, *, levels: int = 4) -> str:
    """The release's commit, when a SOURCE.md beside the data records it."""
    for parent in list(path.resolve().parents)[:levels]:
        source = parent / "SOURCE.md"
        if source.is_file():
            match = COMMIT_IN_SOURCE.search(source.read_text(encoding="utf-8", errors="replace"))
            if match:
                return match.group(1)
    return ""


def read_evals_file(
    path: Path,
    *,
    max_line_bytes: int,
    display_path: str | None = None,
    format_name: str | None = None,
    max_extra_depth: int = DEFAULT_MAX_EXTRA_DEPTH,
    max_extra_bytes: int = DEFAULT_MAX_EXTRA_BYTES,
    keep_records: bool = True,
) -> ParsedFile:
    """Parses and validates a whole file; raises EvalsFormatError at the first problem. Without
    keep_records, no record is kept (memory stays flat however long the file): `iter_records`
    reads them again."""
    display = display_path or str(path)
    if not path.is_file():
        raise EvalsFormatError(display, "no such file")
    if format_name is not None and format_name not in FORMATS:
        raise EvalsFormatError(display, f"unknown format {format_name!r}; known: {', '.join(FORMATS)}")

    limits = ReadLimits(
        max_line_bytes=max_line_bytes, max_extra_depth=max_extra_depth, max_extra_bytes=max_extra_bytes
    )
    reader = _Reader(path, display, limits, FORMATS.get(format_name) if format_name else None)
    inspector = _Inspector()
    records: list[ParsedRecord] = []
    field_order: list[str] = []
    for record in reader:
        if record.position == 0:
            field_order = record.key_order
        inspector.add(record)
        if keep_records:
            records.append(record)
    if not reader.count:
        raise EvalsFormatError(display, "the file is empty (no records)")
    assert reader.spec is not None

    parsed = ParsedFile(
        path=path,
        display_path=display,
        sha256=reader.digest.hexdigest(),
        format=reader.spec,
        records=records,
        field_order=field_order,
        ensure_ascii=not reader.non_ascii,
        record_count=reader.count,
        limits=limits,
        skipped_blank_lines=reader.blank,
    )
    inspector.finish(parsed)
    return parsed


def iter_records(parsed: ParsedFile) -> Iterator[ParsedRecord]:
    """A validated file's records, one at a time: those it kept, or else read from the file again.
    Raises EvalsFormatError, after the last record, when the file's bytes are no longer the ones
    validated, so that a caller writing them in one transaction rolls it back."""
    if parsed.records or parsed.limits is None:
        yield from parsed.records
        return
    reader = _Reader(parsed.path, parsed.display_path, parsed.limits, parsed.format)
    changed = f"the file changed after it was validated (sha256 {parsed.sha256[:12]}...); import it again"
    try:
        yield from reader
    except EvalsFormatError as exc:
        raise EvalsFormatError(parsed.display_path, f"{changed}: {exc.detail}", line=exc.line) from None
    except OSError as exc:
        raise EvalsFormatError(parsed.display_path, f"{changed}: {exc}") from None
    if reader.digest.hexdigest() != parsed.sha256:
        raise EvalsFormatError(parsed.display_path, changed)


class _Reader:
    """One pass over a file: iterating yields its records, validated; afterwards it holds what the
    pass saw (sha256, format, blank lines, whether any text was non-ASCII), and never a record."""

    def __init__(self, path: Path, display: str, limits: ReadLimits, spec: FormatSpec | None):
        self.path = path
        self.display = display
        self.limits = limits
        self.spec = spec
        self.digest = hashlib.sha256()
        self.blank = 0
        self.non_ascii = False
        self.count = 0

    def __iter__(self) -> Iterator[ParsedRecord]:
        display, limits = self.display, self.limits
        for line_no, text in _iter_lines(self.path, display, limits.max_line_bytes, self.digest):
            if not text.strip():
                self.blank += 1
                continue
            if not text.isascii():
                self.non_ascii = True
            obj = _load_line(text, display=display, line=line_no, limits=limits)
            # JSON can only carry a NUL as the escape \u0000, so most lines skip the walk.
            for key, value in obj.items() if "\\u0000" in text else ():
                if _has_nul(key) or _has_nul(value):
                    raise EvalsFormatError(
                        display,
                        "contains a NUL character (\\u0000), which the database cannot store",
                        line=line_no,
                        field=key,
                    )
            if self.spec is None:
                self.spec = _detect_format(obj, path_parts=self.path.parts)
                if self.spec is None:
                    raise EvalsFormatError(
                        display,
                        f"unknown format: fields {sorted(obj)} match none of the released formats "
                        "(persona, advanced-ai-risk, sycophancy, winogenerated)",
                        line=line_no,
                    )
            record = _parse_record(obj, self.spec, display=display, line=line_no, position=self.count)
            _check_extra_size(record.extra, display=display, line=line_no, limit=limits.max_extra_bytes)
            self.count += 1
            yield record


# A JSON string (with its escapes) and whether a colon follows it (an object's key), or a bracket.
_JSON_STRUCTURE = re.compile(r'(?P<string>"[^"\\]*(?:\\.[^"\\]*)*")(?P<colon>\s*:)?|[\[\]{}]')


def json_nesting_over(text: str, max_depth: int) -> tuple[bool, str | None]:
    """Whether a JSON text nests objects and arrays more than max_depth levels deep, found without
    parsing it (the parser recurses once per level: a line of 100,000 '[' would raise RecursionError),
    and under which key of the outer object. Linear in the text; brackets inside strings are text.
    Malformed text is left to json.loads. Also the API's JSON parser's check (mwe_site/parsers.py)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False, None  # nearly every line: too few brackets to nest that deep
    depth = 0
    key: str | None = None
    for match in _JSON_STRUCTURE.finditer(text):
        string = match.group("string")
        if string is not None:
            if depth == 1 and match.group("colon"):
                key = string
            continue
        if match.group() in "[{":
            depth += 1
            if depth > max_depth:
                if key is None:
                    return True, None
                try:
                    return True, json.loads(key)
                except ValueError:
                    return True, key
        else:
            depth -= 1
    return False, None


def _load_line(text: str, *, display: str, line: int, limits: ReadLimits) -> dict[str, Any]:
    # The record is one level, each field's value may add max_extra_depth more.
    too_deep, key = json_nesting_over(text, limits.max_extra_depth + 1)
    if too_deep:
        raise EvalsFormatError(
            display,
            f"nested more than {limits.max_extra_depth} levels deep "
            "(set MWE_IMPORT_MAX_EXTRA_DEPTH to raise the limit)",
            line=line,
            field=key,
        )
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise EvalsFormatError(display, f"not valid JSON: {exc}", line=line) from None
    except RecursionError:
        # Only reachable when MWE_IMPORT_MAX_EXTRA_DEPTH is set beyond what the parser can recurse.
        raise EvalsFormatError(display, "nested too deeply for the JSON parser", line=line) from None
    if not isinstance(obj, dict):
        raise EvalsFormatError(display, f"expected a JSON object, got {type(obj).__name__}", line=line)
    return obj


def _compact_json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _check_extra_size(extra: dict[str, Any], *, display: str, line: int, limit: int) -> None:
    """The fields beyond the known columns are stored as they are and shown on the public example
    page: their compact JSON must stay within the limit."""
    if not extra:
        return
    size = _compact_json_bytes(extra)
    if size <= limit:
        return
    largest = max(extra, key=lambda key: _compact_json_bytes(extra[key]))
    raise EvalsFormatError(
        display,
        f"the {len(extra)} field{'s' if len(extra) > 1 else ''} beyond the known ones take {size:,} "
        f"bytes as JSON, more than the limit of {limit:,} (set MWE_IMPORT_MAX_EXTRA_BYTES to raise it); "
        "this one is the largest",
        line=line,
        field=largest,
    )


class _Inspector:
    """Finds the known traps of the released files, one record at a time, keeping 8 bytes per
    record (for duplicates) and a few numbers per label."""

    def __init__(self) -> None:
        # The first 64 bits of each record's text hash, by position: two different texts share them
        # with a probability of about n^2 / 2^65, which would only add a false duplicate warning.
        self.hashes = array("Q")
        self.labels: Counter[str] = Counter()
        # Per label with confidences: [count, last value, non-increasing so far, non-decreasing so far].
        self.confidence: dict[str, list] = {}
        self.answer_suffix = 0
        self.count = 0

    def add(self, record: ParsedRecord) -> None:
        self.count += 1
        self.hashes.append(int(record.text_hash[:16], 16))
        label = record.answer_matching_behavior
        if label:
            self.labels[label] += 1
        value = record.label_confidence
        if value is not None:
            state = self.confidence.get(label)
            if state is None:
                self.confidence[label] = [1, value, True, True]
            else:
                state[0] += 1
                state[2] = state[2] and value <= state[1]
                state[3] = state[3] and value >= state[1]
                state[1] = value
        if record.question.rstrip().endswith("Answer:"):
            self.answer_suffix += 1

    def finish(self, parsed: ParsedFile) -> None:
        """Writes what was found into parsed (warnings, duplicates, label counts, sort order)."""
        parsed.duplicate_positions = _duplicates(self.hashes)
        if parsed.duplicate_positions:
            pairs = ", ".join(f"#{pos} = #{orig}" for pos, orig in parsed.duplicate_positions[:5])
            more = "" if len(parsed.duplicate_positions) <= 5 else ", ..."
            parsed.warnings.append(
                f"{len(parsed.duplicate_positions)} duplicate text(s), identical up to case, whitespace "
                f"and quote style ({pairs}{more})"
            )

        labels = self.labels
        parsed.label_counts = dict(sorted(labels.items()))
        if len(labels) >= 2 and parsed.format.purpose == "evaluation":
            low, high = min(labels.values()), max(labels.values())
            if low / high < 0.8:
                shares = ", ".join(f"{label.strip()} {count}" for label, count in labels.most_common())
                parsed.warnings.append(
                    f"label imbalance: {shares}; always answering the majority label scores "
                    f"{high / self.count:.0%}"
                )
        elif len(labels) == 1 and parsed.format.purpose == "evaluation" and self.count > 1:
            parsed.warnings.append(f"every example has the same matching answer {next(iter(labels))!r}")

        states = self.confidence.values()
        if states and all(count >= 10 for count, *_ in states):
            descending = all(state[2] for state in states)
            ascending = all(state[3] for state in states)
            if descending or ascending:
                parsed.sorted_by_confidence = True
                order = "descending" if descending else "ascending"
                parsed.warnings.append(
                    f"sorted by label_confidence ({order} within each label): the first N examples are "
                    "not a random sample; sample at random or stratify"
                )
        if self.answer_suffix:
            parsed.warnings.append(
                f"{self.answer_suffix} of {self.count} questions already end in 'Answer:'; a prompt "
                "format must not append another"
            )
        if parsed.skipped_blank_lines:
            parsed.warnings.append(f"{parsed.skipped_blank_lines} blank line(s) skipped")


def _duplicates(hashes: array) -> list[tuple[int, int]]:
    """(position, position of the first record with the same hash) for every repeated hash, in
    position order. Sorting copies of the hashes takes a few bytes per record, where a dict of them
    took ~100."""
    if len(hashes) < 2:
        return []
    values = np.frombuffer(hashes, dtype=np.uint64)
    ordered = np.sort(values)
    if not (ordered[1:] == ordered[:-1]).any():
        return []  # the usual case, settled with one sorted copy
    del ordered
    order = np.argsort(values, kind="stable")  # equal hashes stay in position order
    ordered = values[order]
    repeat = np.zeros(len(values), dtype=bool)
    repeat[1:] = ordered[1:] == ordered[:-1]
    del ordered
    # For each sorted index, the sorted index where its run of equal hashes starts.
    run_start = np.where(repeat, 0, np.arange(len(values)))
    np.maximum.accumulate(run_start, out=run_start)
    later = order[repeat]
    first = order[run_start[repeat]]
    by_position = np.argsort(later, kind="stable")
    return list(zip(later[by_position].tolist(), first[by_position].tolist(), strict=True))


def record_from_columns(
    *,
    field_order: list[str],
    key_order: list[str] | None,
    question: str,
    statement: str,
    answer_matching_behavior: str,
    answer_not_matching_behavior: str | list[str] | None,
    label_confidence: float | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Rebuilds a released record from stored columns, in the file's own key order."""
    values: dict[str, Any] = dict(extra)
    order = key_order or field_order
    for key, value in (
        ("question", question),
        ("statement", statement),
        ("answer_matching_behavior", answer_matching_behavior),
        ("answer_not_matching_behavior", answer_not_matching_behavior),
        ("label_confidence", label_confidence),
    ):
        if key in order or value not in ("", None):
            values.setdefault(key, value)
    record = {key: values.pop(key) for key in order if key in values}
    record.update(values)  # fields the file's order does not name go last, as generators add them
    return record

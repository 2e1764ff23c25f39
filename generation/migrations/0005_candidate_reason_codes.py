"""Candidate reasons become codes: the English sentence the pipeline used to store ("near duplicate
of candidate #12 (cosine 0.970)") is split into its code (near_duplicate) and the numbers behind it
({"twin": 12, "cosine": 0.97}), from which generation.models.candidate_reason_text writes the same
sentence again. A text that matches none of the sentences the pipeline wrote is kept whole, as
"other". The column becomes a short code field in 0006, in a transaction of its own (PostgreSQL
refuses to alter a table with updates pending in the same transaction).

The conversion is frozen here, as a migration must be: it describes the texts as they were."""

import json
import re

from django.db import migrations, models

BALANCED = " (labels balanced to the scarcer one)"
# (code, pattern, how to read the groups): the sentences of generation.pipeline.run before codes.
PATTERNS = [
    ("unparseable", re.compile(r"unparseable: (?P<problem>.*)", re.S), {}),
    (
        "below_floor",
        re.compile(r"label probability (?P<label_probability>\S+) below the floor (?P<floor>\S+)"),
        {"label_probability": "number", "floor": "number"},
    ),
    ("failed_requirement", re.compile(r"fails requirement: (?P<failing>.*)", re.S), {"failing": "list"}),
    ("exact_duplicate", re.compile(r"exact duplicate of candidate #(?P<twin>\d+)"), {"twin": "number"}),
    (
        "near_duplicate",
        re.compile(r"near duplicate of candidate #(?P<twin>\d+) \(cosine (?P<cosine>\S+)\)"),
        {"twin": "number", "cosine": "number"},
    ),
    (
        "top_k",
        re.compile(
            r"kept: rank (?P<rank>\d+) of (?P<of>\d+) for (?P<label>.*), label probability (?P<label_probability>\S+)"
        ),
        {"rank": "number", "of": "number", "label_probability": "number"},
    ),
    (
        "not_top_k",
        re.compile(
            r"not in the top (?P<keep>\d+) for (?P<label>.*) \(rank (?P<rank>\d+)\)(?P<balanced>"
            + re.escape(BALANCED)
            + ")?"
        ),
        {"keep": "number", "rank": "number", "balanced": "flag"},
    ),
]


def _read(value: str | None, kind: str):
    if kind == "number":
        number = json.loads(value)
        if not isinstance(number, int | float):
            raise ValueError(value)
        return number
    if kind == "list":
        return value.split(", ")
    if kind == "flag":
        return value is not None
    return value


def reason_from_text(text: str) -> tuple[str, dict]:
    """(code, detail) of a reason as the pipeline wrote it before codes; ("", {}) for none."""
    if not text:
        return "", {}
    for code, pattern, kinds in PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        try:
            detail = {
                name: _read(value, kinds.get(name, "text")) for name, value in match.groupdict().items()
            }
        except ValueError:
            continue
        # A sentence the code would write otherwise (a float printed another way) is kept whole.
        if reason_to_text(code, detail) == text:
            return code, detail
    return "other", {"text": text}


def reason_to_text(code: str, d: dict) -> str:
    """The sentence of a code and its detail, as the pipeline wrote it before codes."""
    if code == "unparseable":
        return f"unparseable: {d['problem']}"
    if code == "below_floor":
        return f"label probability {d['label_probability']:.3f} below the floor {d['floor']}"
    if code == "failed_requirement":
        return "fails requirement: " + ", ".join(d["failing"])
    if code == "exact_duplicate":
        return f"exact duplicate of candidate #{d['twin']}"
    if code == "near_duplicate":
        return f"near duplicate of candidate #{d['twin']} (cosine {d['cosine']:.3f})"
    if code == "top_k":
        return f"kept: rank {d['rank']} of {d['of']} for {d['label']}, label probability {d['label_probability']:.3f}"
    if code == "not_top_k":
        return f"not in the top {d['keep']} for {d['label']} (rank {d['rank']}){BALANCED if d['balanced'] else ''}"
    if code == "other":
        return d["text"]
    return ""


def _convert(apps, convert) -> None:
    Candidate = apps.get_model("generation", "Candidate")
    batch = []
    for candidate in (
        Candidate.objects.exclude(reason="").only("reason", "reason_detail").iterator(chunk_size=2000)
    ):
        convert(candidate)
        batch.append(candidate)
        if len(batch) == 2000:
            Candidate.objects.bulk_update(batch, ["reason", "reason_detail"])
            batch = []
    Candidate.objects.bulk_update(batch, ["reason", "reason_detail"])


def texts_to_codes(apps, schema_editor) -> None:
    def convert(candidate):
        candidate.reason, candidate.reason_detail = reason_from_text(candidate.reason)

    _convert(apps, convert)


def codes_to_texts(apps, schema_editor) -> None:
    def convert(candidate):
        candidate.reason, candidate.reason_detail = (
            reason_to_text(candidate.reason, candidate.reason_detail),
            {},
        )

    _convert(apps, convert)


class Migration(migrations.Migration):
    dependencies = [("generation", "0004_methods_and_explore_jobs")]

    operations = [
        migrations.AddField(
            model_name="candidate",
            name="reason_detail",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(texts_to_codes, codes_to_texts),
    ]

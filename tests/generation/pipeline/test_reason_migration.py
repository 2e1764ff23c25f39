"""The migration of candidate reasons from English sentences to codes (generation migration 0005):
every sentence the pipeline wrote before codes becomes its code and numbers, and the code's display
writes the very same sentence back, so nothing shown or stored is lost."""

import importlib

import pytest

from generation.models import Candidate, GenerationRun
from tests.generation.pipeline.builders import persona_candidates, persona_run
from tests.migrations import migrated_back

migration = importlib.import_module("generation.migrations.0005_candidate_reason_codes")
Reason = Candidate.Reason

# Each sentence the pipeline's select_candidates and _generate wrote before codes (their f-strings,
# filled with the values each can take), with the code and numbers it becomes.
OLD_SENTENCES = [
    ("unparseable: empty output", Reason.UNPARSEABLE, {"problem": "empty output"}),
    (
        "unparseable: too short (1 words, at least 3)",
        Reason.UNPARSEABLE,
        {"problem": "too short (1 words, at least 3)"},
    ),
    (
        "unparseable: the other participant is not a short noun ('a, b: c (d)')",
        Reason.UNPARSEABLE,
        {"problem": "the other participant is not a short noun ('a, b: c (d)')"},
    ),
    (
        "label probability 0.300 below the floor 0.5",
        Reason.BELOW_FLOOR,
        {"label_probability": 0.3, "floor": 0.5},
    ),
    ("label probability 0.000 below the floor 1", Reason.BELOW_FLOOR, {"label_probability": 0.0, "floor": 1}),
    (
        "fails requirement: relevance 0.100 < 0.5",
        Reason.FAILED_REQUIREMENT,
        {"failing": ["relevance 0.100 < 0.5"]},
    ),
    (
        "fails requirement: masculine pronoun 'he' is not the form the discriminator prefers, "
        "neutral pronoun 'they' is not the form the discriminator prefers",
        Reason.FAILED_REQUIREMENT,
        {
            "failing": [
                "masculine pronoun 'he' is not the form the discriminator prefers",
                "neutral pronoun 'they' is not the form the discriminator prefers",
            ]
        },
    ),
    ("exact duplicate of candidate #1000", Reason.EXACT_DUPLICATE, {"twin": 1000}),
    ("near duplicate of candidate #12 (cosine 0.970)", Reason.NEAR_DUPLICATE, {"twin": 12, "cosine": 0.97}),
    (
        "kept: rank 1 of 3 for Yes, label probability 0.950",
        Reason.TOP_K,
        {"rank": 1, "of": 3, "label": "Yes", "label_probability": 0.95},
    ),
    (
        "kept: rank 2 of 8 for software developer, label probability 0.612",
        Reason.TOP_K,
        {"rank": 2, "of": 8, "label": "software developer", "label_probability": 0.612},
    ),
    (
        "not in the top 2 for Yes (rank 3) (labels balanced to the scarcer one)",
        Reason.NOT_TOP_K,
        {"keep": 2, "label": "Yes", "rank": 3, "balanced": True},
    ),
    (
        "not in the top 2 for nurse (rank 5)",
        Reason.NOT_TOP_K,
        {"keep": 2, "label": "nurse", "rank": 5, "balanced": False},
    ),
]


@pytest.mark.parametrize(("text", "code", "detail"), OLD_SENTENCES)
def test_each_old_sentence_becomes_its_code_and_reads_the_same(text, code, detail):
    assert migration.reason_from_text(text) == (code, detail)
    assert Candidate(reason=code, reason_detail=detail).reason_text == text
    assert migration.reason_to_text(code, detail) == text


@pytest.mark.parametrize(
    "text",
    [
        "kept",  # hand-written or from an older version: kept whole
        "label probability 0.3 below the floor 0.5",  # numbers printed another way
        "near duplicate of candidate #12 (cosine high)",
    ],
)
def test_a_sentence_of_no_known_form_is_kept_whole(text):
    code, detail = migration.reason_from_text(text)
    assert (code, detail) == (Reason.OTHER, {"text": text})
    assert Candidate(reason=code, reason_detail=detail).reason_text == text
    assert migration.reason_from_text("") == ("", {})


@pytest.mark.django_db
def test_what_the_pipeline_writes_reads_as_the_sentences_the_migration_converts():
    """Every reason of a real run, shown as a sentence, converts back to its own code: the display
    and the migration agree on every reason the pipeline decides."""
    run = persona_run()
    candidates = persona_candidates(run).values()
    assert {c.reason for c in candidates} == set(Reason.values) - {Reason.OTHER}
    for candidate in candidates:
        code, detail = migration.reason_from_text(candidate.reason_text)
        assert code == candidate.reason
        assert Candidate(reason=code, reason_detail=detail).reason_text == candidate.reason_text


@pytest.mark.django_db(transaction=True)
def test_the_migrations_convert_stored_rows_and_back():
    """Migrations 0005 and 0006 applied to a database that holds candidates with the old sentences,
    then unapplied: every row gets its code and numbers, and comes back as the same sentence."""
    with migrated_back(
        app_label="generation",
        name="0004_methods_and_explore_jobs",
        cleanup=lambda: GenerationRun.objects.filter(slug="old-run").delete(),
    ) as back_then:
        run = back_then.apps.get_model("generation", "GenerationRun").objects.create(
            method="persona", slug="old-run", behavior="b", description="d"
        )
        Candidate_ = back_then.apps.get_model("generation", "Candidate")
        ids = {
            sentence: Candidate_.objects.create(
                run=run, label="Yes", sample_index=n, prompt="p", reason=sentence
            ).pk
            for n, (sentence, _code, _detail) in enumerate(OLD_SENTENCES)
        }

        back_then.forward()
        for sentence, code, detail in OLD_SENTENCES:
            row = Candidate.objects.get(pk=ids[sentence])
            assert (row.reason, row.reason_detail) == (code, detail)

        back_then.back()
        for sentence, pk in ids.items():
            assert Candidate_.objects.get(pk=pk).reason == sentence

"""The Hugging Face datasets Parquet export and its way back: export_dataset --format parquet, then
import_evals of the folder, gives datasets whose JSONL download is the original file byte for byte
(released persona and advanced-ai-risk files, list-valued answers, a dataset the pipeline generated);
the dataset card names licence, provenance and, for a rated dataset, the agreement figure."""

import json
from io import StringIO
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from django.core.management import CommandError, call_command

from analysis.agreement.selectors import project_report
from generation.catalog.exports import dataset_snapshot
from generation.catalog.exports.parquet import dataset_card, parquet_import
from generation.catalog.selectors import dataset_export_lines
from generation.catalog.services import evals_import
from generation.models import Dataset
from tests.analysis.builders import rated_project
from tests.generation.catalog.test_exports import RELEASED, sycophancy_file
from tests.generation.pipeline.builders import persona_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def few_resamples(settings):
    settings.ANALYSIS_BOOTSTRAP_REPLICATES = 50


def jsonl_bytes(dataset: Dataset) -> bytes:
    return "".join(dataset_export_lines(dataset=dataset)).encode("utf-8")


def export_parquet(tmp_path: Path, **which) -> Path:
    out = tmp_path / "hf"
    call_command("export_dataset", format="parquet", out=str(out), stderr=StringIO(), **which)
    return out


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_released_files_come_back_byte_for_byte(evals_data, tmp_path):
    sycophancy = sycophancy_file(tmp_path)
    evals_import(paths=[*(evals_data / name for name in RELEASED), sycophancy])
    before = {
        d.slug: (d.source_path, d.source_sha256, d.collection.slug, d.category) for d in Dataset.objects.all()
    }
    folder = export_parquet(tmp_path, all=True)

    header = card_header(folder)
    assert header["license"] == "cc-by-4.0"
    assert {c["config_name"] for c in header["configs"]} == set(before)
    # One type per column: a string where the file writes strings, a list where it writes lists.
    persona = pq.read_table(folder / "data" / "narcissism" / "validation.parquet")
    assert persona.column_names == [
        "question",
        "statement",
        "label_confidence",
        "answer_matching_behavior",
        "answer_not_matching_behavior",
    ]
    assert persona.schema.field("answer_not_matching_behavior").type == pa.string()
    listed = pq.read_table(folder / "data" / "sycophancy-on-philpapers2020" / "validation.parquet")
    assert listed.schema.field("answer_not_matching_behavior").type == pa.list_(pa.string())
    card = (folder / "README.md").read_text()
    assert "84fcc677e52e1902d696c32cd1a6b663e70d3993" in card and "persona/narcissism.jsonl" in card
    assert "arXiv" in card or "arxiv" in card

    Dataset.objects.all().delete()
    call_command("import_evals", str(folder), stdout=StringIO())
    after = {d.slug: d for d in Dataset.objects.all()}
    assert set(after) == set(before)
    for slug, dataset in after.items():
        assert (
            dataset.source_path,
            dataset.source_sha256,
            dataset.collection.slug,
            dataset.category,
        ) == before[slug]
    for name in RELEASED:
        dataset = Dataset.objects.get(source_path=name)
        assert jsonl_bytes(dataset) == (evals_data / name).read_bytes(), name
        assert dataset.upstream_commit == "84fcc677e52e1902d696c32cd1a6b663e70d3993"
    assert jsonl_bytes(after["sycophancy-on-philpapers2020"]) == sycophancy.read_bytes()
    # Importing the same folder again changes nothing (the bytes are the ones already imported).
    results = parquet_import(paths=[folder])
    assert {r.status for r in results} == {"unchanged"}


def test_a_generated_dataset_comes_back_with_its_provenance_on_the_card(tmp_path, settings):
    settings.MWE_GENERATED_DATA_LICENSE = "cc0-1.0"
    run = persona_run(slug="liberal")
    dataset = run.dataset
    original = jsonl_bytes(dataset)
    folder = export_parquet(tmp_path, dataset=["liberal"])
    header = card_header(folder)
    assert header["license"] == "cc0-1.0"
    card = (folder / "README.md").read_text()
    assert f"run #{run.pk}" in card and "sha256:generatorfingerprint" in card
    assert '"keep_per_label": 1' in card  # the spec as the pipeline stored it

    Dataset.objects.filter(pk=dataset.pk).delete()
    call_command("import_evals", str(folder), stdout=StringIO())
    back = Dataset.objects.get(slug="liberal")
    assert back.collection.slug == dataset.collection.slug
    assert jsonl_bytes(back) == original


def test_the_card_has_the_kappa_of_a_rated_dataset(db):
    project = rated_project(datasets=1, examples=12, slug="crowd")
    dataset = project.datasets.get()
    expected = project_report(project=project).datasets[0].figures.answers.fleiss_kappa
    assert expected.value is not None
    card = dataset_card(snapshots=[dataset_snapshot(dataset=dataset)], title="Rated")
    assert f"Fleiss' kappa on chosen answers {expected.value:.3f}" in card
    assert "over 12 examples rated by 3 workers each" in card


def test_untrusted_text_stays_text_on_the_card(db):
    run = persona_run(slug="liberal")
    dataset = run.dataset
    dataset.behavior = "liberal\n---\nlicense: mit\n<script>alert(1)</script>"
    dataset.save()
    card = dataset_card(snapshots=[dataset_snapshot(dataset=dataset)], title="T")
    assert card_header_of(card)["license"] != "mit"
    assert "<script>" not in card


def card_header_of(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


def test_parquet_of_another_tool_imports_by_its_columns(tmp_path):
    folder = tmp_path / "other" / "data" / "my-eval"
    folder.mkdir(parents=True)
    records = [
        {
            "question": f"Q{i}?\n\nChoices:\n (A) a\n (B) b",
            "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": " (B)",
        }
        for i in range(4)
    ]
    pq.write_table(pa.Table.from_pylist(records), folder / "validation.parquet")
    out = StringIO()
    call_command("import_evals", str(tmp_path / "other"), stdout=out)
    dataset = Dataset.objects.get()
    assert dataset.slug == "my-eval" and dataset.example_count == 4
    assert [json.loads(line) for line in dataset_export_lines(dataset=dataset)] == records


def good_and_broken_parquet(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed" / "data" / "good"
    folder.mkdir(parents=True)
    records = [
        {
            "question": f"Q{i}?\n\nChoices:\n (A) a\n (B) b",
            "answer_matching_behavior": " (A)",
            "answer_not_matching_behavior": " (B)",
        }
        for i in range(3)
    ]
    pq.write_table(pa.Table.from_pylist(records), folder / "validation.parquet")
    (tmp_path / "mixed" / "broken.parquet").write_bytes(b"PAR1 not really")
    return tmp_path / "mixed"


def test_a_bad_parquet_file_changes_nothing(tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    errors = StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_evals", str(bad), stdout=StringIO(), stderr=errors)
    assert "not a readable Parquet file" in errors.getvalue()
    with pytest.raises(CommandError, match="apply to JSONL"):
        call_command("import_evals", str(bad), slug="x", stdout=StringIO())
    # Beside a good file: both are reported, and without --keep-going nothing is written.
    folder = good_and_broken_parquet(tmp_path)
    out, errors = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_evals", str(folder), stdout=out, stderr=errors)
    assert "broken.parquet" in errors.getvalue() and "Nothing was written" in errors.getvalue()
    assert "valid" in out.getvalue() and "good" in out.getvalue()
    assert not Dataset.objects.exists()


def test_keep_going_imports_the_readable_parquet_files(tmp_path):
    folder = good_and_broken_parquet(tmp_path)
    out, errors = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("import_evals", str(folder), keep_going=True, stdout=out, stderr=errors)
    assert "not a readable Parquet file" in errors.getvalue()
    assert list(Dataset.objects.values_list("slug", "example_count")) == [("good", 3)]

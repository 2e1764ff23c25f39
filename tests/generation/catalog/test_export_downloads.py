"""The exports for other tools from the site (issue 16): a dataset's, a collection's or the catalog's
lm-eval task folder, Inspect task and Parquet folder as one zip whose folder is, byte for byte, what
`export_dataset` writes; built once per version into the file cache, with the other downloads'
validators, rate limit and 404s, and the pages' links to them."""

import io
import zipfile
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from generation.catalog.exports import bundle
from generation.catalog.services import dataset_refresh_stats, example_save
from generation.models import Dataset
from tests.analysis.builders import rated_project
from tests.builders import CollectionFactory, DatasetFactory, ExampleFactory

pytestmark = pytest.mark.django_db

FORMATS = ("lm-eval", "inspect", "parquet")


def dataset_build(*, slug: str, collection: str, examples: int = 3, **fields) -> Dataset:
    dataset = DatasetFactory(slug=slug, collection=CollectionFactory(slug=collection), **fields)
    for position in range(examples):
        ExampleFactory(
            dataset=dataset,
            position=position,
            statement=f"{slug} says <b>{position}</b> & ünïcode",
            answer_matching_behavior=" Yes" if position % 2 else " No",
            answer_not_matching_behavior=" No" if position % 2 else " Yes",
        )
    dataset_refresh_stats(dataset=dataset)
    return dataset


@pytest.fixture
def catalog(isolated_var_dir):
    """Two small evaluation datasets in one collection, one in another, and a few-shot one that is
    no task (a collection's and the catalog's task exports skip it, as the command does)."""
    dataset_build(slug="narcissism", collection="persona")
    dataset_build(slug="risk-seeking", collection="persona", examples=2)
    dataset_build(slug="seeds", collection="persona", purpose=Dataset.Purpose.FEW_SHOT)
    dataset_build(slug="survival", collection="advanced-ai-risk")


def url(export_format: str, *, dataset: str | None = None, collection: str | None = None) -> str:
    if dataset:
        return reverse(
            "generation:dataset-export-download", kwargs={"slug": dataset, "export_format": export_format}
        )
    if collection:
        return reverse(
            "generation:collection-export-download",
            kwargs={"slug": collection, "export_format": export_format},
        )
    return reverse("generation:catalog-export-download", kwargs={"export_format": export_format})


def unzipped(response) -> dict[str, bytes]:
    assert response.status_code == 200, response
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as zipped:
        return {name: zipped.read(name) for name in zipped.namelist()}


def command_output(tmp_path: Path, **options) -> dict[str, bytes]:
    out = tmp_path / f"out-{len(list(tmp_path.iterdir()))}"
    call_command("export_dataset", out=str(out), stderr=StringIO(), **options)
    return {path.relative_to(out).as_posix(): path.read_bytes() for path in out.rglob("*") if path.is_file()}


SCOPES = [
    # (URL scope, the command's options, the zip's folder)
    ({"dataset": "narcissism"}, {"dataset": ["narcissism"]}, "narcissism"),
    ({"collection": "persona"}, {"collection": "persona"}, "persona"),
    ({}, {"all": True}, "model-written-evals-catalog"),
]


@pytest.mark.parametrize("export_format", FORMATS)
@pytest.mark.parametrize(("scope", "options", "folder"), SCOPES, ids=["dataset", "collection", "catalog"])
def test_a_download_unzipped_is_the_commands_folder(
    client, catalog, tmp_path, export_format, scope, options, folder
):
    response = client.get(url(export_format, **scope))
    files = unzipped(response)
    label = f"{folder}-{export_format}"
    assert response["Content-Disposition"] == f'attachment; filename="{label}.zip"'
    assert response["ETag"] and response["Last-Modified"]
    assert response["Cache-Control"] == "public, max-age=300"
    # One folder, holding exactly the command's files with the same bytes (the card has no timestamp).
    assert {name.split("/", 1)[0] for name in files} == {label}
    expected = command_output(tmp_path, format=export_format, **options)
    assert {name.split("/", 1)[1]: data for name, data in files.items()} == expected
    if export_format != "parquet" and "dataset" not in scope:
        assert not any("seeds" in name for name in files)  # skipped: no task without gold answers


def test_the_papers_prompt_format_is_the_commands(client, catalog, tmp_path):
    files = unzipped(client.get(url("lm-eval", collection="persona") + "?prompt_format=paper"))
    expected = command_output(tmp_path, format="lm-eval", collection="persona", prompt_format="paper")
    assert {name.removeprefix("persona-lm-eval-paper/"): data for name, data in files.items()} == expected
    plain = unzipped(client.get(url("lm-eval", collection="persona")))
    assert files["persona-lm-eval-paper/mwe_narcissism.yaml"] != plain["persona-lm-eval/mwe_narcissism.yaml"]


def test_bad_requests_are_refused_before_anything_is_built(client, catalog, isolated_var_dir):
    assert client.get(url("jsonl", dataset="narcissism")).status_code == 404
    assert client.get(url("LM-EVAL")).status_code == 404
    assert client.get(url("lm-eval", dataset="nope")).status_code == 404
    assert client.get(url("parquet", collection="nope")).status_code == 404
    # No task in a dataset without gold answers, nor in a collection of only such; nothing at all in
    # an empty collection.
    assert client.get(url("lm-eval", dataset="seeds")).status_code == 404
    dataset_build(slug="seeds-only", collection="few-shot", purpose=Dataset.Purpose.FEW_SHOT)
    assert client.get(url("inspect", collection="few-shot")).status_code == 404
    CollectionFactory(slug="empty")
    assert client.get(url("parquet", collection="empty")).status_code == 404
    for query in ("?prompt_format=chat", "?prompt_format=", "?prompt_format=PAPER"):
        assert client.get(url("lm-eval", dataset="narcissism") + query).status_code == 400, query
    assert client.get(url("inspect", dataset="narcissism") + "?prompt_format=paper").status_code == 400
    assert client.post(url("parquet")).status_code == 405
    cache = isolated_var_dir / bundle.BUNDLES_FOLDER
    assert not cache.exists() or not [p for p in cache.iterdir() if not p.name.startswith(".lock-")]
    # The few-shot dataset is still data: its Parquet folder is served.
    assert client.get(url("parquet", collection="few-shot")).status_code == 200


def test_a_bundle_is_built_once_per_version(client, catalog, monkeypatch, isolated_var_dir):
    builds = []
    original = bundle._bundle_write
    monkeypatch.setattr(bundle, "_bundle_write", lambda **kw: builds.append(1) or original(**kw))
    target = url("lm-eval", collection="persona")
    first = client.get(target)
    assert unzipped(first) == unzipped(client.get(target))
    assert len(builds) == 1
    assert client.get(target, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert client.get(target, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304
    assert len(builds) == 1

    # An edit is a new version: a new zip, a new ETag, the old zip removed.
    example = Dataset.objects.get(slug="narcissism").examples.get(position=0)
    example.statement = "I was edited"
    example_save(example=example)
    changed = client.get(target, HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    assert b"I was edited" in unzipped(changed)["persona-lm-eval/data/narcissism.jsonl"]
    assert len(builds) == 2
    assert len(list((isolated_var_dir / bundle.BUNDLES_FOLDER).glob("lm-eval-collection-persona-*"))) == 1


def test_an_unpublished_projects_agreement_does_not_leak(client, isolated_var_dir, tmp_path):
    project = rated_project(datasets=1, examples=6, slug="secret-crowd")
    dataset = project.datasets.get()
    first = client.get(url("parquet", dataset=dataset.slug))
    card = unzipped(first)[f"{dataset.slug}-parquet/README.md"].decode()
    assert "Secret-Crowd" not in card and "kappa" not in card.lower()
    # The operator's command lists it.
    assert (
        "Secret-Crowd"
        in command_output(tmp_path, format="parquet", dataset=[dataset.slug])["README.md"].decode()
    )

    # Published, it is public: the ratings changed the bundle's version, not the dataset's.
    project.published_at = timezone.now()
    project.save(update_fields=["published_at"])
    published = client.get(url("parquet", dataset=dataset.slug), HTTP_IF_NONE_MATCH=first["ETag"])
    assert published.status_code == 200
    assert "Secret-Crowd" in unzipped(published)[f"{dataset.slug}-parquet/README.md"].decode()


def test_bundles_are_rate_limited_with_the_other_downloads(client, catalog, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "download": "2/minute"}
    first = client.get(url("inspect"))
    assert first.status_code == 200
    assert client.get(reverse("generation:catalog-download")).status_code == 200
    refused = client.get(url("parquet", dataset="narcissism"))
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # Revalidating a copy does not count.
    assert client.get(url("inspect"), HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304


def test_the_pages_link_them_with_a_hint(client, catalog):
    page = client.get(reverse("generation:dataset-detail", kwargs={"slug": "narcissism"})).content.decode()
    assert "For other tools" in page
    for export_format in FORMATS:
        assert url(export_format, dataset="narcissism") in page
    assert "--tasks mwe_narcissism --include_path ." in page
    assert 'load_dataset("narcissism-parquet", name="narcissism")' in page
    few_shot = client.get(reverse("generation:dataset-detail", kwargs={"slug": "seeds"})).content.decode()
    assert url("parquet", dataset="seeds") in few_shot and url("lm-eval", dataset="seeds") not in few_shot

    page = client.get(reverse("generation:collection-detail", kwargs={"slug": "persona"})).content.decode()
    assert all(url(f, collection="persona") in page for f in FORMATS)
    assert "--tasks mwe_persona " in page
    page = client.get(reverse("generation:catalog")).content.decode()
    assert all(url(f) in page for f in FORMATS) and "--tasks mwe_catalog " in page

"""The bulk downloads: a collection or the whole catalog as one zip in the released layout, each member
the bytes of that dataset's own download, written once per catalog version into the file cache and
served from it, with the per-dataset download's validators, rate limit and 404s."""

import io
import zipfile
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from generation.catalog.exports import archive
from generation.catalog.services import evals_import, example_save
from generation.models import Dataset
from tests.builders import CollectionFactory, StaffFactory

pytestmark = pytest.mark.django_db

FILES = [
    "persona/narcissism.jsonl",
    "persona/risk-seeking.jsonl",
    "advanced-ai-risk/human_generated_evals/survival-instinct.jsonl",
    "advanced-ai-risk/prompts_for_few_shot_generation/corrigible-more-HHH.jsonl",
]
CATALOG = reverse("generation:catalog-download")


def collection_url(slug: str) -> str:
    return reverse("generation:collection-download", kwargs={"slug": slug})


@pytest.fixture
def imported(evals_data):
    results = evals_import(paths=[evals_data / name for name in FILES])
    assert all(r.status == "imported" for r in results)


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def members(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as zipped:
        return {name: zipped.read(name) for name in zipped.namelist()}


def test_the_catalog_is_one_zip_in_the_released_layout(client, imported, evals_data):
    response = client.get(CATALOG)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == 'attachment; filename="model-written-evals-catalog.zip"'
    assert (
        response["ETag"] and response["Last-Modified"] and response["Cache-Control"] == "public, max-age=300"
    )
    files = members(body(response))
    assert sorted(files) == sorted(FILES)
    for name in FILES:
        assert files[name] == (evals_data / name).read_bytes(), name
        # ... and equal to that dataset's own download.
        dataset = Dataset.objects.get(source_path=name)
        own = body(client.get(reverse("generation:dataset-download", kwargs={"slug": dataset.slug})))
        assert files[name] == own


def test_a_collection_holds_its_datasets_only(client, imported, evals_data):
    response = client.get(collection_url("persona"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="persona.zip"'
    assert sorted(members(body(response))) == ["persona/narcissism.jsonl", "persona/risk-seeking.jsonl"]
    page = client.get(reverse("generation:collection-detail", kwargs={"slug": "persona"})).content.decode()
    assert collection_url("persona") in page
    assert CATALOG in client.get(reverse("generation:catalog")).content.decode()


def test_the_archive_is_built_once_per_version(client, imported, monkeypatch, isolated_var_dir):
    builds = []
    original = archive._archive_write
    monkeypatch.setattr(archive, "_archive_write", lambda **kw: builds.append(1) or original(**kw))
    first = body(client.get(CATALOG))
    assert body(client.get(CATALOG)) == first
    assert len(builds) == 1
    assert client.get(CATALOG, HTTP_IF_NONE_MATCH=client.get(CATALOG)["ETag"]).status_code == 304
    assert len(builds) == 1

    # An edit is a new version: a new archive, the old one removed.
    example = Dataset.objects.get(slug="narcissism").examples.get(position=0)
    example.statement = "I was edited"
    example_save(example=example)
    changed = members(body(client.get(CATALOG)))
    assert len(builds) == 2 and b"I was edited" in changed["persona/narcissism.jsonl"]
    assert len(list((isolated_var_dir / "exports").glob("catalog-*"))) == 1


def test_a_generated_dataset_goes_under_its_collection(client, imported):
    from tests.builders import DatasetFactory, ExampleFactory

    dataset = DatasetFactory(slug="liberal", collection=CollectionFactory(slug="generated"), source_path="")
    ExampleFactory(dataset=dataset, position=0)
    from generation.catalog.services import dataset_refresh_stats

    dataset_refresh_stats(dataset=dataset)
    assert "generated/liberal.jsonl" in members(body(client.get(CATALOG)))


def test_downloads_are_rate_limited_and_unknown_ones_are_404(client, imported, settings, db):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "download": "2/minute"}
    assert client.get(CATALOG).status_code == 200
    assert client.get(collection_url("persona")).status_code == 200
    refused = client.get(CATALOG)
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # One budget with the per-dataset downloads.
    assert (
        client.get(reverse("generation:dataset-download", kwargs={"slug": "narcissism"})).status_code == 429
    )
    client.force_login(StaffFactory())
    assert client.get(CATALOG).status_code == 200


def test_unknown_or_empty_is_a_404(client, db):
    assert client.get(CATALOG).status_code == 404
    assert client.get(collection_url("nope")).status_code == 404
    CollectionFactory(slug="empty")
    assert client.get(collection_url("empty")).status_code == 404


def test_the_command_writes_the_same_archive(client, imported, tmp_path):
    call_command(
        "export_dataset", all=True, format="jsonl-archive", out=str(tmp_path / "out"), stderr=StringIO()
    )
    assert (tmp_path / "out" / "catalog.zip").read_bytes() == body(client.get(CATALOG))

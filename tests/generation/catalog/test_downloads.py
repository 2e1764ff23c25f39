"""The public whole-dataset downloads: a dataset's JSONL is written once per content version under
VAR_DIR (plain and gzip) and served from that file, with ETag / Last-Modified (304 on a conditional
request), a short public Cache-Control, gzip for clients that accept it, and the shared "download"
rate limit; an evaluation run's items download has the same limit."""

import gzip
import json

import pytest
from django.urls import reverse

from generation.catalog.services import dataset_refresh_stats, example_save
from tests.builders import (
    DatasetFactory,
    EvaluationItemFactory,
    EvaluationRunFactory,
    ExampleFactory,
    StaffFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset():
    dataset = DatasetFactory(slug="narcissism", json_ensure_ascii=False)
    for i in range(300):
        ExampleFactory(dataset=dataset, position=i, statement=f"I am statement {i} — naïve")
    return dataset_refresh_stats(dataset=dataset)


def url_of(dataset) -> str:
    return reverse("generation:dataset-download", kwargs={"slug": dataset.slug})


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_headers_for_caches(client, dataset):
    response = client.get(url_of(dataset))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="narcissism.jsonl"'
    assert response["ETag"].startswith('W/"')
    assert response["Last-Modified"]
    assert response["Cache-Control"] == "public, max-age=300"
    assert "Accept-Encoding" in response["Vary"]
    content = body(response)
    assert int(response["Content-Length"]) == len(content)
    lines = content.decode().splitlines()
    assert len(lines) == 300 and json.loads(lines[7])["statement"] == "I am statement 7 — naïve"


def test_a_conditional_request_is_a_304_until_the_examples_change(client, dataset):
    first = client.get(url_of(dataset))
    etag, modified = first["ETag"], first["Last-Modified"]
    revalidated = client.get(url_of(dataset), HTTP_IF_NONE_MATCH=etag)
    assert revalidated.status_code == 304
    # A 304 renews the cached copy's freshness and says what it varies on, like the 200 (RFC 9111).
    assert revalidated["Cache-Control"] == first["Cache-Control"]
    assert "Accept-Encoding" in revalidated["Vary"]
    assert client.get(url_of(dataset), HTTP_IF_MODIFIED_SINCE=modified).status_code == 304

    example = dataset.examples.get(position=7)
    example.statement = "I was edited"
    example_save(example=example)
    changed = client.get(url_of(dataset), HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert json.loads(body(changed).decode().splitlines()[7])["statement"] == "I was edited"


def test_gzip_when_the_client_accepts_it(client, dataset):
    plain = body(client.get(url_of(dataset)))
    zipped = client.get(url_of(dataset), HTTP_ACCEPT_ENCODING="br, gzip;q=0.8, deflate")
    assert zipped["Content-Encoding"] == "gzip"
    compressed = body(zipped)
    assert int(zipped["Content-Length"]) == len(compressed) < len(plain) / 3
    assert gzip.decompress(compressed) == plain
    # Both encodings are one representation's: the same validators.
    assert zipped["ETag"] == client.get(url_of(dataset))["ETag"]
    for refused in ("gzip;q=0", "identity", "deflate, br", ""):
        response = client.get(url_of(dataset), HTTP_ACCEPT_ENCODING=refused)
        assert "Content-Encoding" not in response, refused
        assert body(response) == plain
    assert client.get(url_of(dataset), HTTP_ACCEPT_ENCODING="*")["Content-Encoding"] == "gzip"


def test_the_export_is_written_once_per_version(
    client, dataset, isolated_var_dir, django_assert_max_num_queries
):
    body(client.get(url_of(dataset)))
    written = sorted(p.name for p in (isolated_var_dir / "exports").glob("dataset-*"))
    assert len(written) == 1  # one folder per version
    files = sorted(p.name for p in (isolated_var_dir / "exports" / written[0]).iterdir())
    assert files == ["dataset.jsonl", "dataset.jsonl.gz"]
    # The next download reads the file: the dataset's version, and no example.
    with django_assert_max_num_queries(2):
        body(client.get(url_of(dataset), HTTP_ACCEPT_ENCODING="gzip"))
    # A new version replaces the old files.
    example = dataset.examples.get(position=0)
    example_save(example=example)
    body(client.get(url_of(dataset)))
    rewritten = sorted(p.name for p in (isolated_var_dir / "exports").glob("dataset-*"))
    assert len(rewritten) == 1 and not set(rewritten) & set(written)


def test_downloads_are_rate_limited_for_anonymous_clients(client, dataset, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "download": "2/minute"}
    first = client.get(url_of(dataset))
    assert client.get(url_of(dataset)).status_code == 200
    refused = client.get(url_of(dataset))
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    # Revalidating a copy is cheap and does not count.
    assert client.get(url_of(dataset), HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    client.force_login(StaffFactory())
    assert client.get(url_of(dataset)).status_code == 200


def test_a_runs_items_download_has_the_same_limit(client, dataset, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "download": "1/minute"}
    run = EvaluationRunFactory(dataset=dataset)
    EvaluationItemFactory(run=run, example=dataset.examples.get(position=0))
    url = reverse("generation:run-items-download", kwargs={"pk": run.pk})
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 429
    # One budget for every download.
    assert client.get(url_of(dataset)).status_code == 429


def test_unknown_dataset_is_a_404(client, db):
    assert client.get("/datasets/nope/download.jsonl").status_code == 404

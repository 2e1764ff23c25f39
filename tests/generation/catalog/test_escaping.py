"""LM-written text is untrusted: every page that shows it must escape it."""

import pytest
from django.urls import reverse

from generation.catalog.services import dataset_refresh_stats
from generation.models import Job
from tests.builders import CollectionFactory, DatasetFactory, ExampleFactory, StaffFactory

pytestmark = pytest.mark.django_db

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    '"><svg onload=alert(3)>',
    "<a href=javascript:alert(4)>x</a>",
]


def assert_escaped(html: str) -> None:
    for payload in PAYLOADS:
        assert payload not in html, f"unescaped payload {payload!r}"
    assert "<script>alert" not in html
    assert "<img src=x" not in html
    assert "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or "\\u003Cscript\\u003E" in html


@pytest.fixture
def hostile():
    text = " ".join(PAYLOADS)
    collection = CollectionFactory(slug="hostile", name=f"Collection {text}", description=text)
    dataset = DatasetFactory(
        slug="hostile-data",
        collection=collection,
        behavior=f"behavior {text}",
        description=text,
        category="<b>cat</b>",
        import_report={"warnings": [f"warning {text}"]},
    )
    ExampleFactory(
        dataset=dataset,
        position=0,
        statement=f"statement {text}",
        answer_matching_behavior=" <script>alert(1)</script>",
        answer_not_matching_behavior=[" <img src=x onerror=alert(2)>", " No"],
        extra={"user_affiliation": text, "pronoun_options": PAYLOADS},
    )
    ExampleFactory(dataset=dataset, position=1, question=text, statement="")
    return dataset_refresh_stats(dataset=dataset)


def test_public_pages_escape_lm_text(client, hostile):
    urls = [
        "/",
        reverse("generation:collection-detail", kwargs={"slug": "hostile"}),
        hostile.get_absolute_url(),
        hostile.get_absolute_url() + "?q=" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        reverse("generation:example-detail", kwargs={"slug": hostile.slug, "position": 0}),
        reverse("generation:example-detail", kwargs={"slug": hostile.slug, "position": 1}),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.content.decode())


def test_search_query_is_escaped_when_reflected(client, hostile):
    response = client.get(hostile.get_absolute_url(), {"q": '"><script>alert(1)</script>'})
    html = response.content.decode()
    assert '"><script>alert(1)</script>' not in html
    assert "&quot;&gt;&lt;script&gt;" in html


def test_api_returns_json_not_html(client, hostile):
    for url in ["/api/examples/?dataset=hostile-data", "/api/datasets/hostile-data/", "/api/collections/"]:
        response = client.get(url, HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        assert response["Content-Type"].startswith("application/json")
    browsable = client.get("/api/examples/?dataset=hostile-data", HTTP_ACCEPT="text/html")
    assert browsable.status_code == 200
    assert_escaped(browsable.content.decode())


def test_admin_pages_escape_lm_text(client, hostile):
    client.force_login(StaffFactory(is_superuser=True))
    example = hostile.examples.get(position=0)
    urls = [
        reverse("admin:generation_dataset_changelist"),
        reverse("admin:generation_dataset_change", args=[hostile.pk]),
        reverse("admin:generation_example_changelist"),
        reverse("admin:generation_example_change", args=[example.pk]),
        reverse("admin:generation_collection_changelist"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_escaped(response.content.decode())


def test_job_page_escapes_errors_and_results(client, hostile):
    staff = StaffFactory()
    job = Job.objects.create(
        kind=Job.Kind.IMPORT,
        status=Job.Status.FAILED,
        error=" ".join(PAYLOADS),
        result={"files": [{"status": "failed", "dataset": "", "message": PAYLOADS[0], "warnings": PAYLOADS}]},
        created_by=staff,
    )
    client.force_login(staff)
    response = client.get(job.get_absolute_url())
    assert response.status_code == 200
    assert_escaped(response.content.decode())

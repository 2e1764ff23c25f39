"""JSON bodies of the API (mwe_site.parsers.DepthLimitedJSONParser, every DRF view through
REST_FRAMEWORK's DEFAULT_PARSER_CLASSES), tried on the annotation API's submit: a body nested deeper
than the limit is a 400 that stores nothing."""

import json

import pytest
from django.urls import reverse

from annotation.models import Response
from mwe_site.parsers import JSON_MAX_DEPTH
from tests.annotation.test_api import GOOD, client_for, next_task
from tests.builders import WorkerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def submit(project):
    client = client_for(WorkerFactory(projects=[project]))
    url = reverse("api-assignment-submit", args=[next_task(client).json()["id"]])

    def post(body: str):
        return client.generic("POST", url, body, content_type="application/json")

    return post


def nested(depth: int) -> str:
    """GOOD with one more key whose value nests lists so that the whole body is `depth` deep."""
    return json.dumps(GOOD)[:-1] + ', "x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def test_a_body_nested_100000_deep_is_a_400_not_a_500(submit):
    # Before: 500 (RecursionError inside json.loads).
    response = submit("[" * 100_000 + "]" * 100_000)
    assert response.status_code == 400
    assert response.json() == {"detail": f"JSON nested deeper than {JSON_MAX_DEPTH} levels."}
    assert not Response.objects.exists()
    # The assignment is untouched: the worker can still submit it.
    assert submit(json.dumps(GOOD)).status_code == 201


def test_depth_up_to_the_limit_is_parsed(submit):
    assert submit(nested(JSON_MAX_DEPTH + 1)).status_code == 400
    assert not Response.objects.exists()
    assert submit(nested(JSON_MAX_DEPTH)).status_code == 201


def test_brackets_inside_strings_do_not_count(submit):
    body = json.dumps({**GOOD, "note": '[{"[' * 1000 + '\\" ]]}'})
    assert submit(body).status_code == 201


def test_invalid_json_is_still_the_parsers_400(submit):
    response = submit('{"relevance": 4, ')
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")

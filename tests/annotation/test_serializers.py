"""The claim's and the submit's output serializers write their output out for speed; it must stay
exactly what DRF makes of their declared fields (which the schema documents)."""

import pytest
from rest_framework import serializers

from annotation.serializers import AssignmentSerializer, ResponseSerializer
from annotation.services.leases import assignment_submit, task_claim
from tests.annotation.builders import build_project
from tests.builders import WorkerFactory

pytestmark = pytest.mark.django_db


def declared_output(serializer_class, instance):
    return serializers.Serializer.to_representation(serializer_class(instance), instance)


def test_written_out_output_equals_the_declared_fields(db):
    project = build_project(items=2, instructions="Rate **each** one.\n\n<b>raw</b>")
    worker = WorkerFactory(projects=[project])
    assignment = task_claim(worker=worker, project=project)
    output = AssignmentSerializer(assignment).data
    assert output == declared_output(AssignmentSerializer, assignment)
    assert output["example"]["behavior_description"] == "Whether the model wants more power."
    assert "&lt;b&gt;raw&lt;/b&gt;" in output["instructions_html"]
    response = assignment_submit(
        assignment_id=assignment.pk, worker=worker, relevance=2, answer=" No", ambiguous=True
    )
    output = ResponseSerializer(response).data
    assert output == declared_output(ResponseSerializer, response)
    assert (output["relevance"], output["answer"], output["ambiguous"]) == (2, " No", True)
    # Whether the answer is the label would tell the worker the label: not in the output.
    assert "label_correct" not in output

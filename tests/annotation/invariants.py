"""The invariants every test checks against the tables, recomputed from scratch."""

from collections import Counter

from django.utils import timezone

from annotation.models import Assignment, ProjectItem, Response


def check_invariants(project, *, now=None):
    now = now or timezone.now()
    responses = Counter(Response.objects.filter(project=project).values_list("item_id", flat=True))
    live = Counter(
        Assignment.objects.filter(project=project, status=Assignment.Status.CLAIMED).values_list(
            "item_id", flat=True
        )
    )
    submitted = Counter(
        Assignment.objects.filter(project=project, status=Assignment.Status.SUBMITTED).values_list(
            "item_id", flat=True
        )
    )
    for item in ProjectItem.objects.filter(project=project):
        assert item.submitted_count == responses[item.pk] == submitted[item.pk], item
        assert item.reserved_count == responses[item.pk] + live[item.pk], item
        assert item.submitted_count <= item.overlap
        assert item.reserved_count <= item.overlap
    pairs = list(Response.objects.filter(project=project).values_list("item_id", "worker_id"))
    assert len(pairs) == len(set(pairs)), "a worker rated an item twice"
    live_pairs = list(
        Assignment.objects.filter(project=project, status=Assignment.Status.CLAIMED).values_list(
            "item_id", "worker_id"
        )
    )
    assert len(live_pairs) == len(set(live_pairs)), "two live leases for one (item, worker)"
    # Every response belongs to a submitted lease of the same worker and item.
    for response in Response.objects.filter(project=project).select_related("assignment"):
        assert response.assignment.status == Assignment.Status.SUBMITTED
        assert (response.assignment.item_id, response.assignment.worker_id) == (
            response.item_id,
            response.worker_id,
        )

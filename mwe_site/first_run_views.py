"""The first run's progress as JSON: what the home page and /explore/ poll while `make run` generates
the demo dataset and computes its map (static/js/first_run.js). Public, like those pages; four small
queries per request, rate limited like the other progress endpoints (scope "progress")."""

from django.http import JsonResponse
from django.views.decorators.http import require_safe

from mwe_site.first_run import first_run_status
from mwe_site.throttling import throttled


@require_safe
@throttled("progress", json=True)
def first_run_progress(request):
    response = JsonResponse(first_run_status().as_json())
    # The next poll must see the next state, never a cached copy of this one.
    response["Cache-Control"] = "no-store"
    return response

"""A job's page: its progress, for the researcher who started it; and that progress as JSON, which
the page polls to update itself in place (static/js/job_progress.js)."""

from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views import View
from django.views.generic import DetailView

from generation.jobs import selectors
from generation.models import Job
from mwe_site.permissions import StaffRequiredMixin


class JobDetailView(StaffRequiredMixin, DetailView):
    model = Job
    template_name = "generation/job_detail.html"
    context_object_name = "job"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["progress"] = selectors.job_progress(job=self.object)
        return context


def progress_response(data: dict) -> JsonResponse:
    """A progress answer: never kept by a cache, since the next poll must see the next state."""
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response


class JobProgressView(StaffRequiredMixin, View):
    """The job page's progress (staff, like the page): one row and the two queue queries."""

    http_method_names = ["get", "head"]

    def get(self, request, pk: int):
        job = get_object_or_404(Job, pk=pk)
        return progress_response(selectors.job_progress(job=job))

"""A job's page: its progress, for the researcher who started it."""

from django.views.generic import DetailView

from generation.models import Job
from mwe_site.permissions import StaffRequiredMixin


class JobDetailView(StaffRequiredMixin, DetailView):
    model = Job
    template_name = "generation/job_detail.html"
    context_object_name = "job"

"""Public pages of the catalog: plain generic views over the selectors; no login, no JavaScript."""

from __future__ import annotations

import json

from django.contrib.auth.mixins import UserPassesTestMixin
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_safe
from django.views.generic import DetailView, FormView, ListView, TemplateView

from generation import selectors
from generation.forms import ImportForm
from generation.jobs import import_job_create
from generation.models import Collection, Dataset, Example, Job

EXAMPLES_PER_PAGE = 50
SORT_CHOICES = [
    ("position", "File order"),
    ("-confidence", "Label confidence, highest first"),
    ("confidence", "Label confidence, lowest first"),
]


class LastPageOnOverflowMixin:
    """A page number past the end (e.g. after narrowing a search) shows the last page, not a 404."""

    def paginate_queryset(self, queryset, page_size):
        try:
            return super().paginate_queryset(queryset, page_size)
        except Http404:
            self.kwargs["page"] = "last"
            return super().paginate_queryset(queryset, page_size)


class CatalogView(TemplateView):
    template_name = "generation/catalog.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        collections = list(selectors.collection_list_with_datasets())
        context["collections"] = [c for c in collections if c.datasets.all()]
        context["dataset_total"] = sum(len(c.datasets.all()) for c in collections)
        context["example_total"] = sum(d.example_count for c in collections for d in c.datasets.all())
        return context


class CollectionDetailView(DetailView):
    model = Collection
    template_name = "generation/collection_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["datasets"] = self.object.datasets.order_by("purpose", "slug")
        return context


class DatasetDetailView(LastPageOnOverflowMixin, ListView):
    """A dataset and one page of its examples, narrowed by the GET form's search, label and sort."""

    template_name = "generation/dataset_detail.html"
    context_object_name = "examples"
    paginate_by = EXAMPLES_PER_PAGE

    def get_queryset(self):
        self.dataset = get_object_or_404(
            Dataset.objects.select_related("collection"), slug=self.kwargs["slug"]
        )
        self.search = self.request.GET.get("q", "")[:200]
        label = self.request.GET.get("label", "")
        # An unknown label or sort is ignored rather than an error: the form only offers valid ones.
        known = {value.strip(): value for value in self.dataset.label_counts}
        self.label = known.get(label.strip(), "")
        sort = self.request.GET.get("sort", "position")
        self.sort = sort if sort in selectors.EXAMPLE_SORTS else "position"
        return selectors.example_list(
            dataset=self.dataset, search=self.search, label=self.label, sort=self.sort
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.copy()
        query.pop("page", None)
        context.update(
            dataset=self.dataset,
            search=self.search,
            label=self.label,
            sort=self.sort,
            sort_choices=SORT_CHOICES,
            filtered=bool(self.search or self.label),
            query_string=query.urlencode(),
            has_confidence=self.dataset.mean_label_confidence is not None,
        )
        return context


@require_safe
def dataset_download(request, slug: str) -> StreamingHttpResponse:
    dataset = get_object_or_404(Dataset, slug=slug)
    response = StreamingHttpResponse(
        selectors.dataset_export_lines(dataset=dataset), content_type="application/jsonl; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{dataset.slug}.jsonl"'
    return response


class ExampleDetailView(DetailView):
    template_name = "generation/example_detail.html"
    context_object_name = "example"

    def get_object(self, queryset=None):
        return get_object_or_404(
            Example.objects.select_related("dataset__collection"),
            dataset__slug=self.kwargs["slug"],
            position=self.kwargs["position"],
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        example = self.object
        dataset = example.dataset
        siblings = dataset.examples.values_list("position", flat=True)
        context.update(
            dataset=dataset,
            record_json=json.dumps(
                selectors.example_record(dataset=dataset, example=example), indent=2, ensure_ascii=False
            ),
            # Lists and numbers are shown as JSON so that they read as in the file.
            extra_fields=[
                (key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                for key, value in example.extra.items()
                if key != "sentence_with_blank"
            ],
            previous_position=siblings.filter(position__lt=example.position).order_by("-position").first(),
            next_position=siblings.filter(position__gt=example.position).order_by("position").first(),
            duplicates=dataset.examples.filter(text_hash=example.text_hash)
            .exclude(pk=example.pk)
            .values_list("position", flat=True)[:20],
        )
        return context


class StaffRequiredMixin(UserPassesTestMixin):
    """Researchers' pages: staff only; others are sent to log in (or get 403 once logged in)."""

    def test_func(self) -> bool:
        return self.request.user.is_active and self.request.user.is_staff


class ImportView(StaffRequiredMixin, FormView):
    template_name = "generation/import_form.html"
    form_class = ImportForm

    def form_valid(self, form):
        job = import_job_create(
            upload=form.cleaned_data["file"],
            slug=form.cleaned_data["slug"] or None,
            collection_slug=form.cleaned_data["collection"] or None,
            created_by=self.request.user,
        )
        return redirect(job)


class JobDetailView(StaffRequiredMixin, DetailView):
    model = Job
    template_name = "generation/job_detail.html"
    context_object_name = "job"

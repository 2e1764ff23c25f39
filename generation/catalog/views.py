"""Public pages of the catalog: plain generic views over the selectors; no login, no JavaScript."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from django.core.exceptions import BadRequest
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import condition, require_safe
from django.views.generic import DetailView, FormView, ListView, TemplateView

from generation.catalog import selectors, services
from generation.catalog.exports import ExportError, archive, bundle
from generation.catalog.forms import ImportForm
from generation.catalog.jobs import import_job_create
from generation.models import Collection, Dataset, Example
from mwe_site.first_run import first_run_status
from mwe_site.pagination import LastPageOnOverflowMixin
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.search import search_problem
from mwe_site.throttling import throttle_refusal, throttled

EXAMPLES_PER_PAGE = 50
SORT_CHOICES = [
    ("position", "File order"),
    ("-confidence", "Label confidence, highest first"),
    ("confidence", "Label confidence, lowest first"),
]


def _is_staff(request) -> bool:
    return request.user.is_active and request.user.is_staff


class CatalogView(TemplateView):
    template_name = "generation/catalog.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        collections = list(selectors.collection_list_with_datasets())
        context["collections"] = [c for c in collections if c.datasets.all()]
        context["dataset_total"] = sum(len(c.datasets.all()) for c in collections)
        context["example_total"] = sum(d.example_count for c in collections for d in c.datasets.all())
        context["first_run"] = first_run_status(datasets=context["dataset_total"])
        # lm-eval and Inspect links only where there is a task to export (exports.bundle).
        context["has_tasks"] = any(d.is_scorable for c in collections for d in c.datasets.all())
        return context


class CollectionDetailView(DetailView):
    model = Collection
    template_name = "generation/collection_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["datasets"] = list(self.object.datasets.order_by("purpose", "slug"))
        context["has_tasks"] = any(d.is_scorable for d in context["datasets"])
        return context


class DatasetDetailView(LastPageOnOverflowMixin, ListView):
    """A dataset and one page of its examples, narrowed by the GET form's search, label and sort."""

    template_name = "generation/dataset_detail.html"
    context_object_name = "examples"
    paginate_by = EXAMPLES_PER_PAGE

    def get(self, request, *args, **kwargs):
        # A search past the bounds (mwe_site.search) is refused, on the page with its form; a valid
        # one counts against the shared "search" rate limit. Paging and filtering are not searches.
        self.search = request.GET.get("q", "")
        self.search_error = search_problem(query=self.search)
        if self.search_error is None and self.search.strip():
            refusal = throttle_refusal(request=request, scope="search", json=False)
            if refusal is not None:
                return refusal
        response = super().get(request, *args, **kwargs)
        if self.search_error is not None:
            response.status_code = 400
        return response

    def get_queryset(self):
        self.dataset = get_object_or_404(
            Dataset.objects.select_related("collection"), slug=self.kwargs["slug"]
        )
        label = self.request.GET.get("label", "")
        # An unknown label or sort is ignored rather than an error: the form only offers valid ones.
        known = {value.strip(): value for value in self.dataset.label_counts}
        self.label = known.get(label.strip(), "")
        sort = self.request.GET.get("sort", "position")
        self.sort = sort if sort in selectors.EXAMPLE_SORTS else "position"
        if self.search_error is not None:
            return Example.objects.none()
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
            search_error=self.search_error,
            label=self.label,
            sort=self.sort,
            sort_choices=SORT_CHOICES,
            filtered=bool(self.search or self.label),
            query_string=query.urlencode(),
            has_confidence=self.dataset.mean_label_confidence is not None,
            links=selectors.dataset_links(dataset=self.dataset, include_private=_is_staff(self.request)),
        )
        return context


# How long a client or a proxy may reuse a download without asking again; after that, a conditional
# request costs one query and a 304 while the dataset is unchanged.
DOWNLOAD_MAX_AGE = 300


def _download_dataset(request, slug: str) -> Dataset | None:
    # ETag and Last-Modified both need the dataset; look it up once per request.
    if not hasattr(request, "_download_dataset"):
        request._download_dataset = Dataset.objects.filter(slug=slug).first()
    return request._download_dataset


def _download_etag(request, slug: str) -> str | None:
    dataset = _download_dataset(request, slug)
    # Weak: the plain and the gzipped bytes are one representation's two encodings.
    return f'W/"{selectors.dataset_export_version(dataset=dataset)}"' if dataset else None


def _download_last_modified(request, slug: str):
    dataset = _download_dataset(request, slug)
    return dataset.updated_at if dataset else None


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip: named (or x-gzip), else `*`, with q > 0."""
    qualities: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        qualities[coding.lower()] = quality
    return qualities.get("gzip", qualities.get("x-gzip", qualities.get("*", 0.0))) > 0


def _cacheable(view):
    """Cache headers on the file and on the 304 that revalidates a copy of it (never on a refusal)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if response.status_code in (200, 304):
            patch_vary_headers(response, ["Accept-Encoding"])
            response["Cache-Control"] = f"public, max-age={DOWNLOAD_MAX_AGE}"
        return response

    return wrapper


@require_safe
@_cacheable
@condition(etag_func=_download_etag, last_modified_func=_download_last_modified)
@throttled("download")  # inside `condition`: revalidating a copy (a 304) does not count
def dataset_download(request, slug: str) -> FileResponse:
    """The dataset as JSONL in the released format, from a file written once per version
    (services.dataset_export_files), gzipped when the client accepts it."""
    dataset = _download_dataset(request, slug)
    if dataset is None:
        raise Http404("No such dataset.")
    files = services.dataset_export_files(dataset=dataset)
    zipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    response = FileResponse(
        open(files.gzip if zipped else files.plain, "rb"),  # noqa: SIM115  (FileResponse closes it)
        as_attachment=True,
        filename=f"{dataset.slug}.jsonl",
        content_type="application/jsonl; charset=utf-8",
    )
    if zipped:
        response["Content-Encoding"] = "gzip"
    return response


def _archive_scope(request, slug: str | None = None) -> archive.ArchiveScope | None:
    # ETag, Last-Modified and the view all need the scope (one query); look it up once per request.
    if not hasattr(request, "_archive_scope"):
        collection = None
        if slug is not None:
            collection = Collection.objects.filter(slug=slug).first()
        request._archive_scope = (
            None if slug is not None and collection is None else archive.archive_scope(collection=collection)
        )
    scope = request._archive_scope
    return scope if scope is not None and scope.datasets else None


def _archive_etag(request, slug: str | None = None) -> str | None:
    scope = _archive_scope(request, slug)
    return f'"{scope.version}"' if scope else None


def _archive_last_modified(request, slug: str | None = None):
    scope = _archive_scope(request, slug)
    return max(dataset.updated_at for dataset in scope.datasets) if scope else None


def _archive_response(request, slug: str | None, filename: str) -> FileResponse:
    scope = _archive_scope(request, slug)
    if scope is None:
        raise Http404("No datasets to download here.")
    return FileResponse(
        open(archive.archive_file(scope=scope), "rb"),  # noqa: SIM115  (FileResponse closes it)
        as_attachment=True,
        filename=filename,
        content_type="application/zip",
    )


@require_safe
@_cacheable
@condition(etag_func=_archive_etag, last_modified_func=_archive_last_modified)
@throttled("download")  # inside `condition`: revalidating a copy (a 304) does not count
def collection_archive_download(request, slug: str) -> FileResponse:
    """A collection's datasets as one zip of JSONL files in the released layout, written once per
    version of its datasets (generation.catalog.exports.archive)."""
    return _archive_response(request, slug, filename=f"{slug}.zip")


@require_safe
@_cacheable
@condition(etag_func=_archive_etag, last_modified_func=_archive_last_modified)
@throttled("download")
def catalog_archive_download(request) -> FileResponse:
    """Every dataset of the catalog as one zip in the released layout, like a collection's."""
    return _archive_response(request, None, filename="model-written-evals-catalog.zip")


# --- The exports for other tools (generation.catalog.exports.bundle): lm-eval, Inspect, Parquet -----


def _bundle_etag(request, target: bundle.Bundle) -> str:
    return f'"{target.version}"'


def _bundle_last_modified(request, target: bundle.Bundle):
    return target.last_modified


@_cacheable
@condition(etag_func=_bundle_etag, last_modified_func=_bundle_last_modified)
@throttled("download")  # inside `condition`: revalidating a copy (a 304) does not count
def _bundle_response(request, target: bundle.Bundle) -> FileResponse:
    return FileResponse(
        open(bundle.bundle_file(bundle=target), "rb"),  # noqa: SIM115  (FileResponse closes it)
        as_attachment=True,
        filename=f"{target.label}.zip",
        content_type="application/zip",
    )


def _bundle_download(
    request, *, export_format: str, scope: Callable[[], bundle.BundleScope | None]
) -> FileResponse:
    """Validates the request before anything counts or is built: an unknown format or a scope with
    nothing to export is a 404, a bad ?prompt_format a 400."""
    if export_format not in bundle.FORMATS:
        raise Http404("No such export format.")
    prompt_format = request.GET.get("prompt_format", "plain")
    if export_format != bundle.LM_EVAL and "prompt_format" in request.GET:
        raise BadRequest("Only the lm-eval export has a prompt format.")
    if prompt_format not in ("plain", "paper"):
        raise BadRequest("The prompt format is plain or paper.")
    found = scope()
    if found is None:
        raise Http404("No such dataset or collection.")
    try:
        target = bundle.Bundle(scope=found, kind=export_format, prompt_format=prompt_format)
    except ExportError as exc:
        raise Http404(str(exc)) from None
    return _bundle_response(request, target)


@require_safe
def dataset_export_download(request, slug: str, export_format: str) -> FileResponse:
    """The dataset as an lm-eval task folder, an Inspect task or a Parquet folder, zipped: what
    `export_dataset --dataset SLUG --format FORMAT` writes."""

    def scope():
        dataset = Dataset.objects.select_related("collection").filter(slug=slug).first()
        return bundle.bundle_scope(dataset=dataset) if dataset else None

    return _bundle_download(request, export_format=export_format, scope=scope)


@require_safe
def collection_export_download(request, slug: str, export_format: str) -> FileResponse:
    """A collection's datasets in one of those formats, as `export_dataset --collection SLUG`."""

    def scope():
        collection = Collection.objects.filter(slug=slug).first()
        return bundle.bundle_scope(collection=collection) if collection else None

    return _bundle_download(request, export_format=export_format, scope=scope)


@require_safe
def catalog_export_download(request, export_format: str) -> FileResponse:
    """Every dataset in one of those formats, as `export_dataset --all`."""
    return _bundle_download(request, export_format=export_format, scope=lambda: bundle.bundle_scope())


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
            links=selectors.example_links(example=example, include_private=_is_staff(self.request)),
        )
        return context


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

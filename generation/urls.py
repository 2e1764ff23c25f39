from django.urls import path

from generation.catalog import views
from generation.evaluation import suite_views
from generation.evaluation import views as evaluation_views
from generation.jobs import views as job_views
from generation.pipeline import views as generation_views
from mwe_site.first_run_views import first_run_progress

app_name = "generation"

urlpatterns = [
    path("", views.CatalogView.as_view(), name="catalog"),
    # What `make run` is doing on a new site, polled by the home page and /explore/.
    path("first-run.json", first_run_progress, name="first-run-progress"),
    path("collections/<slug:slug>/", views.CollectionDetailView.as_view(), name="collection-detail"),
    path("datasets/<slug:slug>/", views.DatasetDetailView.as_view(), name="dataset-detail"),
    path("datasets/<slug:slug>/download.jsonl", views.dataset_download, name="dataset-download"),
    path(
        "collections/<slug:slug>/download.zip",
        views.collection_archive_download,
        name="collection-download",
    ),
    path("download/catalog.zip", views.catalog_archive_download, name="catalog-download"),
    # The same datasets for other tools (lm-eval, inspect, parquet): docs/exports.md.
    path(
        "datasets/<slug:slug>/download/<slug:export_format>.zip",
        views.dataset_export_download,
        name="dataset-export-download",
    ),
    path(
        "collections/<slug:slug>/download/<slug:export_format>.zip",
        views.collection_export_download,
        name="collection-export-download",
    ),
    path(
        "download/catalog-<slug:export_format>.zip",
        views.catalog_export_download,
        name="catalog-export-download",
    ),
    path("import/", views.ImportView.as_view(), name="import"),
    path("jobs/<int:pk>/", job_views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<int:pk>/progress.json", job_views.JobProgressView.as_view(), name="job-progress"),
    path(
        "datasets/<slug:slug>/examples/<int:position>/",
        views.ExampleDetailView.as_view(),
        name="example-detail",
    ),
    path("datasets/<slug:slug>/evaluate/", evaluation_views.EvaluateView.as_view(), name="evaluate"),
    path("evaluations/", evaluation_views.RunListView.as_view(), name="run-list"),
    path("evaluations/compare/", evaluation_views.run_compare, name="run-compare"),
    # Suites: the staff's form first; the pages of results below (generation.evaluation.suite_views).
    path("evaluations/suites/new/", evaluation_views.SuiteCreateView.as_view(), name="suite-create"),
    path("evaluations/suites/", suite_views.suite_list, name="suite-list"),
    path("evaluations/suites/<int:pk>/", suite_views.suite_detail, name="suite-detail"),
    path("evaluations/suites/<int:pk>/compare/", suite_views.suite_compare, name="suite-compare"),
    path("evaluations/suites/<int:pk>/progress.json", suite_views.suite_progress, name="suite-progress"),
    path(
        "evaluations/suites/<int:pk>/datasets/<slug:slug>/",
        suite_views.suite_dataset,
        name="suite-dataset",
    ),
    path("evaluations/<int:pk>/", evaluation_views.RunDetailView.as_view(), name="run-detail"),
    path("evaluations/<int:pk>/progress.json", evaluation_views.run_progress_json, name="run-progress"),
    path("evaluations/<int:pk>/items.jsonl", evaluation_views.run_items_download, name="run-items-download"),
    path("generate/", generation_views.GenerateView.as_view(), name="generate"),
    path("generations/", generation_views.GenerationListView.as_view(), name="generation-list"),
    path("generations/<int:pk>/", generation_views.GenerationDetailView.as_view(), name="generation-detail"),
    path(
        "generations/<int:pk>/progress.json",
        generation_views.generation_progress,
        name="generation-progress",
    ),
    path(
        "generations/<int:pk>/cancel/",
        generation_views.GenerationCancelView.as_view(),
        name="generation-cancel",
    ),
    path(
        "generations/<int:pk>/candidates/<int:candidate_id>/",
        generation_views.CandidateDetailView.as_view(),
        name="candidate-detail",
    ),
]

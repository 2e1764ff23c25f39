from django.urls import path

from generation import views

app_name = "generation"

urlpatterns = [
    path("", views.CatalogView.as_view(), name="catalog"),
    path("collections/<slug:slug>/", views.CollectionDetailView.as_view(), name="collection-detail"),
    path("datasets/<slug:slug>/", views.DatasetDetailView.as_view(), name="dataset-detail"),
    path("datasets/<slug:slug>/download.jsonl", views.dataset_download, name="dataset-download"),
    path("import/", views.ImportView.as_view(), name="import"),
    path("jobs/<int:pk>/", views.JobDetailView.as_view(), name="job-detail"),
    path(
        "datasets/<slug:slug>/examples/<int:position>/",
        views.ExampleDetailView.as_view(),
        name="example-detail",
    ),
]

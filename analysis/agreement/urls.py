from django.urls import path

from analysis.agreement import views

app_name = "analysis"

urlpatterns = [
    path("", views.ProjectListView.as_view(), name="project-list"),
    path("<slug:project>/", views.DashboardView.as_view(), name="dashboard"),
    path("<slug:project>/figures.csv", views.FiguresCsvView.as_view(), name="figures-csv"),
    path("<slug:project>/figures.json", views.FiguresJsonView.as_view(), name="figures-json"),
    path("<slug:project>/disputed/", views.DisputedView.as_view(), name="disputed"),
    path("<slug:project>/pooled/", views.GroupView.as_view(scope="pooled"), name="pooled"),
    path(
        "<slug:project>/pooled/figures.json", views.GroupJsonView.as_view(scope="pooled"), name="pooled-json"
    ),
    path(
        "<slug:project>/pooled/examples.csv",
        views.GroupExamplesCsvView.as_view(scope="pooled"),
        name="pooled-examples",
    ),
    path(
        "<slug:project>/collections/<slug:slug>/",
        views.GroupView.as_view(scope="collection"),
        name="collection",
    ),
    path(
        "<slug:project>/collections/<slug:slug>/figures.json",
        views.GroupJsonView.as_view(scope="collection"),
        name="collection-json",
    ),
    path(
        "<slug:project>/collections/<slug:slug>/examples.csv",
        views.GroupExamplesCsvView.as_view(scope="collection"),
        name="collection-examples",
    ),
    path("<slug:project>/datasets/<slug:slug>/", views.GroupView.as_view(scope="dataset"), name="dataset"),
    path(
        "<slug:project>/datasets/<slug:slug>/figures.json",
        views.GroupJsonView.as_view(scope="dataset"),
        name="dataset-json",
    ),
    path(
        "<slug:project>/datasets/<slug:slug>/examples.csv",
        views.GroupExamplesCsvView.as_view(scope="dataset"),
        name="dataset-examples",
    ),
]

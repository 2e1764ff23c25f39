from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("", views.WorkView.as_view(), name="work"),
    # The invite link is join/#<token>: the token never is in a path (see JoinView).
    path("join/", views.JoinView.as_view(), name="join"),
    path("assignments/<int:pk>/submit/", views.assignment_submit_view, name="submit"),
    path("assignments/<int:pk>/skip/", views.assignment_skip_view, name="skip"),
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
    path("projects/new/", views.ProjectCreateView.as_view(), name="project-create"),
    path("projects/<slug:slug>/", views.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<slug:slug>/flag/", views.ProjectFlagView.as_view(), name="project-flag"),
    path(
        "projects/<slug:slug>/publication/",
        views.ProjectPublicationView.as_view(),
        name="project-publication",
    ),
    path(
        "projects/<slug:slug>/workers/<int:worker_id>/exclusion/",
        views.WorkerExclusionView.as_view(),
        name="worker-exclusion",
    ),
    path("projects/<slug:slug>/responses.csv", views.responses_csv, name="responses-csv"),
    path("projects/<slug:slug>/responses.jsonl", views.responses_jsonl, name="responses-jsonl"),
]

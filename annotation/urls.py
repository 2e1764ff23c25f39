from django.urls import path

from annotation import study_views, views

app_name = "annotation"

urlpatterns = [
    path("", views.WorkView.as_view(), name="work"),
    # The invite link is join/#<token>: the token never is in a path (see JoinView).
    path("join/", views.JoinView.as_view(), name="join"),
    # A crowd platform's study link: the platform's ids in the query (see study_views).
    path("study/done/", study_views.study_complete_view, name="study-complete"),
    path("study/<slug:token>/", study_views.StudyEntryView.as_view(), name="study-entry"),
    path("assignments/<int:pk>/submit/", views.assignment_submit_view, name="submit"),
    path("assignments/<int:pk>/skip/", views.assignment_skip_view, name="skip"),
    path("responses/<int:pk>/edit/", views.ResponseEditView.as_view(), name="response-edit"),
    path("projects/", views.ProjectListView.as_view(), name="project-list"),
    path("projects/new/", views.ProjectCreateView.as_view(), name="project-create"),
    path("projects/<slug:slug>/", views.ProjectDetailView.as_view(), name="project-detail"),
    path("projects/<slug:slug>/flag/", views.ProjectFlagView.as_view(), name="project-flag"),
    path(
        "projects/<slug:slug>/publication/",
        views.ProjectPublicationView.as_view(),
        name="project-publication",
    ),
    path("projects/<slug:slug>/workers/", views.ProjectWorkersView.as_view(), name="project-workers"),
    path(
        "projects/<slug:slug>/workers/<int:worker_id>/invite/",
        views.WorkerInviteView.as_view(),
        name="worker-invite",
    ),
    path("projects/<slug:slug>/preview/", views.ProjectPreviewView.as_view(), name="project-preview"),
    path(
        "projects/<slug:slug>/workers/<int:worker_id>/exclusion/",
        views.WorkerExclusionView.as_view(),
        name="worker-exclusion",
    ),
    path(
        "projects/<slug:slug>/responses/<int:response_id>/resolution/",
        views.ResponseFlagResolveView.as_view(),
        name="response-flag-resolve",
    ),
    path("projects/<slug:slug>/responses.csv", views.responses_csv, name="responses-csv"),
    path("projects/<slug:slug>/responses.jsonl", views.responses_jsonl, name="responses-jsonl"),
    path(
        "projects/<slug:slug>/export/<slug:fmt>.zip", views.ProjectExportView.as_view(), name="project-export"
    ),
    path(
        "projects/<slug:slug>/import/",
        views.ProjectInteropImportView.as_view(),
        name="project-interop-import",
    ),
    path("projects/<slug:slug>/study/", study_views.ProjectStudyView.as_view(), name="project-study"),
    path("projects/<slug:slug>/payments.csv", study_views.payments_csv, name="payments-csv"),
]

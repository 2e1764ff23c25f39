from django.urls import path

from annotation import researcher_api as api

urlpatterns = [
    path("projects/", api.ProjectListView.as_view(), name="api-project-list"),
    path("projects/<slug:slug>/", api.ProjectDetailView.as_view(), name="api-project-detail"),
    path("projects/<slug:slug>/workers/", api.ProjectWorkersView.as_view(), name="api-project-workers"),
    path(
        "projects/<slug:slug>/workers/<int:worker_id>/rotate-invite/",
        api.WorkerInviteRotateView.as_view(),
        name="api-project-worker-rotate-invite",
    ),
    path(
        "projects/<slug:slug>/workers/<int:worker_id>/revoke-invite/",
        api.WorkerInviteRevokeView.as_view(),
        name="api-project-worker-revoke-invite",
    ),
    path("projects/<slug:slug>/figures/", api.ProjectFiguresView.as_view(), name="api-project-figures"),
]

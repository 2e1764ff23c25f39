from django.urls import path

from annotation import api

urlpatterns = [
    path("tasks/next/", api.TaskNextView.as_view(), name="api-task-next"),
    path("assignments/<int:pk>/submit/", api.AssignmentSubmitView.as_view(), name="api-assignment-submit"),
    path("assignments/<int:pk>/release/", api.AssignmentReleaseView.as_view(), name="api-assignment-release"),
    path("assignments/<int:pk>/extend/", api.AssignmentExtendView.as_view(), name="api-assignment-extend"),
    path("responses/<int:pk>/", api.ResponseEditView.as_view(), name="api-response-edit"),
    path("progress/", api.ProgressView.as_view(), name="api-annotation-progress"),
]

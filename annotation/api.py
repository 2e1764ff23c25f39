"""The worker API: claim the next task, submit or release it, see one's progress.

Workers authenticate with a DRF token (`Authorization: Token ...`, from `create_workers`) or the
session of the worker page. A worker only ever sees their own assignments: another worker's
assignment id answers 404, exactly like one that does not exist."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, NotFound, PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from annotation import selectors
from annotation.models import AnnotationProject, Response, Worker
from annotation.serializers import (
    AssignmentSerializer,
    AssignmentStatusSerializer,
    EditSerializer,
    ErrorSerializer,
    NextTaskRequestSerializer,
    ProgressSerializer,
    ResponseSerializer,
    SubmitSerializer,
)
from annotation.services import errors, leases

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid input; nothing was stored."),
    401: OpenApiResponse(ErrorSerializer, description="Not authenticated."),
    403: OpenApiResponse(ErrorSerializer, description="Not a worker, or an excluded worker."),
}
NOT_FOUND = {404: OpenApiResponse(ErrorSerializer, description="No such assignment for this worker.")}
CONFLICT = {
    409: OpenApiResponse(
        ErrorSerializer,
        description="Already submitted or released, or the lease expired and the item went to another "
        "worker; nothing was stored.",
    )
}


class Conflict(PermissionDenied):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class WorkerTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, with the user's worker loaded by the same query (the permission
    check then needs none): one query, or none while this process remembers the token
    (`hotpath.token_cache`, a few seconds; see there what that means for revoked tokens)."""

    def authenticate_credentials(self, key):
        token = selectors.token_with_user_and_worker(key=key)
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        return (token.user, token)


class IsWorker(permissions.BasePermission):
    message = "Only annotation workers use this API."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        request.annotation_worker = selectors.worker_for_user(user=request.user)
        return request.annotation_worker is not None


class WorkerAPIView(APIView):
    authentication_classes = [WorkerTokenAuthentication, SessionAuthentication]
    # JSON only: no browsable HTML for a POST API, and content negotiation has one renderer to pick.
    renderer_classes = [JSONRenderer]
    permission_classes = [IsWorker]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "annotation"

    @property
    def worker(self) -> Worker:
        return self.request.annotation_worker

    def project(self, slug: str | None) -> AnnotationProject:
        project = selectors.worker_project(worker=self.worker, slug=slug)
        if project is None:
            raise NotFound("No active project for this worker.")
        return project

    def handle_exception(self, exc):
        if isinstance(exc, errors.AssignmentNotFound):
            exc = NotFound("No such assignment.")
        elif isinstance(exc, errors.AssignmentConflict):
            exc = Conflict(str(exc))
        elif isinstance(exc, errors.InvalidAnswer):
            exc = ValidationError({"answer": [str(exc)]})
        elif isinstance(exc, errors.WorkerExcluded):
            exc = PermissionDenied("This worker is excluded from annotation.")
        return super().handle_exception(exc)


class TaskNextView(WorkerAPIView):
    @extend_schema(
        operation_id="annotation_task_next",
        summary="Claim the next task",
        description="The worker's open lease if they hold one, else a new lease on an item they have "
        "never seen that still needs ratings. 204 when nothing is left for this worker.",
        request=NextTaskRequestSerializer,
        responses={
            200: AssignmentSerializer,
            204: OpenApiResponse(description="Nothing left for this worker."),
            **ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="No active project for this worker."),
        },
        tags=["annotation"],
    )
    def post(self, request: Request) -> ApiResponse:
        body = NextTaskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        project = self.project(body.validated_data.get("project"))
        assignment = leases.task_claim(worker=self.worker, project=project)
        if assignment is None:
            return ApiResponse(status=status.HTTP_204_NO_CONTENT)
        return ApiResponse(AssignmentSerializer(assignment).data)


class AssignmentSubmitView(WorkerAPIView):
    @extend_schema(
        operation_id="annotation_assignment_submit",
        summary="Submit the ratings of an assignment",
        description="The worker's answers to the three questions: relevance 1-5, the answer they chose "
        "(one of the task's answer_options; whether it is the label is worked out on the server and not "
        "returned) and whether the correct answer is ambiguous. A body with the old `label_correct` "
        "verdict is refused (400).",
        request=SubmitSerializer,
        responses={201: ResponseSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["annotation"],
    )
    def post(self, request: Request, pk: int) -> ApiResponse:
        body = SubmitSerializer(data=request.data)
        if not body.is_valid():
            raise ValidationError(body.errors)
        response = leases.assignment_submit(assignment_id=pk, worker=self.worker, **body.validated_data)
        return ApiResponse(ResponseSerializer(response).data, status=status.HTTP_201_CREATED)


class AssignmentReleaseView(WorkerAPIView):
    @extend_schema(
        operation_id="annotation_assignment_release",
        summary="Skip an assignment",
        description="Its slot returns to the pool at once; the worker will not get this item again.",
        request=None,
        responses={200: AssignmentStatusSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["annotation"],
    )
    def post(self, request: Request, pk: int) -> ApiResponse:
        assignment = leases.assignment_release(assignment_id=pk, worker=self.worker)
        return ApiResponse(AssignmentStatusSerializer(assignment).data)


class AssignmentExtendView(WorkerAPIView):
    @extend_schema(
        operation_id="annotation_assignment_extend",
        summary="Extend a live lease",
        request=None,
        responses={200: AssignmentStatusSerializer, **ERRORS, **NOT_FOUND, **CONFLICT},
        tags=["annotation"],
    )
    def post(self, request: Request, pk: int) -> ApiResponse:
        assignment = leases.assignment_extend(assignment_id=pk, worker=self.worker)
        return ApiResponse(AssignmentStatusSerializer(assignment).data)


class ResponseEditView(WorkerAPIView):
    @extend_schema(
        operation_id="annotation_response_edit",
        summary="Change a submitted answer",
        description="The worker's change of mind: all of a response's answers again (relevance, answer, "
        "ambiguous, and the optional comment and broken-example flag), accepted while the item's lease "
        "lasts and the project is open and unpublished. Another worker's response id answers 404, "
        "exactly like one that does not exist.",
        request=EditSerializer,
        responses={
            200: ResponseSerializer,
            **ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="No such response for this worker."),
            409: OpenApiResponse(
                ErrorSerializer,
                description="The lease is over, or the project is closed or published; nothing changed.",
            ),
        },
        tags=["annotation"],
    )
    def put(self, request: Request, pk: int) -> ApiResponse:
        body = EditSerializer(data=request.data)
        if not body.is_valid():
            raise ValidationError(body.errors)
        response = Response.objects.filter(pk=pk, worker=self.worker).first()
        if response is None:
            raise NotFound("No such response.")
        edited = leases.response_edit(worker=self.worker, response=response, **body.validated_data)
        return ApiResponse(ResponseSerializer(edited).data)


class ProgressView(WorkerAPIView):
    @extend_schema(
        operation_id="annotation_progress",
        summary="The worker's progress",
        request=None,
        parameters=[NextTaskRequestSerializer],
        responses={
            200: ProgressSerializer,
            **ERRORS,
            404: OpenApiResponse(ErrorSerializer, description="No active project for this worker."),
        },
        tags=["annotation"],
    )
    def get(self, request: Request) -> ApiResponse:
        query = NextTaskRequestSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        project = self.project(query.validated_data.get("project"))
        progress = selectors.worker_progress(worker=self.worker, project=project)
        return ApiResponse(ProgressSerializer({"project": project.slug, **progress}).data)

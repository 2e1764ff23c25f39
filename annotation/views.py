"""Server-rendered pages: the worker page (one example at a time), invite links, and the researchers'
project pages and exports. Thin views over annotation.services and annotation.selectors."""

from __future__ import annotations

import json
import math
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe
from django.views.generic import DetailView, FormView, ListView

from annotation import selectors
from annotation.forms import InteropImportForm, JoinForm, ProjectCreateForm, TaskForm, WorkersAddForm
from annotation.markdown import render_markdown
from annotation.models import AnnotationProject, Assignment, Response, Worker
from annotation.services import errors, interop, leases, projects, workers
from annotation.services.imports import AnnotationImportError
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.safe_csv import csv_lines


def _worker_or_none(request: HttpRequest) -> Worker | None:
    return selectors.worker_for_user(user=request.user)


class JoinView(View):
    """The invite link, /annotate/join/#<token>: GET shows a start button whose form posts the token
    (annotation/join.js copies it from the fragment, or the worker pastes it), POST signs the worker
    in. The token is never in a URL the server sees, so no log line can hold it; and a POST, so a
    link opened by a crawler or a third-party page cannot sign anyone in."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "annotation/join.html", {"form": JoinForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = JoinForm(request.POST)
        try:
            worker = workers.worker_join(invite_token=form.cleaned_token()) if form.is_valid() else None
        except errors.InviteExpired:
            return render(request, "annotation/invite_invalid.html", {"expired": True}, status=410)
        if worker is None:
            return render(request, "annotation/invite_invalid.html", {"expired": False}, status=404)
        worker_sign_in(request, worker)
        return redirect("annotation:work")


def worker_sign_in(request: HttpRequest, worker: Worker) -> None:
    """Sign this browser in as the worker (who has a site account) for a fixed
    MWE_WORKER_SESSION_SECONDS, and record the session, ending their oldest beyond what their
    projects allow. The invite link and the crowd platforms' study link (study_views) both do this."""
    login(request, worker.user, backend="django.contrib.auth.backends.ModelBackend")
    # A fixed end, counted from now: working on does not extend it.
    request.session.set_expiry(timezone.now() + timedelta(seconds=settings.MWE_WORKER_SESSION_SECONDS))
    if request.session.session_key is None:
        # login() flushed another account's session: save the new one now, to record its key.
        request.session.save()
    workers.worker_session_register(worker=worker, session_key=request.session.session_key)


class WorkView(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        worker = _worker_or_none(request)
        if worker is None:
            return render(request, "annotation/not_worker.html", status=403)
        project = selectors.worker_project(worker=worker, slug=request.GET.get("project") or None)
        context = {"worker": worker, "project": project}
        if project is not None and not worker.excluded:
            assignment = leases.task_claim(worker=worker, project=project)
            if assignment is None and worker.platform:
                # A crowd platform's participant with nothing left to do: their completion code.
                return redirect("annotation:study-complete")
            now = timezone.now()
            context["assignment"] = assignment
            context["progress"] = selectors.worker_progress(worker=worker, project=project)
            context["tasks"] = selectors.worker_task_progress(worker=worker, project=project)
            context["instructions_html"] = render_markdown(project.instructions)
            context["last_response"] = selectors.worker_last_response_editable(
                worker=worker, project=project, now=now
            )
            if assignment is not None:
                example = assignment.item.example
                context["form"] = TaskForm(example=example)
                context["example"] = example
                context["question"] = selectors.example_task_question(example=example)
                context["lease"] = _lease_left(assignment.expires_at, now=now)
        return render(request, "annotation/work.html", context)


def _lease_left(expires_at, *, now) -> dict:
    """What the page says of a lease's end: whole minutes left (rounded up, so "1 min left" until
    it is over) and the end as an ISO datetime, which annotate.js shows in the worker's time zone."""
    seconds = max(0.0, (expires_at - now).total_seconds())
    return {
        "seconds": math.floor(seconds),
        "minutes": math.ceil(seconds / 60),
        "expires_iso": expires_at.isoformat(),
        "expires_at": expires_at,
    }


def _assignment_action(request: HttpRequest, pk: int, action) -> Worker | None:
    worker = _worker_or_none(request)
    if worker is None:
        raise Http404("No such assignment.")
    try:
        action(worker)
    except errors.AssignmentNotFound:
        raise Http404("No such assignment.") from None
    except errors.AssignmentConflict as exc:
        messages.warning(request, f"Not saved: {exc}.")
    except errors.InvalidAnswer as exc:
        messages.error(request, f"Not saved: {exc}.")
    return worker


@require_POST
def assignment_submit_view(request: HttpRequest, pk: int) -> HttpResponse:
    worker = _worker_or_none(request)
    if worker is None:
        raise Http404("No such assignment.")
    assignment = get_object_or_404(Assignment.objects.select_related("item__example"), pk=pk, worker=worker)
    form = TaskForm(request.POST, example=assignment.item.example)
    if not form.is_valid():
        messages.error(request, "Not saved. " + _form_problems(form))
        return redirect("annotation:work")

    def submit(worker: Worker) -> None:
        data = form.cleaned_data
        server_ms = int((timezone.now() - assignment.claimed_at).total_seconds() * 1000)
        client_ms = data.get("time_on_task_ms")
        leases.assignment_submit(
            assignment_id=pk,
            worker=worker,
            relevance=data["relevance"],
            answer=data["answer"],
            ambiguous=data["ambiguous"],
            time_on_task_ms=min(client_ms, server_ms) if client_ms is not None else server_ms,
            comment=data["comment"],
            flagged_broken=data["flagged_broken"],
        )

    _assignment_action(request, pk, submit)
    return redirect("annotation:work")


def _form_problems(form: TaskForm) -> str:
    problems = [
        error
        for name in ("relevance", "answer", "ambiguous", "comment", "flagged_broken")
        for error in form.errors.get(name, [])
    ]
    return " ".join(problems or ["Please answer all three questions."])


class ResponseEditView(View):
    """The worker's "Change my last answer": their last response, shown with the example as the task
    showed it, for as long as its lease lasts (leases.response_edit decides; the work page links
    here only then). Anyone else's response is a 404, like an assignment that is not theirs."""

    def _response(self, request: HttpRequest, pk: int):
        worker = _worker_or_none(request)
        if worker is None:
            raise Http404("No such response.")
        response = get_object_or_404(
            Response.objects.select_related("assignment", "item__example__dataset", "project"),
            pk=pk,
            worker=worker,
        )
        return worker, response

    def _render(self, request: HttpRequest, response, form: TaskForm, *, status: int = 200) -> HttpResponse:
        example = response.item.example
        context = {
            "response": response,
            "project": response.project,
            "example": example,
            "question": selectors.example_task_question(example=example),
            "form": form,
            "lease": _lease_left(response.assignment.expires_at, now=timezone.now()),
        }
        return render(request, "annotation/work.html", {**context, "editing": True}, status=status)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        worker, response = self._response(request, pk)
        editable = selectors.worker_last_response_editable(worker=worker, project=response.project)
        if editable is None or editable.pk != response.pk:
            messages.warning(request, "That answer can no longer be changed.")
            return redirect("annotation:work")
        return self._render(
            request, response, TaskForm.for_response(response=response, example=response.item.example)
        )

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        worker, response = self._response(request, pk)
        form = TaskForm.for_response(response=response, example=response.item.example, data=request.POST)
        if not form.is_valid():
            messages.error(request, "Not changed. " + _form_problems(form))
            return self._render(request, response, form, status=400)
        data = form.cleaned_data
        try:
            leases.response_edit(
                worker=worker,
                response=response,
                relevance=data["relevance"],
                answer=data["answer"],
                ambiguous=data["ambiguous"],
                comment=data["comment"],
                flagged_broken=data["flagged_broken"],
            )
        except errors.AssignmentNotFound:
            raise Http404("No such response.") from None
        except (errors.AssignmentConflict, errors.WorkerExcluded, errors.InvalidAnswer) as exc:
            messages.warning(request, f"Not changed: {exc}.")
        else:
            messages.success(request, "Your last answer was changed.")
        return redirect("annotation:work")


@require_POST
def assignment_skip_view(request: HttpRequest, pk: int) -> HttpResponse:
    _assignment_action(request, pk, lambda worker: leases.assignment_release(assignment_id=pk, worker=worker))
    return redirect("annotation:work")


# --- Researchers ------------------------------------------------------------------------------------


class ProjectListView(StaffRequiredMixin, ListView):
    model = AnnotationProject
    template_name = "annotation/project_list.html"
    context_object_name = "projects"


class ProjectCreateView(StaffRequiredMixin, FormView):
    template_name = "annotation/project_form.html"
    form_class = ProjectCreateForm

    def form_valid(self, form):
        project = form.create(created_by=self.request.user)
        if project is None:
            return self.form_invalid(form)
        messages.success(self.request, f"Created {project.name}: {project.items.count()} items.")
        return redirect(project)


class ProjectDetailView(StaffRequiredMixin, DetailView):
    model = AnnotationProject
    template_name = "annotation/project_detail.html"
    context_object_name = "project"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(_project_page_context(self.request, self.object))
        return context


def _project_page_context(request: HttpRequest, project: AnnotationProject) -> dict:
    return {
        "progress": selectors.project_progress(project=project),
        "worker_rows": selectors.project_worker_stats(project=project),
        "datasets": project.datasets.all(),
        "instructions_html": render_markdown(project.instructions),
        # The link to paste into Prolific or Mechanical Turk, on this site's address (as the admin's
        # invite links are built).
        "study_url": selectors.project_study_url(project=project, base_url=request.build_absolute_uri("/")),
        "notes": selectors.project_flagged_responses(project=project),
        "workers_form": WorkersAddForm(),
        "interop_form": InteropImportForm(),
    }


@method_decorator(never_cache, name="dispatch")
class ProjectWorkersView(StaffRequiredMixin, View):
    """A researcher adds workers to the project; the response shows their invite links, on this
    site's address, this once (the page is not cached; a reload does not repeat the POST's links)."""

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        form = WorkersAddForm(request.POST)
        if not form.is_valid():
            context = {"project": project, **_project_page_context(request, project), "workers_form": form}
            return render(request, "annotation/project_detail.html", context, status=400)
        try:
            new = workers.workers_create(project=project, external_ids=form.cleaned_data["external_ids"])
        except ValidationError as exc:
            form.add_error("external_ids", exc)
            context = {"project": project, **_project_page_context(request, project), "workers_form": form}
            return render(request, "annotation/project_detail.html", context, status=400)
        return _project_page_with_invites(request, project, new)


def _project_page_with_invites(request: HttpRequest, project: AnnotationProject, new: list[Worker]):
    base_url = request.build_absolute_uri("/")
    invites = [selectors.worker_invite_row(worker=worker, base_url=base_url) for worker in new]
    context = {"project": project, **_project_page_context(request, project), "new_invites": invites}
    return render(request, "annotation/project_detail.html", context)


@method_decorator(never_cache, name="dispatch")
class WorkerInviteView(StaffRequiredMixin, View):
    """A new invite link for one of the project's workers (shown this once), or none: revoked."""

    def post(self, request: HttpRequest, slug: str, worker_id: int) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        worker = get_object_or_404(project.workers, pk=worker_id)
        action = request.POST.get("action")
        if action == "rotate":
            return _project_page_with_invites(request, project, [workers.worker_invite_rotate(worker=worker)])
        if action == "revoke":
            workers.worker_invite_revoke(worker=worker)
            messages.info(request, f"Revoked the invite link and API token of {worker}; they are signed out.")
            return redirect(project)
        return HttpResponseBadRequest("action must be rotate or revoke", content_type="text/plain")


class ProjectPreviewView(StaffRequiredMixin, View):
    """The worker page as a worker sees it, for one of the project's items, to read only: no lease
    is claimed and nothing is written; the form cannot be submitted."""

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        item = project.items.select_related("example__dataset").order_by("pk").first()
        context = {
            "project": project,
            "preview": True,
            "instructions_html": render_markdown(project.instructions),
        }
        if item is not None:
            example = item.example
            context["form"] = TaskForm(example=example)
            context["example"] = example
            context["question"] = selectors.example_task_question(example=example)
        return render(request, "annotation/work.html", context)


class ResponseFlagResolveView(StaffRequiredMixin, View):
    """A researcher marks a worker's flag or comment as dealt with (it stays on record)."""

    def post(self, request: HttpRequest, slug: str, response_id: int) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        try:
            leases.response_flag_resolve(project=project, response_id=response_id)
        except Response.DoesNotExist:
            raise Http404("No such response in this project.") from None
        messages.info(request, f"Marked response {response_id} as resolved.")
        return redirect(f"{project.get_absolute_url()}#worker-notes")


class ProjectFlagView(StaffRequiredMixin, View):
    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        flagged = workers.worker_flag_below_threshold(project=project)
        messages.info(request, f"Excluded {len(flagged)} worker(s) below the gold threshold.")
        return redirect(project)


class WorkerExclusionView(StaffRequiredMixin, View):
    def post(self, request: HttpRequest, slug: str, worker_id: int) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        worker = get_object_or_404(project.workers, pk=worker_id)
        excluded = request.POST.get("excluded") == "1"
        workers.worker_set_excluded(worker=worker, excluded=excluded, reason="excluded by a researcher")
        return redirect(project)


class ProjectPublicationView(StaffRequiredMixin, View):
    """Publish the project's results (closing it), or hide them again."""

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        action = request.POST.get("action")
        if action == "publish":
            if request.POST.get("confirm") != "on":
                messages.error(
                    request, "Not published. Tick the box to confirm that the ratings become public."
                )
                return redirect(project)
            projects.project_publish(project=project)
            messages.success(
                request, f"Published {project.name}: the project is closed and its ratings are public."
            )
        elif action == "unpublish":
            projects.project_unpublish(project=project)
            messages.info(request, f"Unpublished {project.name}: its ratings are no longer public.")
        else:
            return HttpResponseBadRequest("action must be publish or unpublish", content_type="text/plain")
        return redirect(project)


def _staff_project(request: HttpRequest, slug: str) -> AnnotationProject:
    if not (request.user.is_active and request.user.is_staff):
        raise Http404("No such project.")
    return get_object_or_404(AnnotationProject, slug=slug)


@require_safe
@login_required  # anonymous: the login page, like every researcher page; workers: 404
def responses_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    project = _staff_project(request, slug)
    lines = csv_lines(fieldnames=selectors.EXPORT_FIELDS, rows=selectors.project_export_rows(project=project))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-responses.csv"'
    return response


@require_safe
@login_required
def responses_jsonl(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    project = _staff_project(request, slug)
    lines = (json.dumps(row) + "\n" for row in selectors.project_export_rows(project=project))
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-responses.jsonl"'
    return response


# --- Label Studio and Argilla (annotation.services.interop) -------------------------------------------


class ProjectExportView(StaffRequiredMixin, View):
    """The project as a Label Studio project or an Argilla dataset: one .zip to download."""

    def get(self, request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        if fmt not in interop.FORMATS:
            raise Http404("No such export format.")
        response = HttpResponse(
            interop.project_export_zip(project=project, format=fmt), content_type="application/zip"
        )
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{fmt}.zip"'
        return response


@method_decorator(never_cache, name="dispatch")
class ProjectInteropImportView(StaffRequiredMixin, View):
    """Ratings from a Label Studio export or an Argilla dataset into this project: all or nothing."""

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        form = InteropImportForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                summary = interop.ratings_import_upload(
                    data=upload.read(interop.MAX_IMPORT_BYTES + 1),
                    filename=upload.name,
                    format=form.cleaned_data["format"],
                    project_slug=project.slug,
                )
            except AnnotationImportError as exc:
                form.add_error("file", ["Nothing imported.", *exc.errors[:50]])
            else:
                messages.success(request, f"Imported from {upload.name}: {summary.describe()}.")
                return redirect(project)
        context = {"project": project, **_project_page_context(request, project), "interop_form": form}
        return render(request, "annotation/project_detail.html", context, status=400)

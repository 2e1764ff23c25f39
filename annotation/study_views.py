"""Pages of the crowd platforms' study links (Prolific, Amazon Mechanical Turk): the participant's
way in and their completion page, and the researchers' study settings and payment report. Thin
views over annotation.services.studies and annotation.selectors."""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_safe

from annotation import selectors
from annotation.forms import ProjectStudyForm
from annotation.markdown import render_markdown
from annotation.models import AnnotationProject, StudyPlatform
from annotation.services import studies
from annotation.views import _staff_project, worker_sign_in
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.safe_csv import csv_lines
from mwe_site.throttling import throttle_refusal

# The browser session remembers which study session it entered with (a participant may have several).
STUDY_SESSION_KEY = "annotation_study_session"
# Seconds the completion page shows the code before it sends a Prolific participant back.
REDIRECT_SECONDS = 5


def _refused(request: HttpRequest, *, title: str, message: str, status: int) -> HttpResponse:
    return render(
        request, "annotation/study_refused.html", {"title": title, "message": message}, status=status
    )


def _closed(request: HttpRequest, *, known: bool = True) -> HttpResponse:
    """A closed study (410), or a link no project has (404: mistyped, or replaced long ago)."""
    return _refused(
        request,
        title="This study is closed" if known else "This study link is not valid",
        message="This study link takes no participants. If the platform sent you here, return the study "
        "there and contact the researchers.",
        status=410 if known else 404,
    )


class StudyEntryView(View):
    """/annotate/study/<token>/?<the platform's ids>: GET shows the study and a Start button (for a
    Mechanical Turk preview, the study only); the button POSTs, with CSRF, to the same address, which
    finds or creates the participant and signs the browser in. A POST, not the GET, so a link opened
    by a crawler or a third-party page creates no one and signs no one in."""

    def _project(self, token: str) -> AnnotationProject | None:
        return AnnotationProject.objects.filter(study_token=token).first()

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        project = self._project(token)
        if project is None or not project.is_active or not project.study_platform:
            return _closed(request, known=project is not None)
        try:
            ids = studies.study_ids_parse(platform=project.study_platform, query=request.GET)
        except studies.StudyIdsInvalid as exc:
            return _invalid(request, project, exc)
        context = {
            "project": project,
            "platform": StudyPlatform(project.study_platform).label,
            "preview": ids.preview,
            "instructions_html": render_markdown(project.instructions),
            "action": request.get_full_path(),
        }
        return render(request, "annotation/study_start.html", context)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        refusal = throttle_refusal(request=request, scope="study", json=False)
        if refusal is not None:
            return refusal
        project = self._project(token)
        if project is None:
            return _closed(request, known=False)
        try:
            entry = studies.study_participant_enter(
                project=project, platform=project.study_platform, query=request.GET
            )
        except studies.StudyLinkClosed:
            return _closed(request)
        except studies.StudyIdsInvalid as exc:
            return _invalid(request, project, exc)
        except studies.StudyParticipantExcluded:
            return _excluded(request)
        if entry.ids.preview:
            return _refused(
                request,
                title="Accept the HIT first",
                message="This is a preview: accept the HIT on Mechanical Turk to start.",
                status=400,
            )
        worker_sign_in(request, entry.worker)
        request.session[STUDY_SESSION_KEY] = entry.study_session.pk
        if entry.finished:
            return redirect("annotation:study-complete")
        return redirect(f"{reverse('annotation:work')}?project={project.slug}")


def _invalid(request: HttpRequest, project: AnnotationProject, exc: Exception) -> HttpResponse:
    platform = StudyPlatform(project.study_platform).label
    return _refused(
        request,
        title="This study link is incomplete",
        message=f"The link did not come with valid {platform} ids: {exc}. Open the study from {platform}, "
        "which fills them in.",
        status=400,
    )


def _excluded(request: HttpRequest) -> HttpResponse:
    return _refused(
        request,
        title="You can no longer take part",
        message="The researchers have stopped giving you tasks in this study. Please return the study on "
        "the platform; contact the researchers if you think this is a mistake.",
        status=403,
    )


@require_safe
# Mechanical Turk's own form is posted from this page, to one of its two hosts: allowed here only.
@csp_update({"form-action": list(studies.MTURK_SUBMIT_HOSTS)})
def study_complete_view(request: HttpRequest) -> HttpResponse:
    """The participant's completion page: the project's completion code, and the way back to the
    platform (Prolific: its completion URL, followed after a few seconds by annotation/study_complete.js;
    Mechanical Turk: a form that posts the assignment to its turkSubmitTo). Only once they are
    finished (`studies.study_participant_finish`); before that, back to their tasks."""
    worker = selectors.worker_for_user(user=request.user)
    if worker is None:
        return render(request, "annotation/not_worker.html", status=403)
    session = studies.study_session_current(worker=worker, session_id=request.session.get(STUDY_SESSION_KEY))
    if session is None:
        return redirect("annotation:work")
    if worker.excluded:
        return _excluded(request)
    project = session.project
    finished = studies.study_participant_finish(worker=worker, study_session=session)
    if finished is None:
        return redirect(f"{reverse('annotation:work')}?project={project.slug}")
    context = {
        "project": project,
        "session": finished,
        "platform": StudyPlatform(finished.platform).label,
        "mturk": finished.platform == StudyPlatform.MTURK,
        "done": selectors.worker_task_progress(worker=worker, project=project)["done"],
        "redirect_seconds": REDIRECT_SECONDS,
    }
    if finished.platform == StudyPlatform.MTURK:
        context["submit_url"] = f"{finished.submit_to}/mturk/externalSubmit"
    return render(request, "annotation/study_complete.html", context)


# --- Researchers ------------------------------------------------------------------------------------


class ProjectStudyView(StaffRequiredMixin, View):
    """The project's study link and payment settings: turn the link on or off, change it, rotate it."""

    def get(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        return self._render(request, project, ProjectStudyForm.for_project(project))

    def post(self, request: HttpRequest, slug: str) -> HttpResponse:
        project = get_object_or_404(AnnotationProject, slug=slug)
        form = ProjectStudyForm.for_project(project, data=request.POST)
        if not form.is_valid():
            return self._render(request, project, form, status=400)
        rotate = request.POST.get("action") == "rotate"
        try:
            project = studies.project_study_link_set(
                project=project, rotate=rotate, **form.study_link_kwargs()
            )
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
            return self._render(request, project, form, status=400)
        if not project.study_token:
            messages.info(request, "The study link is off: only invite links sign workers in.")
        elif rotate:
            messages.success(request, "New study link: the old one lets no one in any more.")
        else:
            messages.success(request, "Study settings saved.")
        return redirect(project)

    def _render(self, request: HttpRequest, project, form, *, status: int = 200) -> HttpResponse:
        context = {
            "project": project,
            "form": form,
            "study_url": selectors.project_study_url(
                project=project, base_url=request.build_absolute_uri("/")
            ),
        }
        return render(request, "annotation/study_settings.html", context, status=status)


@require_safe
@login_required  # anonymous: the login page, like every researcher page; workers: 404
def payments_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    """The payment report (`selectors.project_payment_rows`) as CSV, its cells made safe for
    spreadsheets (mwe_site.safe_csv)."""
    project = _staff_project(request, slug)
    rows = selectors.project_payment_rows(project=project)
    response = StreamingHttpResponse(
        csv_lines(fieldnames=selectors.PAYMENT_FIELDS, rows=rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-payments.csv"'
    response["Cache-Control"] = "no-store"
    return response

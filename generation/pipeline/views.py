"""Pages of dataset generation: starting a run (staff), the list of runs, a run with its candidates
and one candidate (public: a generated dataset is public, and so is how it was made). Thin views over
generation.pipeline.run, generation.pipeline.jobs and generation.jobs.services (writes) and
generation.pipeline.selectors (reads)."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_safe
from django.views.generic import DetailView, FormView, ListView

from generation.evaluation.selectors import run_error_visible
from generation.jobs.selectors import run_progress
from generation.jobs.services import job_cancel
from generation.jobs.views import progress_response
from generation.models import Candidate, GenerationRun
from generation.pipeline import selectors
from generation.pipeline.forms import GenerateForm
from generation.pipeline.jobs import generation_job_create
from generation.pipeline.methods.base import PAPER
from generation.pipeline.run import GenerationError, generation_run_create, run_sampling, run_spec
from generation.pipeline.selection import ASKED
from mwe_site.pagination import LastPageOnOverflowMixin
from mwe_site.permissions import StaffRequiredMixin
from mwe_site.throttling import throttled

CANDIDATES_PER_PAGE = 50
RUNS_PER_PAGE = 50


def _as_text(value) -> str:
    """Spec and provenance values as they read in JSON, strings as they are."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _provenance(info: dict) -> dict:
    """A model's recorded info, flattened for a table of facts."""
    return {
        "spec": info.get("spec", ""),
        "name": info.get("name", ""),
        "backend": info.get("backend", ""),
        "fingerprint": info.get("fingerprint", ""),
        "versions": sorted((info.get("versions") or {}).items()),
        "details": [(k, _as_text(v)) for k, v in sorted((info.get("details") or {}).items())],
    }


def _calibration(calibration: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """The phases a run calibrated, as the pipeline records them ({phase: {"method": "batch",
    "mean_answer": {question: each choice's mean probability}}, None for a phase it did not):
    [(phase, [(question, its choices' means)])]."""
    return [
        (
            phase,
            sorted(
                (question, " / ".join(f"{p:.3f}" for p in means))
                for question, means in entry["mean_answer"].items()
            ),
        )
        for phase, entry in calibration.items()
        if entry
    ]


def _sampling(sampling: dict) -> dict:
    """A run's recorded sampling, for a table: its profile, whether that is the paper's, and one row
    per phase with the stop sequences as they read in JSON (a newline shows as \\n)."""
    phases = []
    for phase, values in (sampling.get("phases") or {}).items():
        stop = " ".join(json.dumps(sequence) for sequence in values.get("stop", []))
        phases.append({**values, "phase": phase, "stop": stop})
    return {
        "profile": sampling.get("profile", ""),
        "is_paper": sampling.get("profile") == PAPER,
        "phases": phases,
        "calibrating": any(values.get("calibrate") for values in phases),
    }


def _asked(scores: dict) -> list[dict]:
    """The questions a candidate's discriminator answered, as stored when it was scored: each one's
    prompt, and its choices with their raw probabilities."""
    raw = scores.get("raw_p") or {}
    return [
        {
            "name": name,
            "prompt": question["prompt"],
            "choices": list(zip(question["choices"], raw.get(name, []), strict=False)),
        }
        for name, question in (scores.get(ASKED) or {}).items()
    ]


class GenerateView(StaffRequiredMixin, FormView):
    template_name = "generation/generation_form.html"
    form_class = GenerateForm

    def form_valid(self, form):
        try:
            # One transaction: a run is never left queued without the job that would run it, and the
            # job reaches Celery only once both rows are committed.
            with transaction.atomic():
                run = generation_run_create(spec=form.spec, created_by=self.request.user)
                generation_job_create(run=run, created_by=self.request.user)
        except GenerationError as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        return redirect(run)


class GenerationListView(LastPageOnOverflowMixin, ListView):
    template_name = "generation/generation_list.html"
    context_object_name = "runs"
    paginate_by = RUNS_PER_PAGE

    def get_queryset(self):
        return selectors.generation_run_list()


class GenerationDetailView(LastPageOnOverflowMixin, ListView):
    """A run's status, spec, provenance and counts, and one page of its candidates."""

    template_name = "generation/generation_detail.html"
    context_object_name = "candidates"
    paginate_by = CANDIDATES_PER_PAGE

    def get_queryset(self):
        try:
            self.run = selectors.generation_run_get(pk=self.kwargs["pk"])
        except GenerationRun.DoesNotExist:
            raise Http404("No such generation run.") from None
        self.summary = selectors.generation_run_summary(run=self.run)
        get = self.request.GET
        # Unknown filter values are ignored rather than errors: the form only offers valid ones.
        self.filters = {
            "decision": get.get("decision", "") if get.get("decision") in Candidate.Decision.values else "",
            "label": {label.strip(): label for label in self.summary.labels}.get(
                get.get("label", "").strip(), ""
            ),
            "reason": get.get("reason", "") if get.get("reason") in dict(self.summary.reasons) else "",
        }
        return selectors.candidate_list(run=self.run, **self.filters)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        run, job = self.run, self.run.job
        in_progress = run.is_in_progress
        # The page says why a stalled run stopped and stops refreshing.
        stalled = run.is_stalled
        on_page = {c.pk for c in context["candidates"]}
        for candidate in context["candidates"]:
            # A twin on this page is a jump down the table; elsewhere, its own page.
            twin = candidate.duplicate_of_id
            candidate.twin_url = (
                None
                if twin is None
                else f"#candidate-{twin}"
                if twin in on_page
                else reverse("generation:candidate-detail", kwargs={"pk": run.pk, "candidate_id": twin})
            )
        query = self.request.GET.copy()
        query.pop("page", None)
        discriminator = run.discriminator_info or {}
        spec = run_spec(run)
        context.update(
            run=run,
            job=job,
            in_progress=in_progress and not stalled,
            progress=run_progress(run=run) if in_progress and not stalled else None,
            job_ended=stalled,
            show_errors=run_error_visible(user=self.request.user),
            cancellable=in_progress and not stalled and job is not None and not job.cancel_requested,
            spec_rows=[(key, _as_text(value)) for key, value in (run.spec or {}).items()],
            subject_clause=spec.framing_words.clause,
            sampling=_sampling(run_sampling(run)),
            generator=_provenance(run.generator_info or {}),
            discriminator=_provenance(discriminator),
            embedder=_provenance(discriminator.get("embedder") or {}),
            calibration=_calibration(discriminator.get("calibration") or {}),
            counts=self.summary.counts,
            dropped=self.summary.dropped,
            reasons=self.summary.reasons,
            labels=[(label, label.strip()) for label in self.summary.labels],
            decisions=Candidate.Decision.choices,
            filters={**self.filters, "label": self.filters["label"].strip()},
            filtered=any(self.filters.values()),
            query_string=query.urlencode(),
        )
        return context


@require_safe
@throttled("progress", json=True)
def generation_progress(request, pk: int):
    """A run's progress as its page polls it (public, like the page)."""
    run = get_object_or_404(GenerationRun.objects.select_related("job"), pk=pk)
    return progress_response(run_progress(run=run))


class GenerationCancelView(StaffRequiredMixin, View):
    """POST only: asks the run's job to stop at its next checkpoint."""

    http_method_names = ["post"]

    def post(self, request, pk: int):
        run = get_object_or_404(GenerationRun.objects.select_related("job"), pk=pk)
        if run.job is not None and run.is_in_progress and not run.is_stalled:
            job_cancel(job=run.job)
        return redirect(run)


class CandidateDetailView(DetailView):
    template_name = "generation/candidate_detail.html"
    context_object_name = "candidate"

    def get_object(self, queryset=None):
        try:
            return selectors.candidate_get(run_pk=self.kwargs["pk"], pk=self.kwargs["candidate_id"])
        except Candidate.DoesNotExist:
            raise Http404("No such candidate.") from None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        candidate = self.object
        scores = candidate.scores or {}
        context.update(
            run=candidate.run,
            raw_scores=sorted(
                (name, " / ".join(f"{p:.4f}" for p in probabilities))
                for name, probabilities in (scores.get("raw_p") or {}).items()
            ),
            scores=sorted((k, v) for k, v in scores.items() if k not in ("raw_p", ASKED)),
            asked=_asked(scores),
            parsed=sorted((k, _as_text(v)) for k, v in (candidate.parsed or {}).items()),
        )
        return context

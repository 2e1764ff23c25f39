"""What `make run` is doing on a new site, read from the jobs that do it: the demo dataset's
generation (load_demo queues it on an empty catalog, with the embedded model) and the explorer's map
(queued after the generation, or after the import of the released data). The home page and
/explore/ show it while it runs, and poll it (first_run_status) to update in place.

Only real state is reported: each step's text is built from its job's own status, message and
counts, as the worker records them (generation.jobs.services.job_progress)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.urls import reverse

from analysis.explorer.selectors import explorer_build_current
from generation.lm.specs import EMBEDDED_DEFAULT
from generation.models import Dataset, GenerationRun, Job
from generation.models.base import Status

# load_demo's slug for the demo dataset (generation/management/commands/load_demo.py imports it).
DEMO_SLUG = "demo-power-seeking"
WAITING = "waiting"  # a step that has not been queued yet, because it comes after another


@dataclass(frozen=True)
class FirstRunStep:
    key: str  # "generate" or "map"
    status: str  # a job Status value, or WAITING
    text: str  # what is happening, in one sentence
    done: int
    total: int | None
    url: str  # the public page that shows this step's work
    job_id: int | None  # its job (the job page is staff's)

    @property
    def is_active(self) -> bool:
        return self.status in (Status.QUEUED, Status.RUNNING, WAITING)

    @property
    def is_failed(self) -> bool:
        return self.status in (Status.FAILED, Status.CANCELLED)


@dataclass(frozen=True)
class FirstRun:
    steps: list[FirstRunStep]
    datasets: int  # datasets in the catalog now
    has_map: bool  # the global map exists
    demo: bool  # the demo generation exists (the embedded model's poor data is on this site)

    @property
    def stage(self) -> str:
        """Changes exactly when the page must show something new (a step begins or ends, the catalog
        or the map appears), not with each count: the polling page reloads when it changes."""
        steps = ",".join(f"{step.key}:{step.status}" for step in self.steps)
        return f"{steps};datasets={min(self.datasets, 1)};map={int(self.has_map)}"

    @property
    def active(self) -> bool:
        return any(step.is_active for step in self.steps)

    @property
    def visible(self) -> bool:
        """Whether the pages show it: on an empty catalog; while the demo is generated, or after its
        generation failed; while the first map is computed, or after that failed. A later rebuild of
        an existing map is the explorer's business (its staff bar), not a first run."""
        if self.datasets == 0:
            return True
        for step in self.steps:
            if (step.key == "generate" or not self.has_map) and (step.is_active or step.is_failed):
                return True
        return False

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "active": self.active,
            "datasets": self.datasets,
            "has_map": self.has_map,
            "steps": [
                {**asdict(step), "active": step.is_active, "failed": step.is_failed} for step in self.steps
            ],
        }


def _counts(job: Job | None) -> str:
    if job is None or not job.progress_total:
        return ""
    return f": {job.progress_done:,} of {job.progress_total:,}"


def _job_status(*, run_status: str, job: Job | None) -> str:
    # The job runs before its run starts (the worker loads the models first), and it can end before
    # the run is told (a model that fails to load): then the job's state is the true one.
    if job is not None and job.status == Status.RUNNING and run_status == Status.QUEUED:
        return job.status
    if job is not None and job.is_finished and job.status != Status.SUCCEEDED:
        return job.status
    return run_status


def _generate_step(run: GenerationRun) -> FirstRunStep:
    job = run.job
    status = _job_status(run_status=run.status, job=job)
    model = (run.spec or {}).get("generator") or EMBEDDED_DEFAULT
    if status == Status.QUEUED:
        text = f"Generating the demo dataset with {model}: waiting for the worker to load the models."
    elif status == Status.RUNNING:
        doing = (job.message if job is not None and job.message else "starting").lower()
        text = f"Generating the demo dataset with {model}: {doing}{_counts(job)}."
    elif status == Status.SUCCEEDED:
        examples = run.dataset.example_count if run.dataset is not None else 0
        text = f"The demo dataset is ready: {examples:,} examples written by {model}."
    elif status == Status.CANCELLED:
        text = "The demo dataset's generation was cancelled."
    else:
        text = "The demo dataset's generation failed; its page says how far it got."
    return FirstRunStep(
        key="generate",
        status=status,
        text=text,
        done=job.progress_done if job is not None else 0,
        total=job.progress_total if job is not None else None,
        url=run.get_absolute_url(),
        job_id=job.pk if job is not None else None,
    )


def _map_step(*, job: Job | None, after_generation: bool, has_map: bool) -> FirstRunStep | None:
    url = reverse("explorer:explorer")
    if job is None or (after_generation and not job.is_in_progress):
        if after_generation:
            text = "Then the map: it is computed once the demo dataset exists."
            return FirstRunStep("map", WAITING, text, 0, None, url, None)
        return None
    if job.status == Status.QUEUED:
        text = "Computing the map: waiting for the worker."
    elif job.status == Status.RUNNING:
        doing = (job.message or "starting").lower()
        text = f"Computing the map: {doing}{_counts(job)}."
    elif job.status == Status.SUCCEEDED or has_map:
        text = "The map is ready."
    else:
        text = f"Computing the map {'failed' if job.status == Status.FAILED else 'was cancelled'}."
    return FirstRunStep("map", job.status, text, job.progress_done, job.progress_total, url, job.pk)


def first_run_status(*, datasets: int | None = None) -> FirstRun:
    """Where the first run stands: three small queries whatever the size of the catalog, and a
    fourth that counts the datasets unless the caller knows how many there are."""
    if datasets is None:
        datasets = Dataset.objects.count()
    has_map = explorer_build_current(dataset=None) is not None
    run = GenerationRun.objects.filter(slug=DEMO_SLUG).select_related("job", "dataset").first()
    map_job = Job.objects.filter(kind=Job.Kind.EXPLORE).order_by("-created_at", "-pk").first()
    steps = []
    generating = False
    if run is not None:
        step = _generate_step(run)
        generating = step.is_active
        steps.append(step)
    map_step = _map_step(job=map_job, after_generation=generating, has_map=has_map)
    if map_step is not None:
        steps.append(map_step)
    return FirstRun(steps=steps, datasets=datasets, has_map=has_map, demo=run is not None)

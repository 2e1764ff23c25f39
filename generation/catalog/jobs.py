"""Import jobs: an uploaded released-format file, stored under VAR_DIR/uploads and imported by the
job worker (import_job_run, registered by generation.apps with its cleanup)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.utils.text import get_valid_filename

from generation.catalog.formats import EvalsFormatError
from generation.catalog.services import ImportResult, evals_import
from generation.jobs.services import job_create, job_fail, job_finish, job_progress
from generation.models import Job


def _upload_dir() -> Path:
    return Path(settings.VAR_DIR) / "uploads"


def import_job_create(
    *,
    upload: UploadedFile,
    slug: str | None,
    collection_slug: str | None,
    created_by: AbstractBaseUser | None,
) -> Job:
    """Stores an uploaded released-format file and queues its import."""
    name = get_valid_filename(Path(upload.name or "upload.jsonl").name) or "upload.jsonl"
    if not name.endswith(".jsonl"):
        name += ".jsonl"
    folder = _upload_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True)
    with (folder / name).open("wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    return job_create(
        kind=Job.Kind.IMPORT,
        params={
            "path": str(folder / name),
            "filename": name,
            "slug": slug or None,
            "collection": collection_slug or None,
        },
        created_by=created_by,
    )


def import_job_cleanup(job: Job) -> None:
    # The upload is only an input: the database holds the data and its sha256 once the job is over.
    shutil.rmtree(Path(job.params["path"]).parent, ignore_errors=True)


def import_job_run(job: Job) -> None:
    params = job.params
    path = Path(params["path"])
    job_progress(job=job, done=0, total=1, message=f"Validating {params['filename']}")
    try:
        results = evals_import(
            paths=[path],
            slug=params.get("slug"),
            collection_slug=params.get("collection"),
            created_by=job.created_by,
        )
    except EvalsFormatError as exc:
        job_fail(job=job, error=str(exc).replace(str(path), params["filename"]))
    else:
        _import_finish(job, results)
    # Only once the outcome is recorded: a job interrupted before then runs again, from its upload.
    import_job_cleanup(job)


def _import_finish(job: Job, results: list[ImportResult]) -> None:
    params = job.params
    path = Path(params["path"])
    summary = [
        {
            "status": r.status,
            "dataset": r.dataset_slug,
            "format": r.format,
            "examples": r.example_count,
            "warnings": r.warnings,
            "message": r.message.replace(str(path), params["filename"]),
        }
        for r in results
    ]
    failed = [r for r in results if r.status == "failed"]
    if failed:
        job_fail(
            job=job,
            error="\n".join(s["message"] for s in summary if s["status"] == "failed"),
            result={"files": summary},
        )
    else:
        job_finish(
            job=job, result={"files": summary}, message=f"{results[0].status} {results[0].dataset_slug}"
        )

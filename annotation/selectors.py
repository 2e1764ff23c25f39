"""Reads of the annotation app: a worker's project and progress, a project's progress, per-worker
statistics, gold accuracy and the response export."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.hotpath import (
    hot_cursor,
    instance_from_row,
    project_cache,
    token_cache,
    token_fields,
    token_sql,
    user_fields,
    worker_fields,
    worker_project_sql,
)
from annotation.models import (
    AnnotationProject,
    Assignment,
    ProjectItem,
    Response,
    StudyPlatform,
    StudySession,
    Worker,
)
from generation.models import Example


def token_with_user_and_worker(*, key: str) -> Token | None:
    """The API token `key` with its user, and the user's worker (None when the user is not a worker)
    cached on the user: one query, or none when this process looked the token up in the last few
    seconds (`hotpath.token_cache`). None when no such token exists."""
    row = token_cache.get(key)
    if row is None:
        with hot_cursor() as cursor:
            cursor.execute(token_sql(connection.vendor), [key])
            row = cursor.fetchone()
        if row is None:
            return None
        if settings.MWE_API_TOKEN_CACHE_SECONDS > 0:
            token_cache.put(key, tuple(row), seconds=settings.MWE_API_TOKEN_CACHE_SECONDS)
    tokens, users, workers = token_fields(), user_fields(), worker_fields()
    token = instance_from_row(Token, tokens, row[: len(tokens)])
    user = instance_from_row(get_user_model(), users, row[len(tokens) : len(tokens) + len(users)])
    worker_values = row[len(tokens) + len(users) :]
    worker = None
    if worker_values[0] is not None:
        worker = instance_from_row(Worker, workers, worker_values)
        Worker._meta.get_field("user").set_cached_value(worker, user)
    Worker._meta.get_field("user").remote_field.set_cached_value(user, worker)
    Token._meta.get_field("user").set_cached_value(token, user)
    return token


def worker_invite_url(*, worker: Worker, base_url: str = "") -> str:
    """The worker's invite link, its token in the fragment: a browser never sends the fragment, so
    the token is in no request line, Referer header or server log; the page's script posts it."""
    return f"{base_url.rstrip('/')}{reverse('annotation:join')}#{worker.invite_token}"


INVITE_FIELDS = ["worker_id", "external_id", "invite_url", "invite_expires_at"]


def worker_invite_row(*, worker: Worker, base_url: str = "") -> dict:
    """A worker's invite as a record of INVITE_FIELDS (what create_workers and rotate_invites write)."""
    expires = worker.invite_expires_at
    return {
        "worker_id": worker.pk,
        "external_id": worker.external_id,
        "invite_url": worker_invite_url(worker=worker, base_url=base_url) if expires else "",
        "invite_expires_at": expires.isoformat() if expires else "",
    }


def worker_for_user(*, user: AbstractBaseUser) -> Worker | None:
    """The user's worker; no query when it was loaded with the user (the API's token
    authentication does that)."""
    if not user.is_authenticated:
        return None
    try:
        return user.annotation_worker
    except Worker.DoesNotExist:
        return None


def worker_project(*, worker: Worker, slug: str | None = None) -> AnnotationProject | None:
    """The project a worker works on: the one named, or their first active one (one query, or none
    when this process answered the same question in the last few seconds: `hotpath.project_cache`)."""
    seconds = settings.MWE_API_TOKEN_CACHE_SECONDS
    found, row = project_cache.get((worker.pk, slug)) if seconds > 0 else (False, None)
    if not found:
        with hot_cursor() as cursor:
            cursor.execute(
                worker_project_sql(connection.vendor, by_slug=bool(slug)),
                [worker.pk, slug] if slug else [worker.pk],
            )
            row = cursor.fetchone()
        if seconds > 0:
            project_cache.put((worker.pk, slug), None if row is None else tuple(row), seconds=seconds)
    fields = list(AnnotationProject._meta.concrete_fields)
    return None if row is None else instance_from_row(AnnotationProject, fields, row)


def example_answer_options(*, example: Example) -> list[str]:
    """The answers a worker chooses from (paper §3.3, Q2: "What is the correct answer to this
    question?"), spelled as the example spells them (" Yes", " (A)"), in a fixed neutral order: by
    their text, so " No" comes before " Yes" and (A) before (B). Never behavior-matching first,
    which would tell the worker the label. Empty options are left out (an unlabelled example has
    none)."""
    options = {option for option in example.answer_choices if option and option.strip()}
    return sorted(options, key=lambda option: (option.strip(), option))


def example_task_question(*, example: Example) -> str:
    """The question as the evaluated model sees it: the released `question` field (for a persona
    statement, 'Is the following statement something you would say?' and the statement), or the
    example's text when it has none."""
    return example.question or example.text


def worker_progress(*, worker: Worker, project: AnnotationProject) -> dict[str, int]:
    """What a worker may see of progress: their own count and how many items still need ratings —
    never anyone else's answers."""
    done = Response.objects.filter(worker=worker, project=project).count()
    open_items = (
        ProjectItem.objects.filter(project=project, is_gold=False, submitted_count__lt=F("overlap"))
        .exclude(responses__worker=worker)
        .count()
    )
    return {"submitted": done, "items_needing_ratings": open_items}


def worker_task_progress(*, worker: Worker, project: AnnotationProject) -> dict[str, int]:
    """The worker page's "k of N": k is the worker's submitted responses in the project; N is the
    study quota for a participant of a study link (worker.platform set), else k plus the regular
    items the worker can still get (still short of their k ratings, never held by this worker
    before: a skipped or expired item does not come back; their own live lease does count). Two
    counting queries whatever the project's size."""
    done = Response.objects.filter(worker=worker, project=project).count()
    if worker.platform:
        return {"done": done, "total": max(project.study_quota, done)}
    held_before = Assignment.objects.filter(item=OuterRef("pk"), worker=worker).exclude(
        status=Assignment.Status.CLAIMED
    )
    can_still_get = (
        ProjectItem.objects.filter(project=project, is_gold=False, submitted_count__lt=F("overlap"))
        .filter(~Exists(held_before))
        .count()
    )
    return {"done": done, "total": done + can_still_get}


def worker_last_response_editable(
    *, worker: Worker, project: AnnotationProject, now: datetime | None = None
) -> Response | None:
    """The worker's last response in the project while they may still change it (until its lease's
    expiry, while the project is open and unpublished: `leases.response_edit` enforces the same
    rule); None otherwise. One query."""
    if not project.is_active or project.published_at is not None:
        return None
    last = (
        Response.objects.filter(worker=worker, project=project)
        .select_related("assignment")
        .order_by("-created_at", "-pk")
        .first()
    )
    if last is None or last.assignment.expires_at <= (now or timezone.now()):
        return None
    return last


# Flagged responses and comments listed on a project's page, newest first; the rest are counted.
FLAG_REVIEW_LIMIT = 200


def project_flagged_responses(*, project: AnnotationProject, limit: int = FLAG_REVIEW_LIMIT) -> dict:
    """What workers told the researchers: the responses flagged "this example is broken" or carrying
    a comment, those not yet resolved (`leases.response_flag_resolve`) first, then newest first, at
    most `limit` of them, with their example, dataset and worker; and how many there are in all and
    unresolved. Two queries."""
    noted = Response.objects.filter(project=project).filter(Q(flagged_broken=True) | ~Q(comment=""))
    counts = noted.aggregate(total=Count("pk"), open=Count("pk", filter=Q(flag_resolved_at__isnull=True)))
    open_first = Case(
        When(flag_resolved_at__isnull=True, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    rows = list(
        noted.select_related("worker", "item__example__dataset").order_by(open_first, "-created_at", "-pk")[
            :limit
        ]
    )
    return {"rows": rows, "total": counts["total"], "open": counts["open"], "limit": limit}


def project_progress(*, project: AnnotationProject) -> dict[str, int]:
    """Regular items done (k responses), in progress (some responses or live leases) and remaining
    (untouched); gold items are counted apart."""
    counts = ProjectItem.objects.filter(project=project).aggregate(
        total=Count("pk", filter=Q(is_gold=False)),
        done=Count("pk", filter=Q(is_gold=False, submitted_count__gte=F("overlap"))),
        untouched=Count("pk", filter=Q(is_gold=False, reserved_count=0)),
        gold=Count("pk", filter=Q(is_gold=True)),
    )
    counts["in_progress"] = counts["total"] - counts["done"] - counts["untouched"]
    counts["remaining"] = counts.pop("untouched")
    counts["responses"] = Response.objects.filter(project=project).count()
    return counts


def _gold_correct(response: Response) -> bool:
    # label_correct is (answer == label), so a gold answer is right when that agrees with the
    # item's gold_label_correct.
    item = response.item
    if item.gold_label_correct is not None and response.label_correct != item.gold_label_correct:
        return False
    return item.gold_ambiguous is None or response.ambiguous == item.gold_ambiguous


def worker_gold_accuracy(*, project: AnnotationProject) -> dict[int, tuple[int, int]]:
    """worker id -> (gold answers right, gold answers) in the project."""
    result: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    gold = Response.objects.filter(project=project, item__is_gold=True).select_related("item")
    for response in gold:
        tally = result[response.worker_id]
        tally[0] += _gold_correct(response)
        tally[1] += 1
    return {worker_id: (right, total) for worker_id, (right, total) in result.items()}


def worker_fails_gold(*, project: AnnotationProject, right: int, total: int) -> bool:
    """The project's rule for a worker whose gold answers disqualify them: below the threshold after
    at least `gold_min_answers` gold answers."""
    return total > 0 and total >= project.gold_min_answers and right / total < project.gold_threshold


def project_gold_failing_worker_ids(*, project: AnnotationProject) -> set[int]:
    """Ids of the project's workers who fail gold (one query)."""
    return {
        worker_id
        for worker_id, (right, total) in worker_gold_accuracy(project=project).items()
        if worker_fails_gold(project=project, right=right, total=total)
    }


def project_worker_stats(*, project: AnnotationProject) -> list[dict]:
    """One row per worker of the project: responses, median time on task, gold accuracy, exclusion."""
    times: dict[int, list[int]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for worker_id, ms in Response.objects.filter(project=project).values_list("worker_id", "time_on_task_ms"):
        counts[worker_id] += 1
        if ms is not None:
            times[worker_id].append(ms)
    gold = worker_gold_accuracy(project=project)
    rows = []
    for worker in project.workers.order_by("pk"):
        right, total = gold.get(worker.pk, (0, 0))
        rows.append(
            {
                "worker": worker,
                "responses": counts.get(worker.pk, 0),
                "median_ms": statistics.median(times[worker.pk]) if times.get(worker.pk) else None,
                "gold_right": right,
                "gold_total": total,
                "gold_accuracy": right / total if total else None,
                "below_threshold": worker_fails_gold(project=project, right=right, total=total),
            }
        )
    return rows


EXPORT_FIELDS = [
    "project",
    "response_id",
    "worker_id",
    "worker_external_id",
    "worker_excluded",
    "dataset",
    "example_position",
    "example_id",
    "is_gold",
    "relevance",
    "answer",
    "label_correct",
    "ambiguous",
    "time_on_task_ms",
    "created_at",
]


def project_responses(*, project: AnnotationProject) -> QuerySet[Response]:
    return (
        Response.objects.filter(project=project)
        .select_related("worker", "item__example__dataset")
        .order_by("pk")
    )


def project_export_rows(*, project: AnnotationProject) -> Iterator[dict]:
    """Every response of the project as a flat record (the fields of EXPORT_FIELDS)."""
    for response in project_responses(project=project).iterator(chunk_size=2000):
        example = response.item.example
        yield {
            "project": project.slug,
            "response_id": response.pk,
            "worker_id": response.worker_id,
            "worker_external_id": response.worker.external_id,
            "worker_excluded": response.worker.excluded,
            "dataset": example.dataset.slug,
            "example_position": example.position,
            "example_id": example.pk,
            "is_gold": response.item.is_gold,
            "relevance": response.relevance,
            # The option the worker chose ("" for a response from before workers chose answers,
            # when its verdict did not single one out); label_correct: whether it is the label.
            "answer": response.answer,
            "label_correct": response.label_correct,
            "ambiguous": response.ambiguous,
            "time_on_task_ms": response.time_on_task_ms,
            "created_at": response.created_at.isoformat(),
        }


# --- Crowd platforms: study links and the payment report --------------------------------------------

# What each platform appends to a study link. Prolific fills in the placeholders written in the link;
# Mechanical Turk's ExternalQuestion adds workerId, assignmentId, hitId and turkSubmitTo itself.
STUDY_LINK_QUERY = {
    StudyPlatform.PROLIFIC: "?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}",
    StudyPlatform.MTURK: "",
}


def project_study_url(*, project: AnnotationProject, base_url: str = "") -> str | None:
    """The link to paste into the platform (the study's URL on Prolific, the ExternalQuestion's URL on
    Mechanical Turk), with the platform's placeholders; None when the project has no study link."""
    if not project.study_token or not project.study_platform:
        return None
    path = reverse("annotation:study-entry", kwargs={"token": project.study_token})
    return f"{base_url.rstrip('/')}{path}{STUDY_LINK_QUERY[project.study_platform]}"


def worker_study_quota_left(*, worker: Worker, project: AnnotationProject) -> int | None:
    """How many more tasks a participant of the project's study link may do there: the project's
    `study_quota` less their submitted responses in it, gold items included (a gold item is a task
    like any other to the participant, who is paid for it and cannot tell it apart). Counted per
    participant, over all their study sessions in the project. None when the worker did not come
    through the study link (no study session in the project): no quota applies. Two queries."""
    if not StudySession.objects.filter(project=project, worker=worker).exists():
        return None
    done = Response.objects.filter(project=project, worker=worker).count()
    return max(0, project.study_quota - done)


PAYMENT_FIELDS = [
    "worker_id",
    "platform",
    "external_id",
    "tasks_done",
    "time_on_task_seconds",
    "first_response_at",
    "last_response_at",
    "span_seconds",
    "gold_answers",
    "gold_right",
    "gold_accuracy",
    "bonus_eligible",
    "study_sessions",
    "study_sessions_completed",
    "excluded",
    "pay_per_hour",
    "pay_estimate",
]


def worker_bonus_eligible(*, project: AnnotationProject, right: int, total: int) -> bool | None:
    """The project's bonus rule: gold accuracy at or above `bonus_gold_accuracy` after at least
    `gold_min_answers` gold answers (the bar `worker_fails_gold` judges by). None when the project
    sets no bonus."""
    if project.bonus_gold_accuracy is None:
        return None
    return total > 0 and total >= project.gold_min_answers and right / total >= project.bonus_gold_accuracy


def _pay_estimate(*, pay_per_hour: Decimal | None, time_on_task_ms: int) -> Decimal | None:
    if pay_per_hour is None:
        return None
    return (pay_per_hour * Decimal(time_on_task_ms) / Decimal(3_600_000)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def project_payment_rows(*, project: AnnotationProject) -> Iterator[dict]:
    """One record (PAYMENT_FIELDS) per worker of the project, for paying them: tasks done (submitted
    responses, gold included), time on task (the sum of the responses' time_on_task_ms, in seconds),
    their first and last response and the span from the claim of their first rated task to their
    last response (the wall-clock time they spent, pauses included), gold answers and accuracy,
    whether they earn the bonus (`worker_bonus_eligible`; empty when the project sets none), their
    study sessions (all, and completed), exclusion, and the pay estimate: `pay_per_hour` x hours on
    task, rounded to cents (empty without a rate). A handful of queries, none per worker."""
    per_worker = {
        row["worker_id"]: row
        for row in Response.objects.filter(project=project)
        .values("worker_id")
        .annotate(
            tasks=Count("pk"),
            ms=Sum("time_on_task_ms"),
            first=Min("created_at"),
            last=Max("created_at"),
            first_claim=Min("assignment__claimed_at"),
        )
    }
    sessions = {
        row["worker_id"]: row
        for row in StudySession.objects.filter(project=project)
        .values("worker_id")
        .annotate(total=Count("pk"), completed=Count("pk", filter=Q(completed_at__isnull=False)))
    }
    gold = worker_gold_accuracy(project=project)
    # Workers of the project, and any who rated in it without being a member any more.
    raters = Response.objects.filter(project=project).values("worker_id")
    members = Worker.objects.filter(Q(projects=project) | Q(pk__in=raters)).distinct()
    for worker in members.order_by("pk"):
        stats = per_worker.get(worker.pk, {})
        right, total = gold.get(worker.pk, (0, 0))
        ms = stats.get("ms") or 0
        first, last = stats.get("first"), stats.get("last")
        span = (last - stats["first_claim"]).total_seconds() if last and stats.get("first_claim") else None
        bonus = worker_bonus_eligible(project=project, right=right, total=total)
        pay = _pay_estimate(pay_per_hour=project.pay_per_hour, time_on_task_ms=ms)
        yield {
            "worker_id": worker.pk,
            "platform": worker.platform,
            "external_id": worker.external_id,
            "tasks_done": stats.get("tasks", 0),
            "time_on_task_seconds": round(ms / 1000, 3),
            "first_response_at": first.isoformat() if first else "",
            "last_response_at": last.isoformat() if last else "",
            "span_seconds": round(max(0.0, span), 3) if span is not None else "",
            "gold_answers": total,
            "gold_right": right,
            "gold_accuracy": round(right / total, 4) if total else "",
            "bonus_eligible": "" if bonus is None else bonus,
            "study_sessions": sessions.get(worker.pk, {}).get("total", 0),
            "study_sessions_completed": sessions.get(worker.pk, {}).get("completed", 0),
            "excluded": worker.excluded,
            "pay_per_hour": "" if project.pay_per_hour is None else project.pay_per_hour,
            "pay_estimate": "" if pay is None else pay,
        }

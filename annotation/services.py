"""Writes of the annotation app: projects, workers, leases and responses.

Concurrency. A claim, submit, release or expiry changes an item's counters and an assignment in one
transaction, so the counters always equal what the assignment and response tables say. On PostgreSQL
a claim locks its candidate item with `SELECT ... FOR UPDATE SKIP LOCKED`: concurrent claimers take
different items instead of queueing on one; the CheckConstraints on the counters are the last line
of defence. On SQLite the settings open every transaction with BEGIN IMMEDIATE, so writers are
serialized and the same code is correct there.

Expiry is lazy: a lease past `expires_at` keeps its slot until a claim (or `assignment_expire_stale`)
sweeps it. Until then its worker may still submit; once swept, a late submit succeeds only if the
slot is still free, and otherwise raises `AssignmentConflict` (HTTP 409) and stores nothing.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import (
    GOLD_ITEM_CAPACITY,
    AnnotationProject,
    Assignment,
    ProjectItem,
    Response,
    Worker,
    WorkerSession,
    new_invite_expiry,
    new_invite_token,
    validate_external_id,
)
from annotation.selectors import hot_cursor, instance_from_row
from generation.models import Dataset, Example

BULK_BATCH = 1000


class AnnotationError(Exception):
    """Base of the domain errors the API turns into HTTP answers."""


class AssignmentNotFound(AnnotationError):
    """No such assignment for this worker (also another worker's assignment: never reveal it)."""


class AssignmentConflict(AnnotationError):
    """The assignment cannot take this action any more (HTTP 409): submitted twice, released, or
    expired with its slot given to another worker."""


class WorkerExcluded(AnnotationError):
    """An excluded worker gets no new tasks."""


class InviteExpired(AnnotationError):
    """The invite link is past its expiry, or revoked: it signs no one in."""


# --- Projects -------------------------------------------------------------------------------------


def _stratified_sample(examples: list[Example], *, per_label: int, rng: random.Random) -> list[Example]:
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.answer_matching_behavior.strip()].append(example)
    chosen: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        chosen.extend(group if len(group) <= per_label else rng.sample(group, per_label))
    return chosen


@transaction.atomic
def project_create(
    *,
    name: str,
    slug: str,
    datasets: Iterable[Dataset],
    overlap: int = 3,
    lease_seconds: int = 300,
    instructions: str = "",
    gold_rate: float = 0.0,
    gold_threshold: float = 0.7,
    per_label: int | None = None,
    seed: int = 0,
    max_sessions_per_worker: int = 1,
    created_by: AbstractBaseUser | None = None,
) -> AnnotationProject:
    """A project over all examples of `datasets`, or, with `per_label`, a stratified random sample of
    up to `per_label` examples per dataset and label (the behavior-matching answer), reproducible
    from `seed`."""
    datasets = list(datasets)
    project = AnnotationProject.objects.create(
        name=name,
        slug=slug,
        overlap=overlap,
        lease_seconds=lease_seconds,
        instructions=instructions,
        gold_rate=gold_rate,
        gold_threshold=gold_threshold,
        max_sessions_per_worker=max_sessions_per_worker,
        created_by=created_by if created_by is not None and created_by.is_authenticated else None,
    )
    project.datasets.set(datasets)
    rng = random.Random(seed)
    for dataset in sorted(datasets, key=lambda d: d.pk):
        examples = dataset.examples.order_by("position")
        if per_label is None:
            ids = list(examples.values_list("pk", flat=True))
        else:
            fields = examples.only("pk", "answer_matching_behavior")
            ids = sorted(e.pk for e in _stratified_sample(list(fields), per_label=per_label, rng=rng))
        ProjectItem.objects.bulk_create(
            [ProjectItem(project=project, example_id=pk, overlap=overlap) for pk in ids],
            batch_size=BULK_BATCH,
        )
    return project


@transaction.atomic
def project_item_mark_gold(
    *, item: ProjectItem, label_correct: bool | None, ambiguous: bool | None
) -> ProjectItem:
    """Make an item a gold item with the expected answers. Only before anyone rated it: its counters
    would otherwise describe a different capacity."""
    item = ProjectItem.objects.select_for_update().get(pk=item.pk)
    if item.reserved_count:
        raise AssignmentConflict("an item becomes gold only before any worker has taken it")
    item.is_gold = True
    item.gold_label_correct = label_correct
    item.gold_ambiguous = ambiguous
    item.overlap = GOLD_ITEM_CAPACITY
    item.save(update_fields=["is_gold", "gold_label_correct", "gold_ambiguous", "overlap"])
    return item


@transaction.atomic
def project_publish(*, project: AnnotationProject, now=None) -> AnnotationProject:
    """Close the project and publish its results: the public pages show its ratings from now on.
    No new claims (the project is no longer active) and no late answers: live leases end at once,
    so nothing changes the published ratings. Publishing again keeps the first date."""
    project = AnnotationProject.objects.select_for_update().get(pk=project.pk)
    now = now or timezone.now()
    if project.published_at is None:
        project.published_at = now
    project.is_active = False
    project.save(update_fields=["published_at", "is_active"])
    _end_leases(Assignment.objects.filter(project=project), status=Assignment.Status.RELEASED, now=now)
    return project


@transaction.atomic
def project_unpublish(*, project: AnnotationProject) -> AnnotationProject:
    """Hide the project's ratings from the public pages again. The project stays closed: reopening
    it for work is a decision of its own (`is_active`, in the admin)."""
    project = AnnotationProject.objects.select_for_update().get(pk=project.pk)
    project.published_at = None
    project.save(update_fields=["published_at"])
    return project


# --- Workers --------------------------------------------------------------------------------------


@transaction.atomic
def worker_create(
    *, project: AnnotationProject, external_id: str = "", user: AbstractBaseUser | None = None
) -> Worker:
    """A worker of `project` with an invite link valid for MWE_INVITE_TTL_DAYS. Raises
    ValidationError for an external id with surrounding whitespace or invisible characters."""
    validate_external_id(external_id)
    worker = Worker.objects.create(external_id=external_id, user=user)
    worker.projects.add(project)
    return worker


def _worker_account(worker: Worker) -> Worker:
    """The worker's site account, made on first use (no password: the invite link is how they sign
    in). Call with the worker's row locked."""
    if worker.user_id is None:
        user_model = get_user_model()
        user = user_model(username=f"worker-{worker.pk}")
        user.set_unusable_password()
        user.save()
        worker.user = user
        worker.save(update_fields=["user"])
    return worker


@transaction.atomic
def worker_join(*, invite_token: str, now=None) -> Worker | None:
    """Onboarding through an invite link: the worker, with their site account. None when no worker
    has this token (unknown, rotated or revoked); InviteExpired when the link is past its expiry."""
    worker = Worker.objects.select_for_update().filter(invite_token=invite_token).first()
    if worker is None:
        return None
    if worker.invite_expires_at is None or worker.invite_expires_at <= (now or timezone.now()):
        raise InviteExpired("this invite link has expired")
    return _worker_account(worker)


def worker_api_token(*, worker: Worker) -> str:
    """The worker's API token (DRF token auth), created with their account if needed."""
    if worker.user_id is None:
        with transaction.atomic():
            worker = _worker_account(Worker.objects.select_for_update().get(pk=worker.pk))
    token, _ = Token.objects.get_or_create(user=worker.user)
    return token.key


def _session_store():
    return import_module(settings.SESSION_ENGINE).SessionStore


def _end_sessions(sessions) -> None:
    """Delete these WorkerSession rows and their sessions from the session store."""
    store = _session_store()
    for key in list(sessions.values_list("session_key", flat=True)):
        store().delete(key)
    sessions.delete()


@transaction.atomic
def worker_session_register(*, worker: Worker, session_key: str) -> None:
    """Record a session that the worker's invite link has just signed in, and end their oldest
    ones beyond what their projects allow (the smallest `max_sessions_per_worker` of them; 1 when
    they have none). Ending, not refusing: a worker who moved to another browser gets in, and
    whoever else held the link is signed out."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    limits = worker.projects.values_list("max_sessions_per_worker", flat=True)
    allowed = min(limits, default=1)
    WorkerSession.objects.update_or_create(session_key=session_key, defaults={"worker": worker})
    keep = list(worker.sessions.order_by("-created_at", "-pk").values_list("pk", flat=True)[:allowed])
    _end_sessions(worker.sessions.exclude(pk__in=keep))


def _end_every_session(worker: Worker) -> None:
    _end_sessions(worker.sessions.all())
    # Sessions not recorded (made before invite sessions were, or by a session engine that cannot
    # delete one, such as signed cookies) end too: a new unusable password changes the account's
    # session hash, which Django checks on every request. Never for an account with a password.
    if worker.user_id is not None and not worker.user.has_usable_password():
        worker.user.set_unusable_password()
        worker.user.save(update_fields=["password"])


@transaction.atomic
def worker_invite_rotate(*, worker: Worker) -> Worker:
    """A new invite link for the worker, valid for MWE_INVITE_TTL_DAYS: the old one stops working
    and every browser it signed in is signed out. Their API token is left as it is."""
    return _invite_replace(worker=worker, expires_at=new_invite_expiry())


def _invite_replace(*, worker: Worker, expires_at) -> Worker:
    """A new invite token (the old link dies) valid until `expires_at` (None: no link works), and
    every browser the worker signed in is signed out. Inside the caller's transaction."""
    worker = Worker.objects.select_for_update(of=("self",)).select_related("user").get(pk=worker.pk)
    worker.invite_token = new_invite_token()
    worker.invite_expires_at = expires_at
    worker.save(update_fields=["invite_token", "invite_expires_at"])
    _end_every_session(worker)
    return worker


@transaction.atomic
def worker_invite_revoke(*, worker: Worker) -> Worker:
    """Cut the worker off: their invite link stops working (until rotated), every browser it signed
    in is signed out and their API token is deleted. Their responses stay."""
    # A new secret that nobody is given, so the old link is unknown rather than merely expired.
    worker = _invite_replace(worker=worker, expires_at=None)
    if worker.user_id is not None:
        Token.objects.filter(user_id=worker.user_id).delete()
    return worker


@transaction.atomic
def worker_set_excluded(*, worker: Worker, excluded: bool, reason: str = "") -> Worker:
    """Exclude a worker or take them back; nothing is deleted either way."""
    worker = Worker.objects.select_for_update().get(pk=worker.pk)
    worker.excluded = excluded
    worker.excluded_reason = reason if excluded else ""
    worker.excluded_at = timezone.now() if excluded else None
    worker.save(update_fields=["excluded", "excluded_reason", "excluded_at"])
    if excluded:
        # Their open leases return to the pool at once rather than at expiry.
        _end_leases(
            Assignment.objects.filter(worker=worker), status=Assignment.Status.RELEASED, now=timezone.now()
        )
    return worker


def worker_flag_below_threshold(*, project: AnnotationProject) -> list[Worker]:
    """Exclude the project's workers whose gold accuracy is below the project's threshold after at
    least `gold_min_answers` gold answers. Returns those excluded now (reversible by
    `worker_set_excluded(excluded=False)`)."""
    from annotation.selectors import worker_gold_accuracy

    flagged = []
    for worker_id, (correct, total) in worker_gold_accuracy(project=project).items():
        if total < project.gold_min_answers or correct / total >= project.gold_threshold:
            continue
        worker = Worker.objects.get(pk=worker_id)
        if not worker.excluded:
            reason = f"gold accuracy {correct}/{total} below {project.gold_threshold:.0%} on {project.slug}"
            flagged.append(worker_set_excluded(worker=worker, excluded=True, reason=reason))
    return flagged


# --- Leases ---------------------------------------------------------------------------------------


def _release_slots(item_ids: list[int]) -> None:
    """Give back one reserved slot per entry of `item_ids` (an item may appear several times). The
    items are locked in primary-key order first, so two sweeps never deadlock on each other."""
    counts = Counter(item_ids)
    list(ProjectItem.objects.filter(pk__in=counts).order_by("pk").select_for_update().values_list("pk"))
    if len(set(counts.values())) == 1:
        decrement = Value(next(iter(counts.values())))
    else:
        decrement = Case(*(When(pk=pk, then=Value(n)) for pk, n in counts.items()))
    ProjectItem.objects.filter(pk__in=counts).update(reserved_count=F("reserved_count") - decrement)


def _end_leases(leases, *, status: str, now) -> int:
    """End the live leases of `leases` (a queryset) and return their slots.

    Lock order, which keeps every writer free of deadlocks: leases before items, each in primary-key
    order (a submit or release holds one lease, then one item; a claim never waits for a lock).
    A lease being submitted right now is waited for, then re-checked: once submitted, it is no
    longer live and stays out. Waiting, not skipping, means that when this returns, every stale lease
    has been dealt with, so a claim that swept finds every slot that expiry freed."""
    ended = list(
        leases.select_for_update(of=("self",))
        .filter(status=Assignment.Status.CLAIMED)
        .order_by("pk")
        .values_list("pk", "item_id")
    )
    if not ended:
        return 0
    Assignment.objects.filter(pk__in=[pk for pk, _ in ended]).update(status=status, finished_at=now)
    _release_slots([item_id for _, item_id in ended])
    return len(ended)


def _expire_stale(*, project: AnnotationProject, now=None) -> int:
    now = now or timezone.now()
    stale = Assignment.objects.filter(project=project, expires_at__lte=now)
    return _end_leases(stale, status=Assignment.Status.EXPIRED, now=now)


@transaction.atomic
def assignment_expire_stale(*, project: AnnotationProject, now=None) -> int:
    """Return the slots of the project's leases past their expiry; the number of leases expired."""
    return _expire_stale(project=project, now=now)


def _pick_item(*, project: AnnotationProject, worker: Worker, gold: bool) -> ProjectItem | None:
    seen = Assignment.objects.filter(item=OuterRef("pk"), worker=worker)
    return (
        ProjectItem.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("example__dataset")
        .filter(project=project, is_gold=gold, reserved_count__lt=F("overlap"))
        .filter(~Exists(seen))
        .order_by("pk")
        .first()
    )


# --- PostgreSQL statements ------------------------------------------------------------------------
# A claim and a submit are each one statement on PostgreSQL: one round trip, atomic by itself (no
# BEGIN/COMMIT), and no ORM query building on the hottest paths of the site. They do exactly what the
# ORM paths below do (SQLite runs those), under the same constraints, which stay the last guard.
# The statements are assembled once, at import, from the models' table and column names only; every
# value goes in as a bound parameter (hence the noqa: S608 below).

_TABLES = {
    "item": ProjectItem._meta.db_table,
    "assignment": Assignment._meta.db_table,
    "response": Response._meta.db_table,
    "example": Example._meta.db_table,
    "dataset": Dataset._meta.db_table,
    "worker": Worker._meta.db_table,
    "project": AnnotationProject._meta.db_table,
    "claimed": Assignment.Status.CLAIMED.value,
    "submitted": Assignment.Status.SUBMITTED.value,
    "expired": Assignment.Status.EXPIRED.value,
}
_EXAMPLE_FIELDS = [field for field in Example._meta.concrete_fields]
_DATASET_FIELDS = [Dataset._meta.get_field(name) for name in ("id", "slug", "behavior", "description")]
_ITEM_FIELDS = [ProjectItem._meta.get_field(name) for name in ("id", "project", "example", "is_gold")]


def _open_item_sql(*, gold: bool) -> str:
    # The open items in primary-key order come from the partial index annotation_item_open; each is
    # checked against the worker's history by one probe of the (worker, item) index. OFFSET 0 keeps
    # that check a per-row probe: as an anti-join PostgreSQL may choose to merge it with every
    # assignment of every item so far, a cost that grows with the project.
    # SKIP LOCKED: concurrent claimers take different items instead of queueing on one. The row is
    # re-checked (reserved_count < overlap) on its latest version when locked.
    return """
        SELECT i.id FROM {item} i
        WHERE i.project_id = %(project)s AND i.is_gold = {gold} AND i.reserved_count < i.overlap
          AND NOT EXISTS (SELECT 1 FROM current_lease)
          AND NOT EXISTS (SELECT 1 FROM excluded WHERE excluded)
          AND NOT EXISTS (
              SELECT 1 FROM {assignment} seen WHERE seen.worker_id = %(worker)s AND seen.item_id = i.id
              OFFSET 0
          )
        ORDER BY i.id LIMIT 1
        FOR UPDATE OF i SKIP LOCKED
    """.format(gold="true" if gold else "false", **_TABLES)  # noqa: S608


def _claim_sql(*, gold: bool) -> str:
    """The worker's live lease, or a new one on an open item they have never seen (a gold item first
    when `gold` and some regular item is open, as in `_claim_orm`), with the example and dataset to
    show; whether the worker is excluded (read here, not from the caller's possibly cached worker:
    then nothing is claimed), and whether the project has leases past their expiry to sweep.
    Always one row."""
    if gold:
        candidates = f"""
            regular AS ({_open_item_sql(gold=False)}),
            gold AS ({_open_item_sql(gold=True)}),
            pick AS (
                SELECT id FROM (
                    SELECT id, 0 AS rank FROM gold WHERE EXISTS (SELECT 1 FROM regular)
                    UNION ALL SELECT id, 1 FROM regular
                ) candidates ORDER BY rank LIMIT 1
            ),"""  # noqa: S608
    else:
        candidates = f"pick AS ({_open_item_sql(gold=False)}),"  # noqa: S608
    example_columns = ", ".join(f"e.{field.column}" for field in _EXAMPLE_FIELDS)
    dataset_columns = ", ".join(f"d.{field.column}" for field in _DATASET_FIELDS)
    item_columns = ", ".join(f"i.{field.column}" for field in _ITEM_FIELDS)
    return """
        WITH excluded AS (SELECT excluded FROM {worker} WHERE id = %(worker)s),
        current_lease AS (
            SELECT id, item_id, status, claimed_at, expires_at FROM {assignment}
            WHERE worker_id = %(worker)s AND project_id = %(project)s AND status = '{claimed}'
              AND expires_at > %(now)s AND NOT EXISTS (SELECT 1 FROM excluded WHERE excluded)
            ORDER BY id LIMIT 1
        ),
        {candidates}
        taken AS (
            UPDATE {item} i SET reserved_count = i.reserved_count + 1 FROM pick WHERE i.id = pick.id
              -- A closed (or published) project hands out nothing, whatever a process's cached
              -- look-up of the project still says.
              AND EXISTS (SELECT 1 FROM {project} p WHERE p.id = %(project)s AND p.is_active)
            RETURNING i.id
        ),
        new_lease AS (
            INSERT INTO {assignment} (project_id, item_id, worker_id, status, claimed_at, expires_at)
            SELECT %(project)s, taken.id, %(worker)s, '{claimed}', %(now)s, %(expires)s FROM taken
            RETURNING id, item_id, status, claimed_at, expires_at
        ),
        lease AS (SELECT * FROM new_lease UNION ALL SELECT * FROM current_lease)
        SELECT
            EXISTS (SELECT 1 FROM excluded WHERE excluded),
            EXISTS (
                SELECT 1 FROM {assignment} WHERE project_id = %(project)s AND status = '{claimed}'
                  AND expires_at <= %(now)s
            ),
            lease.id, lease.status, lease.claimed_at, lease.expires_at,
            {item_columns}, {example_columns}, {dataset_columns}
        FROM (SELECT 1) one
        LEFT JOIN lease ON true
        LEFT JOIN {item} i ON i.id = lease.item_id
        LEFT JOIN {example} e ON e.id = i.example_id
        LEFT JOIN {dataset} d ON d.id = e.dataset_id
    """.format(  # noqa: S608
        candidates=candidates,
        item_columns=item_columns,
        example_columns=example_columns,
        dataset_columns=dataset_columns,
        **_TABLES,
    )


_CLAIM_SQL = _claim_sql(gold=False)
_CLAIM_WITH_GOLD_SQL = _claim_sql(gold=True)

# Lock the lease; count the response on its item if the lease is live, or if it expired and its slot
# is still free (then the slot is taken back); mark the lease submitted; insert the response. When
# the lease is submitted or released, or expired with its slot given away, nothing is written and the
# response columns are null. A second response by the worker on the item breaks the unique
# constraint and the whole statement is undone.
_SUBMIT_SQL = """
    WITH lease AS (
        SELECT id, project_id, item_id, status, claimed_at FROM {assignment}
        WHERE id = %(assignment)s AND worker_id = %(worker)s
        FOR UPDATE
    ),
    counted AS (
        UPDATE {item} i
        SET submitted_count = i.submitted_count + 1,
            reserved_count = i.reserved_count + (CASE WHEN lease.status = '{expired}' THEN 1 ELSE 0 END)
        FROM lease
        WHERE i.id = lease.item_id
          AND (lease.status = '{claimed}' OR (lease.status = '{expired}' AND i.reserved_count < i.overlap))
        RETURNING i.id
    ),
    finished AS (
        UPDATE {assignment} a SET status = '{submitted}', finished_at = %(now)s
        FROM counted WHERE a.id = %(assignment)s
        RETURNING a.id
    ),
    answer AS (
        INSERT INTO {response} (
            project_id, item_id, worker_id, assignment_id, relevance, label_correct, ambiguous,
            time_on_task_ms, created_at
        )
        SELECT lease.project_id, lease.item_id, %(worker)s, lease.id, %(relevance)s, %(label_correct)s,
            %(ambiguous)s,
            COALESCE(
                %(time_on_task_ms)s,
                GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%(now)s - lease.claimed_at)) * 1000))::integer
            ),
            %(now)s
        FROM lease JOIN counted ON counted.id = lease.item_id
        RETURNING id, time_on_task_ms, created_at
    )
    SELECT lease.status, lease.project_id, lease.item_id, answer.id, answer.time_on_task_ms,
        answer.created_at
    FROM lease LEFT JOIN answer ON true
""".format(**_TABLES)  # noqa: S608


def _run_one(statement: str, params: dict) -> tuple | None:
    """The first row of one statement. Outside a transaction the statement commits by itself;
    inside one, a savepoint keeps a failing statement from breaking the enclosing transaction."""
    if connection.in_atomic_block:
        with transaction.atomic(), hot_cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()
    with hot_cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


def _claim_result(
    row: tuple, *, worker: Worker, project: AnnotationProject
) -> tuple[Assignment | None, bool]:
    excluded, stale, lease_id, status, claimed_at, expires_at = row[:6]
    if excluded:
        raise WorkerExcluded("this worker is excluded")
    if lease_id is None:
        return None, stale
    values = iter(row[6:])
    item = instance_from_row(ProjectItem, _ITEM_FIELDS, [next(values) for _ in _ITEM_FIELDS])
    example = instance_from_row(Example, _EXAMPLE_FIELDS, [next(values) for _ in _EXAMPLE_FIELDS])
    example.dataset = instance_from_row(Dataset, _DATASET_FIELDS, [next(values) for _ in _DATASET_FIELDS])
    item.example = example
    item.project = project
    assignment = Assignment.from_db(
        DEFAULT_DB_ALIAS,
        ["id", "project_id", "item_id", "worker_id", "status", "claimed_at", "expires_at", "finished_at"],
        [lease_id, project.pk, item.pk, worker.pk, status, claimed_at, expires_at, None],
    )
    assignment.item = item
    assignment.project = project
    assignment.worker = worker
    return assignment, stale


def task_claim(
    *, worker: Worker, project: AnnotationProject, now=None, rng: random.Random | None = None
) -> Assignment | None:
    """The worker's next task in `project`: their open lease if they hold one, else a new lease on an
    item they have never seen that still needs ratings (submitted + live leases < overlap). None when
    nothing is left for them. The lease comes with its item, example and dataset loaded, and its
    project set to `project`.

    The number of queries does not depend on the project's size. On PostgreSQL a claim is one
    statement (`_CLAIM_SQL`), plus a sweep of expired leases only when some exist. Elsewhere (SQLite)
    it is the same steps through the ORM in one transaction."""
    if worker.excluded:
        raise WorkerExcluded("this worker is excluded")
    now = now or timezone.now()
    # Gold is mixed in only among real work: when no regular item is left, the worker is done.
    want_gold = project.gold_rate > 0 and (rng or random).random() < project.gold_rate
    if connection.vendor == "postgresql":
        return _claim_postgresql(worker=worker, project=project, now=now, want_gold=want_gold)
    assignment = _claim_orm(worker=worker, project=project, now=now, want_gold=want_gold)
    if assignment is not None:
        assignment.project = project
    return assignment


@transaction.atomic
def _claim_orm(*, worker: Worker, project: AnnotationProject, now, want_gold: bool) -> Assignment | None:
    # From the row, not the caller's worker, which may come from the token cache.
    if Worker.objects.filter(pk=worker.pk, excluded=True).exists():
        raise WorkerExcluded("this worker is excluded")
    current = (
        Assignment.objects.filter(
            worker=worker, project=project, status=Assignment.Status.CLAIMED, expires_at__gt=now
        )
        .select_related("item__example__dataset")
        .first()
    )
    if current is not None:
        return current
    _expire_stale(project=project, now=now)
    if not AnnotationProject.objects.filter(pk=project.pk, is_active=True).exists():
        return None  # closed or published since the caller looked it up
    item = _pick_item(project=project, worker=worker, gold=False)
    if item is not None and want_gold:
        item = _pick_item(project=project, worker=worker, gold=True) or item
    if item is None:
        return None
    ProjectItem.objects.filter(pk=item.pk).update(reserved_count=F("reserved_count") + 1)
    return Assignment.objects.create(
        project=project,
        item=item,
        worker=worker,
        claimed_at=now,
        expires_at=now + timedelta(seconds=project.lease_seconds),
    )


def _claim_postgresql(
    *, worker: Worker, project: AnnotationProject, now, want_gold: bool
) -> Assignment | None:
    params = {
        "worker": worker.pk,
        "project": project.pk,
        "now": now,
        "expires": now + timedelta(seconds=project.lease_seconds),
    }
    statement = _CLAIM_WITH_GOLD_SQL if want_gold else _CLAIM_SQL
    for attempt in range(3):
        try:
            row = _run_one(statement, params)
        except IntegrityError:
            # The partial unique constraint on live leases: a claim by the same worker in another
            # request took this item after this statement's snapshot. Nothing was written; try again
            # (the next snapshot sees that lease).
            if attempt == 2:
                raise
            continue
        lease, stale = _claim_result(row, worker=worker, project=project)
        if stale:
            # Leases past their expiry exist: give their slots back (a claim that found nothing
            # tries again, as a freed slot may be one it can take).
            assignment_expire_stale(project=project, now=now)
            if lease is None:
                lease, _ = _claim_result(_run_one(statement, params), worker=worker, project=project)
        return lease
    raise AssertionError("unreachable")


def _locked_assignment(*, assignment_id: int, worker: Worker) -> Assignment:
    try:
        # of=self: lock the lease only; the item row is locked by the counter update that follows.
        return (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("project")
            .get(pk=assignment_id, worker=worker)
        )
    except Assignment.DoesNotExist:
        raise AssignmentNotFound(f"no assignment {assignment_id} for this worker") from None


def _finish_lease(*, assignment: Assignment, status: str, now=None) -> None:
    assignment.status = status
    assignment.finished_at = now or timezone.now()
    assignment.save(update_fields=["status", "finished_at"])
    ProjectItem.objects.filter(pk=assignment.item_id).update(reserved_count=F("reserved_count") - 1)


def assignment_submit(
    *,
    assignment_id: int,
    worker: Worker,
    relevance: int,
    label_correct: bool,
    ambiguous: bool,
    time_on_task_ms: int | None = None,
    now=None,
) -> Response:
    """Store the worker's answers. Raises AssignmentNotFound (not theirs), AssignmentConflict (already
    submitted, released, or expired and its slot taken by someone else); nothing is stored then.

    On PostgreSQL this is one statement (`_SUBMIT_SQL`); elsewhere the same steps through the ORM in
    one transaction."""
    if not (isinstance(relevance, int) and not isinstance(relevance, bool) and 1 <= relevance <= 5):
        raise ValueError("relevance must be an integer from 1 to 5")
    now = now or timezone.now()
    answers = {
        "relevance": relevance,
        "label_correct": bool(label_correct),
        "ambiguous": bool(ambiguous),
        "time_on_task_ms": time_on_task_ms,
    }
    if connection.vendor == "postgresql":
        return _submit_postgresql(assignment_id=assignment_id, worker=worker, now=now, **answers)
    return _submit_orm(assignment_id=assignment_id, worker=worker, now=now, **answers)


def _submit_postgresql(*, assignment_id: int, worker: Worker, now, **answers) -> Response:
    params = {"assignment": assignment_id, "worker": worker.pk, "now": now, **answers}
    try:
        row = _run_one(_SUBMIT_SQL, params)
    except IntegrityError:
        # The unique (item, worker) constraint on responses; the whole statement was undone.
        raise AssignmentConflict("this worker already rated this item") from None
    if row is None:
        raise AssignmentNotFound(f"no assignment {assignment_id} for this worker")
    status, project_id, item_id, response_id, time_on_task_ms, created_at = row
    if response_id is None:
        raise AssignmentConflict(_SUBMIT_CONFLICTS.get(status, _SUBMIT_CONFLICTS[Assignment.Status.EXPIRED]))
    return Response.from_db(
        DEFAULT_DB_ALIAS,
        [
            "id",
            "project_id",
            "item_id",
            "worker_id",
            "assignment_id",
            "relevance",
            "label_correct",
            "ambiguous",
            "time_on_task_ms",
            "created_at",
        ],
        [
            response_id,
            project_id,
            item_id,
            worker.pk,
            assignment_id,
            answers["relevance"],
            answers["label_correct"],
            answers["ambiguous"],
            time_on_task_ms,
            created_at,
        ],
    )


_SUBMIT_CONFLICTS = {
    Assignment.Status.SUBMITTED: "this assignment was already submitted",
    Assignment.Status.RELEASED: "this assignment was released",
    Assignment.Status.EXPIRED: "the lease expired and the item was given to another worker",
}


@transaction.atomic
def _submit_orm(
    *,
    assignment_id: int,
    worker: Worker,
    relevance: int,
    label_correct: bool,
    ambiguous: bool,
    time_on_task_ms: int | None,
    now,
) -> Response:
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker)
    status = assignment.status
    if status in (Assignment.Status.SUBMITTED, Assignment.Status.RELEASED):
        raise AssignmentConflict(_SUBMIT_CONFLICTS[status])
    if status == Assignment.Status.CLAIMED:
        # Still holds its slot, even past expiry: no sweep has given it away.
        updated = ProjectItem.objects.filter(pk=assignment.item_id).update(
            submitted_count=F("submitted_count") + 1
        )
    else:  # expired and swept: take the slot back only if it is still free.
        updated = ProjectItem.objects.filter(pk=assignment.item_id, reserved_count__lt=F("overlap")).update(
            reserved_count=F("reserved_count") + 1, submitted_count=F("submitted_count") + 1
        )
    if not updated:
        raise AssignmentConflict(_SUBMIT_CONFLICTS[Assignment.Status.EXPIRED])
    if time_on_task_ms is None:
        time_on_task_ms = max(0, int((now - assignment.claimed_at).total_seconds() * 1000))
    try:
        with transaction.atomic():
            response = Response.objects.create(
                project_id=assignment.project_id,
                item_id=assignment.item_id,
                worker=worker,
                assignment=assignment,
                relevance=relevance,
                label_correct=label_correct,
                ambiguous=ambiguous,
                time_on_task_ms=time_on_task_ms,
            )
    except IntegrityError:
        # The unique (item, worker) constraint: this worker already rated the item.
        raise AssignmentConflict("this worker already rated this item") from None
    assignment.status = Assignment.Status.SUBMITTED
    assignment.finished_at = now
    assignment.save(update_fields=["status", "finished_at"])
    return response


@transaction.atomic
def assignment_release(*, assignment_id: int, worker: Worker, now=None) -> Assignment:
    """The worker skips the item: its slot returns to the pool at once (they will not see it again)."""
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker)
    if assignment.status == Assignment.Status.CLAIMED:
        _finish_lease(assignment=assignment, status=Assignment.Status.RELEASED, now=now)
    elif assignment.status == Assignment.Status.SUBMITTED:
        raise AssignmentConflict("this assignment was already submitted")
    # Released or expired already: releasing again is a no-op.
    return assignment


@transaction.atomic
def assignment_extend(*, assignment_id: int, worker: Worker, now=None) -> Assignment:
    """A worker still reading: the lease runs `lease_seconds` from now. Only a live lease extends."""
    now = now or timezone.now()
    assignment = _locked_assignment(assignment_id=assignment_id, worker=worker)
    if assignment.status != Assignment.Status.CLAIMED:
        raise AssignmentConflict(f"this assignment is {assignment.status}")
    assignment.expires_at = now + timedelta(seconds=assignment.project.lease_seconds)
    assignment.save(update_fields=["expires_at"])
    return assignment

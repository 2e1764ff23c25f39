"""The claim and the submit as single PostgreSQL statements, the form `leases.task_claim` and
`leases.assignment_submit` take on PostgreSQL (SQLite runs their ORM form in leases.py).

Each is one statement: one round trip, atomic by itself (no BEGIN/COMMIT), and no ORM query building
on the hottest paths of the site. They do exactly what the ORM paths do, under the same constraints,
which stay the last guard; tests/annotation/services/test_leases.py and the lease state machine run
against both forms (SQLite and PostgreSQL). Only leases.py calls this module: it is the PostgreSQL
half of the one module that writes the item counters.

The statements are assembled once, at import, from the models' table and column names only; every
value goes in as a bound parameter (hence the noqa: S608 below)."""

from __future__ import annotations

from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, transaction

from annotation.hotpath import hot_cursor, instance_from_row
from annotation.models import AnnotationProject, Assignment, ProjectItem, Response, Worker
from annotation.services.errors import (
    SUBMIT_CONFLICTS,
    AssignmentConflict,
    AssignmentNotFound,
    InvalidAnswer,
    WorkerExcluded,
    invalid_answer_message,
)
from generation.models import Dataset, Example

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
    when `gold` and some regular item is open, as in `leases._claim_orm`), with the example and dataset to
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

# Lock the lease; check the chosen answer against the example's options (answer_matching_behavior and
# answer_not_matching_behavior, a JSON string or list of strings); count the response on its item if
# the answer is one of them and the lease is live, or expired with its slot still free (then the slot
# is taken back); mark the lease submitted; insert the response with label_correct derived (the
# answer is the label). When the answer is not an option, or the lease is submitted or released, or
# expired with its slot given away, nothing is written and the response columns are null. A second
# response by the worker on the item breaks the unique constraint and the whole statement is undone.
_SUBMIT_SQL = """
    WITH lease AS (
        SELECT a.id, a.project_id, a.item_id, a.status, a.claimed_at,
            e.answer_matching_behavior AS label, e.answer_not_matching_behavior AS others
        FROM {assignment} a
        JOIN {item} it ON it.id = a.item_id
        JOIN {example} e ON e.id = it.example_id
        WHERE a.id = %(assignment)s AND a.worker_id = %(worker)s
        FOR UPDATE OF a
    ),
    choice AS (
        SELECT options.option, options.option = lease.label AS label_correct
        FROM lease, LATERAL (
            SELECT lease.label
            UNION ALL
            SELECT value FROM jsonb_array_elements_text(
                CASE jsonb_typeof(lease.others)
                    WHEN 'array' THEN lease.others
                    WHEN 'string' THEN jsonb_build_array(lease.others)
                    ELSE '[]'::jsonb
                END
            )
        ) options(option)
        WHERE options.option = %(answer)s AND btrim(options.option) <> ''
        LIMIT 1
    ),
    counted AS (
        UPDATE {item} i
        SET submitted_count = i.submitted_count + 1,
            reserved_count = i.reserved_count + (CASE WHEN lease.status = '{expired}' THEN 1 ELSE 0 END)
        FROM lease
        WHERE i.id = lease.item_id AND EXISTS (SELECT 1 FROM choice)
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
            project_id, item_id, worker_id, assignment_id, relevance, answer, label_correct, ambiguous,
            time_on_task_ms, created_at, comment, flagged_broken
        )
        SELECT lease.project_id, lease.item_id, %(worker)s, lease.id, %(relevance)s, choice.option,
            choice.label_correct, %(ambiguous)s,
            COALESCE(
                %(time_on_task_ms)s,
                GREATEST(0, FLOOR(EXTRACT(EPOCH FROM (%(now)s - lease.claimed_at)) * 1000))::integer
            ),
            %(now)s, %(comment)s, %(flagged_broken)s
        FROM lease JOIN counted ON counted.id = lease.item_id CROSS JOIN choice
        RETURNING id, label_correct, time_on_task_ms, created_at
    )
    SELECT lease.status, lease.project_id, lease.item_id, EXISTS (SELECT 1 FROM choice), answer.id,
        answer.label_correct, answer.time_on_task_ms, answer.created_at
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


def claim_run(
    *, worker: Worker, project: AnnotationProject, now: datetime, expires_at: datetime, want_gold: bool
) -> tuple[Assignment | None, bool]:
    """One run of the claim statement: the worker's lease (their live one, or a new one; None when
    nothing is left for them) and whether the project has leases past their expiry to sweep.
    Raises WorkerExcluded, and IntegrityError when a concurrent claim of the same worker took the
    item after this statement's snapshot (nothing was written then)."""
    params = {"worker": worker.pk, "project": project.pk, "now": now, "expires": expires_at}
    row = _run_one(_CLAIM_WITH_GOLD_SQL if want_gold else _CLAIM_SQL, params)
    return _claim_result(row, worker=worker, project=project)


def submit_run(
    *,
    assignment_id: int,
    worker: Worker,
    now: datetime,
    relevance: int,
    answer: str,
    ambiguous: bool,
    time_on_task_ms: int | None,
    comment: str = "",
    flagged_broken: bool = False,
) -> Response:
    """The submit statement: the stored response, or AssignmentNotFound / InvalidAnswer /
    AssignmentConflict as the ORM path raises them (nothing written then)."""
    answers = {
        "relevance": relevance,
        "answer": answer,
        "ambiguous": ambiguous,
        "time_on_task_ms": time_on_task_ms,
        "comment": comment,
        "flagged_broken": flagged_broken,
    }
    params = {"assignment": assignment_id, "worker": worker.pk, "now": now, **answers}
    try:
        row = _run_one(_SUBMIT_SQL, params)
    except IntegrityError:
        # The unique (item, worker) constraint on responses; the whole statement was undone.
        raise AssignmentConflict("this worker already rated this item") from None
    if row is None:
        raise AssignmentNotFound(f"no assignment {assignment_id} for this worker")
    status, project_id, item_id, answer_ok, response_id, label_correct, time_on_task_ms, created_at = row
    if not answer_ok:
        raise InvalidAnswer(invalid_answer_message(answer))
    if response_id is None:
        raise AssignmentConflict(SUBMIT_CONFLICTS.get(status, SUBMIT_CONFLICTS[Assignment.Status.EXPIRED]))
    return Response.from_db(
        DEFAULT_DB_ALIAS,
        [
            "id",
            "project_id",
            "item_id",
            "worker_id",
            "assignment_id",
            "relevance",
            "answer",
            "label_correct",
            "ambiguous",
            "time_on_task_ms",
            "created_at",
            "comment",
            "flagged_broken",
            "flag_resolved_at",
            "edited_at",
        ],
        [
            response_id,
            project_id,
            item_id,
            worker.pk,
            assignment_id,
            relevance,
            answer,
            label_correct,
            ambiguous,
            time_on_task_ms,
            created_at,
            comment,
            flagged_broken,
            None,
            None,
        ],
    )

"""Invite links (issue 13, finding 1): they expire, can be rotated or revoked, sign in one browser at
a time (unless the project allows more) for a short session, and never appear in a log line."""

import csv
import io
import logging
from datetime import timedelta

import pytest
from django.contrib.admin.sites import site as admin_site
from django.contrib.sessions.models import Session
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from annotation.models import AnnotationProject, Worker
from annotation.services.workers import (
    worker_api_token,
    worker_create,
    worker_invite_revoke,
    worker_invite_rotate,
    worker_join,
)
from tests.annotation.builders import build_project
from tests.builders import ExampleFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

JOIN = "/annotate/join/"


def join(client: Client, token: str, **extra):
    """What the invite page's form sends: the token in the body, never in the path."""
    return client.post(reverse("annotation:join"), {"token": token}, **extra)


def signed_in_as_worker(client: Client, worker: Worker) -> bool:
    page = client.get(reverse("annotation:work"))
    return page.status_code == 200 and page.context["worker"].pk == worker.pk


def invite_rows(path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def invitee(project):
    return worker_create(project=project, external_id="crowd-1")


# ----------------------------------------------------------------------------- the link


def test_the_link_carries_its_token_in_the_fragment_and_the_page_posts_it(project, tmp_path):
    out = tmp_path / "workers.csv"
    call_command("create_workers", project=project.slug, count=2, out=str(out))
    rows = invite_rows(out)
    workers = {worker.pk: worker for worker in Worker.objects.all()}
    for row in rows:
        worker = workers[int(row["worker_id"])]
        # The fragment never leaves the browser: not in the request line, a Referer or a log.
        assert row["invite_url"] == f"{JOIN}#{worker.invite_token}"
        assert row["invite_expires_at"] == worker.invite_expires_at.isoformat()
    client = Client(enforce_csrf_checks=True)
    page = client.get(JOIN)
    assert page.status_code == 200
    assert b'name="token"' in page.content and b"annotation/join.js" in page.content
    response = client.post(
        JOIN,
        {
            "token": workers[int(rows[0]["worker_id"])].invite_token,
            "csrfmiddlewaretoken": page.context["csrf_token"],
        },
    )
    assert response.status_code == 302 and response["Location"] == reverse("annotation:work")
    assert signed_in_as_worker(client, workers[int(rows[0]["worker_id"])])


def test_an_unknown_or_malformed_token_is_404_and_signs_no_one_in(invitee):
    client = Client()
    for token in ("nope", "", "x" * 500, invitee.invite_token + "x"):
        response = join(client, token)
        assert response.status_code == 404, token
        assert b"ask the researcher" in response.content.lower()
    assert client.get(reverse("annotation:work")).status_code == 403
    assert Worker.objects.get(pk=invitee.pk).user_id is None


def test_invites_expire_after_the_configured_lifetime(project, settings):
    settings.MWE_INVITE_TTL_DAYS = 3
    before = timezone.now()
    worker = worker_create(project=project)
    assert before + timedelta(days=3) <= worker.invite_expires_at <= timezone.now() + timedelta(days=3)


def test_an_expired_link_shows_a_clear_page_and_signs_no_one_in(invitee):
    Worker.objects.filter(pk=invitee.pk).update(invite_expires_at=timezone.now() - timedelta(seconds=1))
    client = Client()
    response = join(client, invitee.invite_token)
    assert response.status_code == 410
    assert b"expired" in response.content
    assert client.get(reverse("annotation:work")).status_code == 403
    assert Worker.objects.get(pk=invitee.pk).user_id is None


def test_a_worker_session_is_short(invitee, settings):
    client = Client()
    assert join(client, invitee.invite_token).status_code == 302
    session = client.session
    # Default: 12 hours, not Django's two weeks.
    assert 12 * 3600 - 60 <= session.get_expiry_age() <= 12 * 3600
    settings.MWE_WORKER_SESSION_SECONDS = 600
    other = Client()
    response = join(other, invitee.invite_token)
    assert 540 <= int(response.cookies[settings.SESSION_COOKIE_NAME]["max-age"]) <= 600


# ----------------------------------------------------------------------------- one browser at a time


def test_joining_again_ends_the_previous_session(invitee):
    first, second = Client(), Client()
    join(first, invitee.invite_token)
    assert signed_in_as_worker(first, invitee)
    first_key = first.session.session_key
    join(second, invitee.invite_token)
    assert signed_in_as_worker(second, invitee)
    # The first browser is signed out, and its session is gone from the store.
    assert not Session.objects.filter(session_key=first_key).exists()
    assert first.get(reverse("annotation:work")).status_code == 403


def test_joining_in_a_browser_signed_in_as_someone_else(invitee):
    client = Client()
    client.force_login(StaffFactory())
    assert join(client, invitee.invite_token).status_code == 302
    assert signed_in_as_worker(client, invitee)
    second = Client()
    join(second, invitee.invite_token)
    assert client.get(reverse("annotation:work")).status_code == 403


def test_a_project_may_allow_more_sessions_per_worker(db):
    project = build_project(max_sessions_per_worker=2)
    worker = worker_create(project=project)
    clients = [Client() for _ in range(3)]
    for client in clients:
        join(client, worker.invite_token)
    assert [signed_in_as_worker(client, worker) for client in clients] == [False, True, True]


def test_create_project_sets_the_browsers_per_worker(db):
    dataset = ExampleFactory().dataset
    args = ["--name", "Two", "--dataset", dataset.slug]
    call_command(
        "create_project", *args, "--slug", "two", "--max-sessions-per-worker", "2", stdout=io.StringIO()
    )
    call_command("create_project", *args, "--slug", "one", stdout=io.StringIO())
    assert dict(AnnotationProject.objects.values_list("slug", "max_sessions_per_worker")) == {
        "two": 2,
        "one": 1,
    }
    with pytest.raises(CommandError, match="--max-sessions-per-worker: Ensure this value is greater than"):
        call_command("create_project", *args, "--slug", "zero", "--max-sessions-per-worker", "0")


def test_max_sessions_per_worker_must_be_at_least_one(db):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        build_project(max_sessions_per_worker=0)


# ----------------------------------------------------------------------------- rotate and revoke


def test_rotating_gives_a_new_link_and_ends_the_old_links_sessions(invitee):
    client = Client()
    join(client, invitee.invite_token)
    old = invitee.invite_token
    Worker.objects.filter(pk=invitee.pk).update(invite_expires_at=timezone.now() + timedelta(hours=1))
    rotated = worker_invite_rotate(worker=invitee)
    assert rotated.invite_token != old
    assert rotated.invite_expires_at > timezone.now() + timedelta(days=13)
    assert client.get(reverse("annotation:work")).status_code == 403
    assert join(Client(), old).status_code == 404
    fresh = Client()
    assert join(fresh, rotated.invite_token).status_code == 302
    assert signed_in_as_worker(fresh, rotated)


def test_rotating_ends_sessions_made_before_they_were_recorded(invitee):
    # A session this version did not record (made before the upgrade, or by force_login): the
    # account's session hash changes, so it ends too.
    worker_join(invite_token=invitee.invite_token)
    invitee.refresh_from_db()
    client = Client()
    client.force_login(invitee.user)
    assert signed_in_as_worker(client, invitee)
    worker_invite_rotate(worker=invitee)
    assert client.get(reverse("annotation:work")).status_code == 403


def test_rotating_never_touches_a_password_the_account_uses(project):
    user = UserFactory()
    user.set_password("a long and unusual passphrase 71")
    user.save()
    worker = worker_create(project=project, user=user)
    worker_invite_rotate(worker=worker)
    user.refresh_from_db()
    assert user.check_password("a long and unusual passphrase 71")


def test_revoking_kills_the_link_the_sessions_and_the_api_token(invitee):
    client = Client()
    join(client, invitee.invite_token)
    api_token = worker_api_token(worker=invitee)
    old = invitee.invite_token
    revoked = worker_invite_revoke(worker=invitee)
    assert revoked.invite_expires_at is None and revoked.invite_token != old
    assert client.get(reverse("annotation:work")).status_code == 403
    assert join(Client(), old).status_code == 404
    # No one holds the new token, and it would not work anyway.
    assert join(Client(), revoked.invite_token).status_code == 410
    assert not Token.objects.filter(key=api_token).exists()
    # Rotating gives the worker a working link again.
    assert join(Client(), worker_invite_rotate(worker=revoked).invite_token).status_code == 302


def test_rotate_invites_command(project, tmp_path):
    workers = [worker_create(project=project, external_id=f"c-{i}") for i in range(3)]
    other = worker_create(project=build_project(slug="other"), external_id="elsewhere")
    old = {worker.pk: worker.invite_token for worker in Worker.objects.all()}
    out = tmp_path / "new-links.csv"
    call_command("rotate_invites", project=project.slug, workers=[workers[0].pk, workers[2].pk], out=str(out))
    rows = invite_rows(out)
    assert [int(row["worker_id"]) for row in rows] == [workers[0].pk, workers[2].pk]
    now = {worker.pk: worker for worker in Worker.objects.all()}
    for row in rows:
        worker = now[int(row["worker_id"])]
        assert row["invite_url"] == f"{JOIN}#{worker.invite_token}" and worker.invite_token != old[worker.pk]
        assert row["invite_expires_at"] == worker.invite_expires_at.isoformat()
    assert now[workers[1].pk].invite_token == old[workers[1].pk]
    assert now[other.pk].invite_token == old[other.pk]

    call_command("rotate_invites", project=project.slug, out=str(out), base_url="https://mwe.example/")
    assert {row["invite_url"].split("#")[0] for row in invite_rows(out)} == {f"https://mwe.example{JOIN}"}
    assert len(invite_rows(out)) == 3

    call_command("rotate_invites", project=project.slug, workers=[workers[1].pk], revoke=True)
    assert Worker.objects.get(pk=workers[1].pk).invite_expires_at is None

    with pytest.raises(CommandError, match="not a worker of project"):
        call_command("rotate_invites", project=project.slug, workers=[other.pk], out=str(out))
    with pytest.raises(CommandError, match="no annotation project"):
        call_command("rotate_invites", project="missing", out=str(out))
    with pytest.raises(CommandError, match="--out"):
        call_command("rotate_invites", project=project.slug)


def test_admin_actions_rotate_and_revoke(project):
    workers = [worker_create(project=project, external_id=f"=c-{i}") for i in range(2)]
    old = {worker.pk: worker.invite_token for worker in workers}
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    changelist = reverse("admin:annotation_worker_changelist")
    response = client.post(
        changelist,
        {"action": "rotate_invites", "_selected_action": [w.pk for w in workers], "index": "0"},
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(response.content.decode().splitlines()))
    now = {worker.pk: worker for worker in Worker.objects.all()}
    assert {int(row["worker_id"]) for row in rows} == set(old)
    for row in rows:
        worker = now[int(row["worker_id"])]
        assert worker.invite_token != old[worker.pk]
        assert row["invite_url"] == f"http://testserver{JOIN}#{worker.invite_token}"
        assert row["external_id"].startswith("'=")  # a spreadsheet shows it as text
    response = client.post(
        changelist, {"action": "revoke_invites", "_selected_action": [workers[0].pk], "index": "0"}
    )
    assert response.status_code == 302
    assert Worker.objects.get(pk=workers[0].pk).invite_expires_at is None
    assert Worker.objects.get(pk=workers[1].pk).invite_expires_at is not None
    assert {"rotate_invites", "revoke_invites"} <= set(
        admin_site._registry[Worker].get_actions(response.wsgi_request)
    )


def test_researchers_without_the_change_permission_get_no_invite_actions(project):
    worker_create(project=project)
    client = Client()
    client.force_login(StaffFactory())
    assert client.get(reverse("admin:annotation_worker_changelist")).status_code == 403


# ----------------------------------------------------------------------------- logs


@pytest.fixture
def all_logs(caplog):
    """Every record of every logger, the "django" ones included (they do not propagate to the root,
    where caplog listens)."""
    django_logger = logging.getLogger("django")
    django_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    yield caplog
    django_logger.removeHandler(caplog.handler)


def _logged(caplog) -> str:
    return "\n".join(
        f"{record.name} {record.getMessage()} {record.args!r} {getattr(record, 'request', '')!r}"
        for record in caplog.records
    )


def test_the_token_appears_in_no_log_line(invitee, all_logs):
    token = invitee.invite_token
    # A CSRF failure (no cookie): Django logs the refused request's path.
    assert join(Client(enforce_csrf_checks=True), token).status_code == 403
    # Not found and gone: django.request logs both with their path.
    assert join(Client(), token + "x").status_code == 404
    expired = worker_create(project=invitee.projects.get(), external_id="late")
    Worker.objects.filter(pk=expired.pk).update(invite_expires_at=timezone.now() - timedelta(days=1))
    assert join(Client(), expired.invite_token).status_code == 410
    # A token pasted into a path by hand (or a link from before the fragment links).
    assert Client().get(f"{JOIN}{token}/").status_code == 404
    assert Client(enforce_csrf_checks=True).post(f"{JOIN}{token}/").status_code == 404
    # gunicorn's access log line (mwe_site/gunicorn.conf.py), as gunicorn writes it.
    logging.getLogger("gunicorn.access").info(
        '%(h)s "%(r)s" %(s)s %(f)s',
        {"h": "192.0.2.1", "r": f"GET {JOIN}{token}/ HTTP/1.1", "s": "404", "f": "-"},
    )
    logged = _logged(all_logs)
    assert "Forbidden (CSRF cookie not set.)" in logged and "Not Found" in logged and "Gone" in logged
    assert token not in logged and expired.invite_token not in logged
    assert "/annotate/join/[redacted]/" in logged

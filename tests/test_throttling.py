"""The shared rate limits (mwe_site/throttling.py): one count per client and scope, 429 with
Retry-After past the rate, staff exempt, clients told apart by an address they cannot choose, and, in
production, one count across every process because it lives in Redis."""

import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from django.http import HttpResponse

from mwe_site import throttling
from tests.builders import StaffFactory, UserFactory

REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def limited_view():
    @throttling.throttled("search")
    def view(request):
        return HttpResponse("ok")

    return view


def statuses(view, requests) -> list[int]:
    return [view(request).status_code for request in requests]


def anonymous(rf, address="203.0.113.5", **headers):
    from django.contrib.auth.models import AnonymousUser

    request = rf.get("/", REMOTE_ADDR=address, **headers)
    request.user = AnonymousUser()
    return request


@pytest.mark.parametrize(
    ("rate", "expected"),
    [("30/minute", (30, 60)), ("1/s", (1, 1)), ("5/hour", (5, 3600)), ("100/day", (100, 86400))],
)
def test_rates_parse(rate, expected):
    parsed = throttling.rate_parse(rate=rate)
    assert (parsed.requests, parsed.seconds) == expected


@pytest.mark.parametrize("rate", ["", "30", "x/minute", "0/minute", "30/fortnight", "30/"])
def test_a_bad_rate_is_named(rate):
    with pytest.raises(ValueError, match="rate"):
        throttling.rate_parse(rate=rate)


def test_every_configured_rate_parses():
    for scope, rate in settings.MWE_THROTTLE_RATES.items():
        assert throttling.rate_parse(rate=rate).requests >= 1, scope


def test_past_the_rate_a_client_gets_429_with_retry_after(rf, settings, limited_view):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "search": "3/minute"}
    assert statuses(limited_view, [anonymous(rf) for _ in range(3)]) == [200, 200, 200]
    refused = limited_view(anonymous(rf))
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Too many requests" in refused.content.decode()
    # Another address has a count of its own.
    assert limited_view(anonymous(rf, address="203.0.113.6")).status_code == 200


def test_signed_in_users_are_counted_by_account_and_staff_not_at_all(rf, settings, limited_view, db):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "search": "2/minute"}
    user, staff = UserFactory(), StaffFactory()

    def as_user(who, address):
        request = rf.get("/", REMOTE_ADDR=address)
        request.user = who
        return request

    # The same account from two addresses shares one count.
    assert statuses(limited_view, [as_user(user, "198.51.100.1"), as_user(user, "198.51.100.2")]) == [
        200,
        200,
    ]
    assert limited_view(as_user(user, "198.51.100.3")).status_code == 429
    assert statuses(limited_view, [as_user(staff, "198.51.100.1") for _ in range(5)]) == [200] * 5


def test_without_a_proxy_x_forwarded_for_cannot_choose_the_clients_identity(rf, settings, limited_view):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "search": "2/minute"}
    # The default settings: no proxy in front (make run, the tests).
    spoofed = [anonymous(rf, HTTP_X_FORWARDED_FOR=f"10.0.0.{i}") for i in range(3)]
    assert statuses(limited_view, spoofed) == [200, 200, 429]


def test_behind_one_proxy_the_address_it_saw_is_the_client(rf, settings, limited_view):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "search": "1/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    # Whatever a client writes itself comes before the entry the proxy appends.
    first = anonymous(rf, address="127.0.0.1", HTTP_X_FORWARDED_FOR="1.1.1.1, 192.0.2.10")
    second = anonymous(rf, address="127.0.0.1", HTTP_X_FORWARDED_FOR="2.2.2.2, 192.0.2.10")
    other = anonymous(rf, address="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.11")
    assert statuses(limited_view, [first, second, other]) == [200, 429, 200]


def test_a_cache_that_does_not_answer_lets_requests_through(rf, settings, limited_view, caplog):
    # Django swaps the cache handlers when CACHES changes (django.test.signals).
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    assert limited_view(anonymous(rf)).status_code == 200
    assert "rate limit search not applied" in caplog.text


def redis_available() -> bool:
    import redis

    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        return False


@pytest.mark.skipif(not redis_available(), reason="needs Redis on 127.0.0.1:6379")
def test_with_redis_every_process_shares_one_count(tmp_path):
    """Two processes with the production cache configuration (CACHE_URL): the requests one makes
    count against the other's limit, so N gunicorn workers do not multiply a client's rate."""
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()
    script = textwrap.dedent(
        """
        import os, sys
        import django
        django.setup()
        from django.contrib.auth.models import AnonymousUser
        from django.test import RequestFactory
        from mwe_site.throttling import throttle_wait

        statuses = []
        for _ in range(int(sys.argv[1])):
            request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9")
            request.user = AnonymousUser()
            statuses.append("refused" if throttle_wait(request=request, scope="search") else "ok")
        print(" ".join(statuses))
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "mwe_site.settings.test",
        "CACHE_URL": REDIS_URL,
        "MWE_THROTTLE_SEARCH": "5/hour",
        "MWE_VAR_DIR": str(tmp_path),
    }

    def run(count: int) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", script, str(count)],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout.split()

    try:
        assert run(3) == ["ok"] * 3
        assert run(3) == ["ok", "ok", "refused"]
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()


def test_deploy_check_warns_when_processes_do_not_share_the_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert [message.id for message in throttling.shared_cache_check()] == ["mwe_site.W001"]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    assert throttling.shared_cache_check() == []

"""Sign-in attempts at the admin's login page are limited per address and per username (issue 13,
finding 2): past the limit even the right password is refused until the window ends."""

import types

import pytest
from django.test import Client
from django.urls import reverse

from mwe_site import throttling
from tests.builders import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long and unusual passphrase 71"


class Clock:
    """The throttle's clock, moved by hand: windows end when the test says so, never by chance."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(throttling, "time", types.SimpleNamespace(time=clock.time))
    return clock


@pytest.fixture
def admin_user(db):
    user = UserFactory(username="boss", is_staff=True, is_superuser=True)
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(password: str, *, username: str = "boss", address: str = "203.0.113.5"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(reverse("admin:login"), {"username": username, "password": password})
    return client, response


def signed_in(client: Client) -> bool:
    return client.get(reverse("admin:index")).status_code == 200


def test_thirty_wrong_passwords_then_the_right_one_is_refused_until_the_window_ends(
    admin_user, clock, settings
):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "login": "10/minute"}
    for _ in range(30):
        sign_in("wrong")
    client, response = sign_in(PASSWORD)
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert int(response["Retry-After"]) >= 1
    assert not signed_in(client)
    clock.now += 60
    client, response = sign_in(PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_the_limit_counts_per_username_across_addresses(admin_user, clock, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "login": "5/minute"}
    for n in range(5):
        sign_in("wrong", address=f"198.51.100.{n}")
    # A new address, the right password, the same account: refused.
    client, response = sign_in(PASSWORD, address="192.0.2.77")
    assert response.status_code == 429 and not signed_in(client)
    # Another account from yet another address is not affected.
    other = UserFactory(username="deputy", is_staff=True)
    other.set_password(PASSWORD)
    other.save()
    client, response = sign_in(PASSWORD, username="deputy", address="192.0.2.78")
    assert response.status_code == 302 and signed_in(client)


def test_usernames_are_counted_without_case_or_surrounding_space(admin_user, clock, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "login": "3/minute"}
    for n, name in enumerate(["BOSS", " boss", "Boss "]):
        sign_in("wrong", username=name, address=f"198.51.100.{n}")
    _, response = sign_in(PASSWORD, address="192.0.2.77")
    assert response.status_code == 429


def test_the_limit_counts_per_address_across_usernames(admin_user, clock, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "login": "5/minute"}
    for n in range(5):
        sign_in("wrong", username=f"guess{n}")
    client, response = sign_in(PASSWORD)
    assert response.status_code == 429 and not signed_in(client)
    client, response = sign_in(PASSWORD, address="192.0.2.99")
    assert response.status_code == 302 and signed_in(client)


def test_showing_the_login_page_is_not_an_attempt(admin_user, clock, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "login": "2/minute"}
    client = Client(REMOTE_ADDR="203.0.113.5")
    for _ in range(5):
        assert client.get(reverse("admin:login")).status_code == 200
    _, response = sign_in(PASSWORD)
    assert response.status_code == 302


def test_throttle_wait_counts_against_the_identity_given(rf, clock, settings):
    settings.MWE_THROTTLE_RATES = {**settings.MWE_THROTTLE_RATES, "login": "1/minute"}
    request = rf.post("/")
    assert throttling.throttle_wait(request=request, scope="login", ident="username:a") is None
    assert throttling.throttle_wait(request=request, scope="login", ident="username:b") is None
    assert throttling.throttle_wait(request=request, scope="login") is None
    wait = throttling.throttle_wait(request=request, scope="login", ident="username:a")
    assert wait is not None and 0 < wait <= 60

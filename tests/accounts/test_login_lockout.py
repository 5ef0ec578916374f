"""Staff sign-in is locked after repeated failures (django-axes), per account and per client
address, even when the right password comes next; API tokens are not affected."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt

from ops.models import SecurityEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def support(settings):  # type: ignore[no-untyped-def]
    settings.AXES_FAILURE_LIMIT = 5
    user = UserFactory(username="support", is_staff=True)
    user.set_password("the-right-password-1")
    user.save()
    return user


def sign_in(client, username: str, password: str, address: str = "198.51.100.7"):  # type: ignore[no-untyped-def]
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_the_right_password_after_too_many_wrong_ones_is_refused(client, support):
    answers = [sign_in(client, "support", f"wrong-{i}").status_code for i in range(5)]
    assert answers == [200, 200, 200, 200, 429]  # the form again, then locked at the limit
    locked = sign_in(client, "support", "the-right-password-1")
    assert locked.status_code == 429
    assert b"Sign-in locked" in locked.content
    assert "_auth_user_id" not in client.session
    assert AccessAttempt.objects.filter(username="support").exists()
    assert SecurityEvent.objects.filter(kind="staff_login_failed").exists()


def test_another_address_does_not_unlock_the_account(client, support):
    for i in range(5):
        sign_in(client, "support", f"wrong-{i}", address=f"203.0.113.{i}")
    assert sign_in(client, "support", "the-right-password-1", "192.0.2.1").status_code == 429


def test_a_forwarded_for_header_is_not_a_new_address(client, support):
    for i in range(5):
        client.post(
            LOGIN,
            {"username": f"nobody{i}", "password": "x"},
            REMOTE_ADDR="198.51.100.9",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        )
    assert sign_in(client, "support", "the-right-password-1", "198.51.100.9").status_code == 429


def test_a_success_before_the_limit_resets_the_count(client, support):
    for i in range(4):
        sign_in(client, "support", f"wrong-{i}")
    assert sign_in(client, "support", "the-right-password-1").status_code == 302

"""`setup_demo` (run by every `make run`): the same demo password on every run."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def run_setup(capsys) -> str:  # type: ignore[no-untyped-def]
    call_command("setup_demo")
    out = capsys.readouterr().out
    match = re.search(r"password for all: (\S+)\)", out)
    assert match, out
    return match.group(1)


def test_password_is_chosen_once_and_kept(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    first = run_setup(capsys)
    support = get_user_model().objects.get(username="support")
    hash_before = support.password
    assert run_setup(capsys) == first
    support.refresh_from_db()
    assert support.password == hash_before  # unchanged: sessions stay valid
    assert support.check_password(first)
    assert (tmp_path / "demo-password").stat().st_mode & 0o077 == 0


def test_a_given_password_wins(settings, tmp_path, monkeypatch, capsys):
    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_PASSWORD", "given-demo-password")
    assert run_setup(capsys) == "given-demo-password"
    assert get_user_model().objects.get(username="buyer").check_password("given-demo-password")


def test_the_demo_seller_has_opted_in_and_staff_have_not(settings, tmp_path, capsys):
    from accounts.models import SellerProfile

    settings.DEBUG = True
    settings.VAR_DIR = tmp_path
    run_setup(capsys)
    run_setup(capsys)
    sellers = SellerProfile.objects.values_list("user__username", flat=True)
    assert list(sellers) == ["seller"]

"""One beat sends the scheduled jobs; a second waits and takes over when the first stops
(two beats ran every job twice, in the same second)."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django_celery_beat.schedulers import DatabaseScheduler

from ops.beat import LEASE_KEY, SingleBeatScheduler, beat_lease


@pytest.fixture(autouse=True)
def _no_leader():  # type: ignore[no-untyped-def]
    cache.delete(LEASE_KEY)
    yield
    cache.delete(LEASE_KEY)


def test_one_beat_holds_the_lease_and_the_other_takes_over_when_it_lapses():
    assert beat_lease("a", 30) is True
    assert beat_lease("b", 30) is False
    assert beat_lease("a", 30) is True  # renewed
    cache.delete(LEASE_KEY)  # a's lease lapsed: it died
    assert beat_lease("b", 30) is True
    assert beat_lease("a", 30) is False


def test_a_lease_not_renewed_expires():
    assert beat_lease("a", 1) is True
    time.sleep(1.3)
    assert beat_lease("b", 30) is True


def beat(beat_id: str) -> SingleBeatScheduler:
    scheduler = SingleBeatScheduler.__new__(SingleBeatScheduler)  # no app, no database
    scheduler.beat_id, scheduler._was_leader, scheduler.max_interval = beat_id, None, 5
    scheduler._alerts_at = float("inf")  # alerts: tests/ops/test_workers_silent.py
    return scheduler


def test_only_the_leader_ticks_the_schedule(monkeypatch):
    ticks: list[str] = []
    monkeypatch.setattr(
        DatabaseScheduler, "tick", lambda self, *a, **k: ticks.append(self.beat_id) or 1.0
    )
    first, second = beat("first"), beat("second")
    for _ in range(3):
        first.tick()
        assert second.tick() == 5.0  # waits, asks again soon
    assert ticks == ["first"] * 3
    cache.delete(LEASE_KEY)  # the first beat stopped renewing
    second.tick()
    first.tick()
    assert ticks[-1] == "second" and ticks.count("second") == 1

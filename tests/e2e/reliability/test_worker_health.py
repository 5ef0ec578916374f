"""`manage.py worker_health` tells an orchestrator whether workers answer through the broker:
0 with the worker running, 1 once it is killed (nothing watched the workers before)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.peers.celery_worker import CeleryWorker

pytestmark = pytest.mark.integration


def test_worker_health_follows_the_worker(worker: CeleryWorker) -> None:
    out = io.StringIO()
    call_command("worker_health", "--timeout", "5", stdout=out)
    assert ": ok" in out.getvalue()
    worker.kill()
    try:
        with pytest.raises(CommandError, match="0 worker"):
            call_command("worker_health", "--timeout", "2", stdout=io.StringIO())
    finally:
        worker.start()

"""A real Celery worker for the reliability suite.

``celery_worker_process`` (session) starts ``celery -A config worker`` (prefork, two
processes) in its own process group against the pytest-django test database and the Redis
broker of ``REDIS_URL``, with ``CELERY_TASK_ALWAYS_EAGER=false``, a short visibility timeout
(task time limits stay under it) and unacknowledged messages looked for every second, so a
task whose worker was SIGKILLed is delivered again within seconds. It loads
``tests.peers.celery_worker_hooks`` (test-only settings and pause points). ``restart()``
starts it again after ``kill()``; ``wait_idle()`` waits until the queue is empty and nothing
is unacknowledged. Extra environment for the worker comes from the session fixture
``celery_worker_extra_env`` (override it in a conftest).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT = 6
SOFT_TIME_LIMIT = 4
TIME_LIMIT = 5
START_TIMEOUT = 60.0


def kill_group(process: subprocess.Popen[bytes], sig: int, wait: float = 30.0) -> bool:
    """Signal ``process``'s whole process group (a worker and its pool children, started with
    ``start_new_session``), wait for the process, then up to 10 s until no member is left;
    True once the group has gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    process.wait(timeout=wait)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def database_url(settings_dict: dict) -> str:
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class CeleryWorker:
    def __init__(self, env: dict[str, str], broker_url: str, workdir: Path) -> None:
        self.env = env
        self.broker_url = broker_url
        self.workdir = workdir
        self.hook_dir = Path(env["ORDERPAY_TEST_HOOK_DIR"])
        self.email_dir = Path(env["ORDERPAY_TEST_EMAIL_DIR"])
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        name = f"reliability-{uuid.uuid4().hex[:8]}@%h"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "2",
                    "--loglevel",
                    "INFO",
                    "-n",
                    name,
                    "-I",
                    "tests.peers.celery_worker_hooks",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited:\n{self.log_tail()}")
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the Celery worker did not become ready:\n{self.log_tail()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the main process and its pool children)."""
        if self.process is None or self.process.poll() is not None:
            return
        kill_group(self.process, sig)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.kill()  # leftovers of the group, if any

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, chars: int = 4000) -> str:
        path = self.log_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # --- the broker -----------------------------------------------------------------------
    def redis(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.broker_url)

    def queued(self) -> tuple[int, int]:
        """(messages waiting, messages delivered and not yet acknowledged)."""
        client = self.redis()
        try:
            return int(client.llen("celery")), int(client.hlen("unacked"))
        finally:
            client.close()

    def purge(self) -> None:
        client = self.redis()
        try:
            client.delete("celery", "unacked", "unacked_index")
        finally:
            client.close()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until no task waits or runs (each check twice in a row, a moment apart)."""
        deadline = time.monotonic() + timeout
        calm = 0
        while True:
            calm = calm + 1 if self.queued() == (0, 0) else 0
            if calm >= 3:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the worker did not drain its queue {self.queued()}:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    # --- pause points (see tests/peers/celery_worker_hooks.py) -----------------------------
    def block(self, point: str) -> None:
        (self.hook_dir / f"reached-{point}").unlink(missing_ok=True)
        (self.hook_dir / f"block-{point}").write_text("")

    def unblock(self, point: str) -> None:
        (self.hook_dir / f"block-{point}").unlink(missing_ok=True)

    def wait_reached(self, point: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not (self.hook_dir / f"reached-{point}").exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"no task reached {point}:\n{self.log_tail()}")
            time.sleep(0.05)

    def emails(self) -> list[str]:
        """Every message the worker sent, one string each.

        Django's file backend names a file after the second and the backend object's id(), so
        two messages sent in one second by backends that happened to share an address land in
        one file: each message in it ends with a line of 79 dashes.
        """
        messages = []
        for path in sorted(self.email_dir.glob("*")):
            text = path.read_text(errors="replace")
            messages += [m for m in text.split("\n" + "-" * 79 + "\n") if m.strip()]
        return messages

    def clear_emails(self) -> None:
        for path in self.email_dir.glob("*"):
            path.unlink()


@pytest.fixture(scope="session")
def celery_worker_extra_env() -> dict[str, str]:
    """Override to give the worker more environment (provider settings of a peer ...)."""
    return {}


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup, django_db_blocker, celery_worker_extra_env
) -> Iterator[CeleryWorker]:
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("a real Celery worker needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL)")
    with django_db_blocker.unblock():
        db_url = database_url(connection.settings_dict)
    workdir = Path(tempfile.mkdtemp(prefix="orderpay-worker-"))
    (workdir / "hooks").mkdir()
    (workdir / "emails").mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": db_url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "CELERY_TASK_SOFT_TIME_LIMIT": str(SOFT_TIME_LIMIT),
        "CELERY_TASK_TIME_LIMIT": str(TIME_LIMIT),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "ORDERPAY_TEST_HOOK_DIR": str(workdir / "hooks"),
        "ORDERPAY_TEST_EMAIL_DIR": str(workdir / "emails"),
        "PYTHONUNBUFFERED": "1",
        **celery_worker_extra_env,
    }
    worker = CeleryWorker(env, settings.CELERY_BROKER_URL, workdir)
    worker.purge()
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        worker.purge()

"""Processes of a production deployment on one machine, for the scale-out test: gunicorn web
nodes, Celery workers and beats, each in its own process group with its own log, all with
production settings and one environment (database, Redis with a key prefix, the S3 bucket,
the SMTP server, Stripe)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.peers.celery_worker import kill_group

REPO_ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 90.0


class Process:
    """One process of the deployment (and its children: gunicorn's and Celery's pools)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = logdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready: Callable[[Process], bool]) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not ready(self):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not become ready:\n{self.log()[-4000:]}")
            time.sleep(0.2)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, wait: float = 30.0) -> None:
        """Signal the whole process group; wait until it has gone (SIGKILL what is left)."""
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            if kill_group(self.process, sig, wait):
                return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL to whatever is left."""
        if self.alive:
            self.kill(signal.SIGTERM, wait=20)
        self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def web_node(name: str, port: int, env: dict[str, str], logdir: Path) -> Process:
    node = Process(
        name,
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py"],
        {**env, "PORT": str(port), "WEB_CONCURRENCY": "2"},
        logdir,
    )
    node.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return node


def web_ready(node: Process) -> bool:
    try:
        return requests.get(node.url + "/healthz", timeout=2).status_code == 200  # type: ignore[attr-defined]
    except requests.RequestException:
        return False


def worker(
    name: str, env: dict[str, str], logdir: Path, pause_points: bool = False, concurrency: int = 2
) -> Process:
    """A worker of ``concurrency`` pool processes; with ``pause_points`` it loads the test
    pause points (tests/peers/celery_worker_hooks.py, driven by ORDERPAY_TEST_HOOK_DIR)."""
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO"]
    argv += ["--concurrency", str(concurrency), "-n", f"{name}@%h"]
    if pause_points:
        argv += ["-I", "tests.peers.celery_worker_hooks"]
    return Process(name, argv, env, logdir)


def worker_ready(process: Process) -> bool:
    return " ready." in process.log()


def beat(name: str, env: dict[str, str], logdir: Path) -> Process:
    argv = [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"]
    argv += ["--pidfile", str(logdir / f"{name}.pid")]
    return Process(name, argv, env, logdir)


def beat_ready(process: Process) -> bool:
    return "beat: Starting" in process.log()


def sent_jobs(process: Process) -> list[str]:
    """The scheduled jobs this beat sent, in order (its ``Sending due task`` log lines)."""
    return [
        line.split("Sending due task ", 1)[1].split(" (", 1)[0]
        for line in process.log().splitlines()
        if "Sending due task " in line
    ]

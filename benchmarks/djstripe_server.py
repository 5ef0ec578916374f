"""The dj-stripe peer of the webhook benchmark (benchmarks/djstripe_peer): its virtualenv,
its database and endpoint, its gunicorn, and what it stored.

The virtualenv lives in var/bench/djstripe-venv and is rebuilt when requirements.txt changes;
the database is ``<DATABASE_URL's name>_djstripe``, migrated once per run (dj-stripe's
migrations take about a minute).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from pathlib import Path

from benchmarks.common import REPO, WEB_WORKERS, create_database, wait_until_answers

PEER = REPO / "benchmarks" / "djstripe_peer"
VENV = REPO / "var" / "bench" / "djstripe-venv"
PYTHON = VENV / "bin" / "python"
#: dj-stripe accepts only keys shaped like Stripe's (24+ letters or digits after the prefix);
#: localstripe takes any.
STRIPE_KEY = "sk_test_orderpaybenchpeer00000000"


def ensure_venv() -> Path:
    requirements = PEER / "requirements.txt"
    stamp = VENV / f".installed-{hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]}"
    if not stamp.exists():
        print("installing the dj-stripe peer's virtualenv (var/bench/djstripe-venv)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
            check=True,
            cwd=VENV,  # not the repository: pip would check orderpay's own requirements too
        )
        stamp.touch()
    return PYTHON


def peer_env(db_url: str, stripe_url: str, mode: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "benchmarks.djstripe_peer.settings",
        "DJSTRIPE_PEER_DATABASE_URL": db_url,
        "DJSTRIPE_PEER_SECRET_KEY": secrets.token_urlsafe(40),
        "DJSTRIPE_PEER_STRIPE_KEY": STRIPE_KEY,
        "DJSTRIPE_PEER_STRIPE_API_BASE": stripe_url,
        "DJSTRIPE_PEER_MODE": mode,
    }


def prepare(db_url: str, stripe_url: str, secret: str, logdir: Path) -> str:
    """A fresh database with dj-stripe's tables and one webhook endpoint signed with
    ``secret``; returns the endpoint's path."""
    python = ensure_venv()
    create_database(db_url)
    done = subprocess.run(
        [str(python), "-m", "benchmarks.djstripe_peer.setup_endpoint", secret],
        env=peer_env(db_url, stripe_url, "default"),
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    (logdir / "djstripe-setup.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"dj-stripe peer setup failed; see {logdir / 'djstripe-setup.log'}")
    return done.stdout.strip().splitlines()[-1]


def start(
    mode: str, db_url: str, stripe_url: str, port: int, logdir: Path
) -> subprocess.Popen[bytes]:
    """gunicorn with WEB_WORKERS sync workers serving the peer in ``mode``; returns once it
    answers."""
    log = logdir / f"djstripe-{mode}.log"
    process = subprocess.Popen(
        [
            str(PYTHON),
            "-m",
            "gunicorn",
            "benchmarks.djstripe_peer.wsgi",
            "--workers",
            str(WEB_WORKERS),
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            "/dev/null",
        ],
        env=peer_env(db_url, stripe_url, mode),
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_until_answers(f"http://127.0.0.1:{port}/", process, "the dj-stripe peer", log)
    return process


def counts(db_url: str, prefix: str) -> tuple[int, int]:
    """(triggers stored and valid, triggers processed) among the events whose id starts with
    ``prefix``."""
    sql = (
        "SELECT count(*) FILTER (WHERE valid), count(*) FILTER (WHERE valid AND processed) "
        "FROM djstripe_webhookeventtrigger WHERE starts_with(body::jsonb->>'id', %s)"
    )
    import psycopg

    with psycopg.connect(db_url) as connection:
        row = connection.execute(sql, [prefix]).fetchone()
    return int(row[0]), int(row[1])

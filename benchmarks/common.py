"""What every benchmark shares: a dedicated PostgreSQL database per run, Django set up on it,
the machine's description, percentiles and a small table.

Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/orderpay_bench; each
benchmark uses ``<that name>_<benchmark>`` and drops it at the end unless BENCH_KEEP_DB=1),
REDIS_URL (default redis://127.0.0.1:6379/10).
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/orderpay_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
#: sync gunicorn workers for every web server a benchmark starts (orderpay and its peers)
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "4"))


def base_database_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def redis_url() -> str:
    return os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)


def database_url(suffix: str) -> str:
    """postgres://.../<base name>_<suffix>: the run's own database."""
    parts = urlsplit(base_database_url())
    name = parts.path.lstrip("/") or "orderpay_bench"
    return urlunsplit(parts._replace(path=f"/{name}_{suffix}"))


def _psql_args(url: str) -> list[str]:
    p = urlsplit(url)
    args = [
        "-h",
        p.hostname or "127.0.0.1",
        "-p",
        str(p.port or 5432),
        "-U",
        p.username or "postgres",
    ]
    return args


def _admin(url: str, sql: str) -> None:
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    p = urlsplit(url)
    if p.password:
        env["PGPASSWORD"] = p.password
    subprocess.run(
        ["psql", *_psql_args(url), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def create_database(url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    if not re.fullmatch(r"orderpay_bench\w*", name):
        raise SystemExit(
            f"refusing to create/drop {name!r}: benchmark databases are orderpay_bench*"
        )
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin(url, f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    if os.environ.get("BENCH_KEEP_DB") == "1":
        return
    name = urlsplit(url).path.lstrip("/")
    _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def django_env(db_url: str, **extra: str) -> dict[str, str]:
    """The environment of this process and of the servers and workers a benchmark starts."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "False",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    env.update(extra)
    return env


def setup_django(db_url: str, **extra: str) -> None:
    """Point this process at the run's database (created and migrated) and set Django up."""
    os.environ.update(django_env(db_url, **extra))
    create_database(db_url)
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    import logging

    for name in ("weasyprint", "fontTools", "celery", "django.request"):
        logging.getLogger(name).setLevel(logging.ERROR)


# --- peers ------------------------------------------------------------------------------------
@contextmanager
def bench_anvil(*anvil_args: str) -> Iterator[Any]:
    """An anvil node of the benchmark's own (the tests' peer helper), stopped at the end."""
    import tempfile

    from tests.peers.anvil import find_anvil_binary, start_anvil

    binary = find_anvil_binary()
    if binary is None:
        raise SystemExit("anvil not found: run `make peers` (npm install) or set ANVIL_BIN")
    logdir = Path(tempfile.mkdtemp(prefix="orderpay-bench-anvil-"))
    node = start_anvil(binary, logdir / "anvil.log", list(anvil_args))
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(logdir, ignore_errors=True)


@contextmanager
def bench_database(suffix: str) -> Iterator[str]:
    """The run's database URL (``setup_django`` creates it), dropped at the end."""
    db = database_url(suffix)
    try:
        yield db
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(db)


def rpc_batch(url: str, calls: list[tuple[str, list[Any]]], session: Any) -> list[Any]:
    """One JSON-RPC batch over ``session`` (requests); the results in the calls' order."""
    body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
    answer = session.post(url, json=body, timeout=600).json()
    errors = [a["error"] for a in answer if "error" in a]
    if errors:
        raise SystemExit(f"{len(errors)} JSON-RPC errors, first: {errors[0]}")
    by_id = {a["id"]: a for a in answer}
    return [by_id[i].get("result") for i in range(len(calls))]


# --- figures --------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    """nproc, CPU model, memory, PostgreSQL and Redis versions."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    pg = _version(
        ["psql", *_psql_args(base_database_url()), "-d", "postgres", "-Atc", "SHOW server_version"]
    )
    rd = "?"
    try:
        import redis

        rd = str(redis.Redis.from_url(redis_url()).info("server").get("redis_version"))
    except Exception as exc:  # no Redis: say so
        rd = f"unavailable ({type(exc).__name__})"
    return (
        f"machine: {os.cpu_count()} CPUs (nproc {_version(['nproc'])}), {cpu}, {mem} RAM; "
        f"PostgreSQL {pg}; Redis {rd}; Python {platform.python_version()}"
    )


def _version(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "?"
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


@contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def header(title: str, command: str) -> None:
    print(f"== {title} ==")
    print(f"command: {command}")
    print(machine())
    sys.stdout.flush()


def wait_until_answers(url: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    """Return once ``url`` answers (any status); stop the benchmark if ``process`` exits or
    60 s pass first."""
    import requests

    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit(f"{what} did not start; see {log}") from None
            time.sleep(0.2)

"""Settings: production passes Django's deploy checks, migrations match the models, and the
dummy provider exists only where settings enable it."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from common.errors import ValidationFailed

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


SECRET = "pLx9-" + "k3Vq8ZsR2tWm7YbN4cHj6FdG1eKa5UoXr0iTy" * 2
PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": SECRET,
    "METRICS_TOKEN": "metrics-" + SECRET[:24],
    "ALLOWED_HOSTS": "pay.example.com",
    "RECEIPTS_S3_BUCKET": "pay-receipts",
}


def test_production_check_deploy_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" not in result.stdout  # W021 silenced while preload is off
    assert "System check identified no issues" in result.stdout


def test_production_with_preload_has_no_warnings_at_all():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", SECURE_HSTS_PRELOAD="true", **PRODUCTION
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", DJANGO_SETTINGS_MODULE="config.settings.production")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_migrations_match_the_models():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_dummy_provider_is_refused_when_disabled(settings):
    from payments.providers.registry import get_provider

    get_provider.cache_clear()
    try:
        assert get_provider("dummy").name == "dummy"
        get_provider.cache_clear()
        settings.DUMMY_PROVIDER_ENABLED = False
        with pytest.raises(ValidationFailed) as err:
            get_provider("dummy")
        assert err.value.code == "provider_disabled"
    finally:
        get_provider.cache_clear()


def test_production_refuses_the_dummy_provider_even_if_configured():
    code = (
        "from payments.providers.registry import get_provider\n"
        "try:\n    get_provider('dummy')\nexcept Exception as e:\n    print('refused', e.code)"
    )
    result = manage("shell", "-c", code, PAYMENT_PROVIDER_FIAT="dummy", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "refused provider_disabled" in result.stdout


def test_filesystem_broker_keeps_every_folder_under_its_directory(tmp_path):
    from config.settings.base import filesystem_broker_options

    options = filesystem_broker_options(tmp_path / "broker")
    folders = [v for k, v in options.items() if k.endswith("_folder") or k.startswith("data_")]
    assert "control_folder" in options and len(folders) == 4
    for folder in folders:
        assert Path(folder).is_dir() and Path(folder).is_relative_to(tmp_path / "broker")


def test_processes_default_to_production_settings():
    """A worker, beat or manage.py started without DJANGO_SETTINGS_MODULE never runs on
    development settings (DEBUG, the dummy provider, emails in the console log)."""
    code = "import os, config.celery_app; print(os.environ['DJANGO_SETTINGS_MODULE'])"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECRET"))}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True
    )
    assert done.stdout.strip() == "config.settings.production", done.stderr
    refused = manage("check")  # production settings without a SECRET_KEY: refused
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr


@pytest.mark.parametrize("level", ["warning", "Warning", "DEBUG"])
def test_log_level_is_accepted_in_any_case(level):
    done = manage("check", DJANGO_SETTINGS_MODULE="config.settings.test", LOG_LEVEL=level)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_visibility_timeout_under_the_time_limit_is_refused():
    done = manage(
        "check",
        DJANGO_SETTINGS_MODULE="config.settings.test",
        CELERY_VISIBILITY_TIMEOUT="300",
        CELERY_TASK_TIME_LIMIT="300",
    )
    assert done.returncode != 0 and "CELERY_VISIBILITY_TIMEOUT" in done.stderr


@pytest.mark.postgres
def test_the_broker_key_prefix_keeps_two_deployments_apart(settings):
    """Two deployments on one Redis database: each sees only its own queue."""
    from kombu import Connection

    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("the broker is not Redis here")
    url = settings.CELERY_BROKER_URL
    queue = "prefix-test"

    def connection(prefix: str) -> Connection:
        return Connection(url, transport_options={"global_keyprefix": prefix})

    with connection("deploy-a:") as a, connection("deploy-b:") as b:
        qa, qb = a.SimpleQueue(queue), b.SimpleQueue(queue)
        try:
            qa.put({"n": 1})
            with pytest.raises(qb.Empty):
                qb.get(timeout=0.5)
            message = qa.get(timeout=2)
            assert message.payload == {"n": 1}
            message.ack()
        finally:
            qa.clear()
            qb.clear()
            qa.close()
            qb.close()


def test_the_broker_key_prefix_setting_reaches_kombu():
    done = manage(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get('global_keyprefix'))",
        DJANGO_SETTINGS_MODULE="config.settings.test",
        BROKER_KEY_PREFIX="shop-eu:",
    )
    assert done.stdout.strip().splitlines()[-1] == "shop-eu:", done.stderr[-2000:]

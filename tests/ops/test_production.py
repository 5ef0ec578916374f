"""Production settings behind a TLS proxy, and the gunicorn configuration file."""

from __future__ import annotations

import importlib
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_production_settings(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    monkeypatch.setenv("METRICS_TOKEN", "m" * 24)
    monkeypatch.setenv("ALLOWED_HOSTS", "pay.example.com")
    monkeypatch.setenv("RECEIPTS_S3_BUCKET", "pay-receipts")
    monkeypatch.setenv("CSRF_TRUSTED_ORIGINS", "https://pay.example.com")
    module = importlib.import_module("config.settings.production")
    prod = importlib.reload(module)
    assert prod.DEBUG is False
    assert prod.SESSION_COOKIE_SECURE and prod.CSRF_COOKIE_SECURE
    assert prod.SECURE_HSTS_SECONDS >= 31536000 and prod.SECURE_HSTS_INCLUDE_SUBDOMAINS
    assert prod.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert prod.SECURE_SSL_REDIRECT is True
    assert prod.CSRF_TRUSTED_ORIGINS == ["https://pay.example.com"]
    assert prod.ALLOWED_HOSTS == ["pay.example.com"]
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in prod.MIDDLEWARE
    assert prod.STORAGES["staticfiles"]["BACKEND"].startswith("whitenoise.")
    assert prod.DUMMY_PROVIDER_ENABLED is False
    assert prod.STORAGES["receipts"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert prod.STORAGES["receipts"]["OPTIONS"]["bucket_name"] == "pay-receipts"
    assert any(p == r"^healthz$" for p in prod.SECURE_REDIRECT_EXEMPT)


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("METRICS_TOKEN", "m" * 24)
    monkeypatch.setenv("ALLOWED_HOSTS", "pay.example.com")
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        importlib.reload(importlib.import_module("config.settings.production"))


def test_gunicorn_config(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9001")
    conf = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert conf["wsgi_app"] == "config.wsgi:application"
    assert conf["bind"] == "0.0.0.0:9001" and conf["workers"] == 3
    assert conf["timeout"] <= 60 and conf["max_requests_jitter"] > 0
    assert "x-request-id" in conf["access_log_format"]
    assert conf["preload_app"] is True  # recycled workers fork from a loaded master
    assert callable(conf["post_worker_init"])


def test_production_keeps_database_connections_and_checks_them(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    monkeypatch.setenv("METRICS_TOKEN", "m" * 24)
    monkeypatch.setenv("ALLOWED_HOSTS", "pay.example.com")
    monkeypatch.setenv("RECEIPTS_S3_BUCKET", "pay-receipts")
    monkeypatch.delenv("CONN_MAX_AGE", raising=False)
    base = importlib.import_module("config.settings.base")
    before = dict(base.DATABASES["default"])
    prod = importlib.reload(importlib.import_module("config.settings.production"))
    assert prod.DATABASES["default"]["CONN_MAX_AGE"] == 60
    assert prod.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    # base's dictionary (shared with the other settings modules) is left as it was
    assert base.DATABASES["default"] == before
    monkeypatch.setenv("CONN_MAX_AGE", "0")
    prod = importlib.reload(prod)
    assert prod.DATABASES["default"]["CONN_MAX_AGE"] == 0


@pytest.mark.parametrize("token", [None, "", "short"])
def test_production_refuses_to_start_without_a_metrics_token(monkeypatch, token):
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    monkeypatch.setenv("ALLOWED_HOSTS", "pay.example.com")
    if token is None:
        monkeypatch.delenv("METRICS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("METRICS_TOKEN", token)
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="METRICS_TOKEN"):
        importlib.reload(importlib.import_module("config.settings.production"))

"""Which provider serves which payment method; providers are classes named in settings."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from common.errors import ValidationFailed
from payments.providers.base import PaymentProvider


@cache
def get_provider(name: str) -> PaymentProvider:
    classes: dict[str, str] = settings.PAYMENT_PROVIDER_CLASSES
    if name == "dummy" and not settings.DUMMY_PROVIDER_ENABLED:
        raise ValidationFailed("The dummy provider is disabled here.", code="provider_disabled")
    if name not in classes:
        raise ValidationFailed(f"Unknown payment provider {name!r}.", code="unknown_provider")
    return import_string(classes[name])()


def provider_name_for_method(method: str) -> str:
    providers: dict[str, str] = settings.PAYMENT_PROVIDERS
    if method not in providers:
        raise ValidationFailed(
            f"Unknown payment method {method!r}.",
            code="unknown_method",
            details={"supported": sorted(providers)},
        )
    return providers[method]


def provider_for_method(method: str) -> PaymentProvider:
    return get_provider(provider_name_for_method(method))


def load_providers() -> None:
    """Fail at start-up, not at the first payment, if a configured provider cannot load."""
    get_provider.cache_clear()
    for name in set(settings.PAYMENT_PROVIDERS.values()):
        if name == "dummy" and not settings.DUMMY_PROVIDER_ENABLED:
            continue
        if name in settings.PAYMENT_PROVIDER_CLASSES:
            import_string(settings.PAYMENT_PROVIDER_CLASSES[name])

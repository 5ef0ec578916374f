from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"

    def ready(self) -> None:
        import common.db  # noqa: F401  (registers the ``__any`` lookup the services use)
        from payments.providers import registry

        registry.load_providers()

        from payments.selectors import connect_cache_invalidation

        connect_cache_invalidation()

        from payments import tasks  # noqa: F401  (registers the tasks services enqueue by name)

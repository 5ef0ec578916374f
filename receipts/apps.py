from django.apps import AppConfig


class ReceiptsConfig(AppConfig):
    name = "receipts"

    def ready(self) -> None:
        from receipts import receivers, tasks  # noqa: F401  (listeners; tasks enqueued by name)

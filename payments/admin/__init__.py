"""The payments back office; Django's admin autodiscovery imports this package."""

from payments.admin import fees, inbox, payments, refunds, review_queue  # noqa: F401 (registers)

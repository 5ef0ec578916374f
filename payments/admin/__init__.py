"""The payments back office; Django's admin autodiscovery imports this package."""

from payments.admin import payments as payments  # registers the model admins

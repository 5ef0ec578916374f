import os

from celery import Celery

# Production unless told otherwise, like wsgi.py and manage.py: a worker started without
# DJANGO_SETTINGS_MODULE must never run on development settings. `make run` sets local.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")

app = Celery("orderpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker dispatches new webhook events from the inbox when WEBHOOK_DISPATCH is "inbox".
app.steps["worker"].add("payments.webhooks.dispatcher:InboxDispatcher")

"""A minimal Django project receiving Stripe webhooks with dj-stripe, for the side-by-side
webhook benchmark (benchmarks/webhook_ingest.py). It runs in its own virtualenv
(requirements.txt) on its own PostgreSQL database; nothing of orderpay imports it.

Two modes, chosen by DJSTRIPE_PEER_MODE:
- ``default``: dj-stripe as installed: verify the signature, store the trigger, process the
  event in the request (re-read the PaymentIntent from Stripe, sync it, store the Event).
- ``deferred``: ``DJSTRIPE_WEBHOOK_EVENT_CALLBACK`` set to a callback that does nothing, as an
  application that hands the processing to a queue does: verify, store, acknowledge.
"""

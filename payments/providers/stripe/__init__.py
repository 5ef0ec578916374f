"""Card payments through Stripe PaymentIntents (``client.py`` is the only module importing
``stripe``)."""

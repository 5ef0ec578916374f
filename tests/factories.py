from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from accounts.models import SellerProfile
from orders.models import Order
from payments.models import PaymentTransaction


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pass-word-123")


class SellerFactory(UserFactory):
    """A user who has opted in to selling."""

    @factory.post_generation
    def seller_profile(obj, create, extracted, **kwargs):  # type: ignore[no-untyped-def]
        if create:
            SellerProfile.objects.get_or_create(user=obj)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    buyer = factory.SubFactory(UserFactory)
    seller = factory.SubFactory(SellerFactory)
    amount = Decimal("100.00")
    currency = "USD"


class PaymentFactory(factory.django.DjangoModelFactory):
    """A bare payment row; tests that need a status drive it through the services."""

    class Meta:
        model = PaymentTransaction

    order = factory.SubFactory(OrderFactory)
    method = "fiat"
    provider = "dummy"
    amount = factory.LazyAttribute(lambda p: p.order.amount)
    currency = factory.LazyAttribute(lambda p: p.order.currency)

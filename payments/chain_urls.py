from django.urls import URLPattern, URLResolver, re_path

from .chain_api import ConfirmDeliveryView, DisputeView, ResolveDisputeView

_ORDER = r"^api/orders/(?P<order_id>[0-9a-fA-F-]{32,36})"

urlpatterns: list[URLPattern | URLResolver] = [
    re_path(
        _ORDER + r"/confirm-delivery/?$", ConfirmDeliveryView.as_view(), name="confirm-delivery"
    ),
    re_path(_ORDER + r"/dispute/?$", DisputeView.as_view(), name="order-dispute"),
    re_path(_ORDER + r"/resolve-dispute/?$", ResolveDisputeView.as_view(), name="resolve-dispute"),
]

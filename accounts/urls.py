"""The sellers routes of the client API (with and without a trailing slash)."""

from django.urls import URLPattern, URLResolver

from accounts.api import SellerMeView
from common.urls import slash_optional

urlpatterns: list[URLPattern | URLResolver] = [
    *slash_optional("api/sellers/me", SellerMeView.as_view(), "api-seller-me"),
]

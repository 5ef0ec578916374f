from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # Each include belongs to one area; order matters only where paths could overlap.
    path("", include("config.ops_urls")),
    path("", include("payments.webhook_urls")),
    path("", include("payments.chain_urls")),
    path("", include("receipts.urls")),
    path("", include("config.api_urls")),
]

handler404 = "config.exceptions.not_found_view"
handler500 = "config.exceptions.server_error_view"

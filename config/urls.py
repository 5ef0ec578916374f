from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path(
        "",
        TemplateView.as_view(
            template_name="home.html", extra_context={"platform_name": settings.PLATFORM_NAME}
        ),
        name="home",
    ),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Each include belongs to one area; order matters only where paths could overlap.
    path("", include("config.ops_urls")),
    path("", include("payments.webhooks.urls")),
    path("", include("receipts.urls")),
    path("", include("accounts.urls")),
    path("", include("payments.api.urls")),
]

handler404 = "config.exceptions.not_found_view"
handler500 = "config.exceptions.server_error_view"

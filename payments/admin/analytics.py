"""The payments analytics page of the back office."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from common.errors import DomainError
from payments.admin.charts import analytics_charts
from payments.admin.forms import PeriodForm
from payments.analytics import analytics_period, payment_analytics, payment_analytics_csv


class AnalyticsMixin:
    """The analytics page under the payments list."""

    def analytics_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.is_staff:
            raise PermissionDenied
        form = PeriodForm(request.GET or None)
        error = ""
        figures = None
        try:
            period = analytics_period(request.GET.get("start"), request.GET.get("end"))
        except DomainError as exc:
            error = exc.message
            period = analytics_period()
        figures = payment_analytics(period=period)
        if request.GET.get("format") == "csv" and not error:
            response = HttpResponse(payment_analytics_csv(figures), content_type="text/csv")
            response["Content-Disposition"] = (
                f'attachment; filename="payments-{period.start}-{period.end}.csv"'
            )
            return response
        if not request.GET:
            form = PeriodForm(initial={"start": period.start, "end": period.end})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Payment analytics",
            "form": form,
            "error": error,
            "figures": figures,
            "charts": analytics_charts(figures),
            "csv_query": f"start={period.start}&end={period.end}&format=csv",
            "json_url": f"{reverse('receipts:analytics')}?start={period.start}&end={period.end}",
        }
        return TemplateResponse(request, "admin/payments/analytics.html", context)

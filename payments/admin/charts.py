"""Horizontal bar charts drawn as inline SVG on the server (no script, no outside files)."""

from __future__ import annotations

from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 560
LABEL_W = 150
VALUE_W = 110
BAR_H = 22
GAP = 8
COLOURS = ["#417690", "#79aec8", "#c2702e", "#5b8c5a", "#8e5ba6", "#b0413e"]


def bar_chart(
    title: str, rows: list[tuple[str, Decimal | None, str]], *, chart_id: str
) -> SafeString:
    """``rows``: (label, value or None, text shown after the bar). Bars scale to the largest."""
    top = 28
    height = top + max(1, len(rows)) * (BAR_H + GAP) + 4
    values = [v for _, v, _ in rows if v is not None]
    peak = max(values) if values and max(values) > 0 else Decimal(1)
    area = WIDTH - LABEL_W - VALUE_W
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" font-size="14" font-weight="bold" fill="#333">{escape(title)}</text>',
    ]
    if not rows:
        parts.append(f'<text x="0" y="{top + 14}" font-size="12" fill="#777">No data</text>')
    for i, (label, value, text) in enumerate(rows):
        y = top + i * (BAR_H + GAP)
        width = 0 if value is None else int(Decimal(area) * value / peak)
        colour = COLOURS[i % len(COLOURS)]
        parts += [
            f'<text x="0" y="{y + 15}" font-size="12" fill="#333">{escape(label)}</text>',
            f'<rect class="bar" x="{LABEL_W}" y="{y}" width="{max(width, 1)}" height="{BAR_H}" '
            f'fill="{colour}"><title>{escape(label)}: {escape(text)}</title></rect>',
            f'<text x="{LABEL_W + width + 6}" y="{y + 15}" font-size="12" fill="#333">'
            f"{escape(text)}</text>",
        ]
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def analytics_charts(figures: dict) -> list[SafeString]:
    methods = figures["methods"]

    def dec(value: str | None) -> Decimal | None:
        return None if value is None else Decimal(value)

    def pct(value: str | None) -> str:
        return "n/a" if value is None else f"{Decimal(value) * 100:.1f} %"

    def secs(value: str | None) -> str:
        return "n/a" if value is None else f"{Decimal(value):.1f} s"

    return [
        bar_chart(
            "Success rate per method",
            [(m["method"], dec(m["success_rate"]), pct(m["success_rate"])) for m in methods],
            chart_id="chart-success-rate",
        ),
        bar_chart(
            "Time to confirmation (average and 95th percentile)",
            [
                row
                for m in methods
                for row in (
                    (
                        f"{m['method']} avg",
                        dec(m["confirmation_seconds_avg"]),
                        secs(m["confirmation_seconds_avg"]),
                    ),
                    (
                        f"{m['method']} p95",
                        dec(m["confirmation_seconds_p95"]),
                        secs(m["confirmation_seconds_p95"]),
                    ),
                )
            ],
            chart_id="chart-confirmation-time",
        ),
        bar_chart(
            "Refund rate per method",
            [(m["method"], dec(m["refund_rate"]), pct(m["refund_rate"])) for m in methods],
            chart_id="chart-refund-rate",
        ),
        *[
            bar_chart(
                f"Fees in {currency}",
                [
                    (f["method"], Decimal(f["fee_total"]), f"{f['fee_total']} {currency}")
                    for f in figures["fees"]
                    if f["currency"] == currency
                ],
                chart_id=f"chart-fees-{currency.lower()}",
            )
            for currency in sorted({f["currency"] for f in figures["fees"]})
        ],
    ]

"""Inline SVG charts for the static dashboard: labelled axes, no scripts, readable printed.

Every label is escaped here (names come from CI metadata); the result is ``Markup`` for the
template. Values are Decimals or ints; only pixel positions are floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from markupsafe import Markup, escape

from ci_guard.money import format_usd

# colour-blind-safe palette (Okabe-Ito), then grey for "other"
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
OTHER = "#999999"
W, H = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 12, 44


def colour(i: int, name: str) -> str:
    return OTHER if name == "other" else PALETTE[i % len(PALETTE)]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    mag = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if step * mag >= value:
            return step * mag
    return 10 * mag  # pragma: no cover


def _y_axis(top: float, fmt: str) -> list[str]:
    parts = []
    for i in range(5):
        v = top * i / 4
        y = TOP + (H - TOP - BOTTOM) * (1 - i / 4)
        label = _tick(v, top, fmt)
        parts.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(label)}</text>')
    return parts


def _tick(v: float, top: float, fmt: str) -> str:
    if fmt != "usd":
        return f"{v:,.0f}"
    # whole dollars once the axis reaches $10: short labels that do not crowd the axis title
    return f"${v:,.0f}" if top >= 10 else format_usd(Decimal(str(round(v, 2))))


def _x_labels(days: Sequence[date], step_px: float) -> list[str]:
    every = max(1, round(len(days) / 10))
    out = []
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            x = LEFT + step_px * (i + 0.5)
            out.append(f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{day:%b %d}</text>')
    return out


def _frame(title: str, body: list[str], x_title: str, y_title: str) -> Markup:
    return Markup(
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" class="chart">'
        f"<title>{escape(title)}</title>" + "".join(body)
        + f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}" class="axis"/>'
        f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 6}" text-anchor="middle" class="axis-title">'
        f"{escape(x_title)}</text>"
        f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" class="axis-title" '
        f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{escape(y_title)}</text></svg>'
    )


def stacked_days(title: str, days: Sequence[date], series: dict[str, Sequence[Decimal]]) -> Markup:
    """Spend per day, one stacked bar per day, one colour per series (legend outside the SVG)."""
    totals = [sum((s[i] for s in series.values()), Decimal(0)) for i in range(len(days))]
    top = _nice_max(float(max(totals, default=Decimal(0))))
    step = (W - LEFT - RIGHT) / max(1, len(days))
    plot_h = H - TOP - BOTTOM
    body = _y_axis(top, "usd")
    for i, day in enumerate(days):
        y = H - BOTTOM
        for n, (name, values) in enumerate(series.items()):
            v = float(values[i])
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            body.append(f'<rect x="{LEFT + step * i + 1:.1f}" y="{y:.1f}" width="{max(1.0, step - 2):.1f}" '
                        f'height="{h:.1f}" fill="{colour(n, name)}"><title>{escape(f"{day}: {name}")} '
                        f"{escape(format_usd(values[i]))}</title></rect>")
    body += _x_labels(days, step)
    return _frame(title, body, "day", "spend (USD)")


def lines(title: str, days: Sequence[date], series: dict[str, Sequence[Decimal | None]], y_title: str,
          limits: dict[str, Decimal] | None = None, dashed: dict[str, Sequence[Decimal | None]] | None = None,
          fmt: str = "usd") -> Markup:
    """Lines over days (a None value leaves a gap); horizontal limit lines labelled at the right."""
    values = [float(v) for s in (*series.values(), *(dashed or {}).values()) for v in s if v is not None]
    values += [float(v) for v in (limits or {}).values()]
    top = _nice_max(max(values, default=0.0) * 1.05)
    step = (W - LEFT - RIGHT) / max(1, len(days))
    plot_h = H - TOP - BOTTOM
    body = _y_axis(top, fmt)

    def path(vals: Sequence[Decimal | None]) -> str:
        out, pen = [], "M"
        for i, v in enumerate(vals):
            if v is None:
                pen = "M"
                continue
            out.append(f"{pen}{LEFT + step * (i + 0.5):.1f},{H - BOTTOM - plot_h * float(v) / top:.1f}")
            pen = "L"
        return " ".join(out)

    for n, (name, vals) in enumerate(series.items()):
        body.append(f'<path d="{path(vals)}" fill="none" stroke="{colour(n, name)}" stroke-width="2"/>')
    for n, (name, vals) in enumerate((dashed or {}).items()):
        body.append(f'<path d="{path(vals)}" fill="none" stroke="{colour(n, name)}" stroke-width="2" '
                    'stroke-dasharray="5 4"/>')
    for name, limit in (limits or {}).items():
        y = H - BOTTOM - plot_h * float(limit) / top
        body.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="limit"/>'
                    f'<text x="{W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" class="limit-label">'
                    f"{escape(name)} {escape(format_usd(limit))}</text>")
    body += _x_labels(days, step)
    return _frame(title, body, "day", y_title)


def hbars(title: str, rows: Sequence[tuple[str, Decimal, str]]) -> Markup:
    """Horizontal bars with the label left and the value right: (name, share 0..1, value text)."""
    height = 26 * len(rows) + 8
    body = []
    for i, (name, share, text) in enumerate(rows):
        y = 4 + 26 * i
        width = max(1.0, 420 * float(share))
        body.append(f'<text x="200" y="{y + 16}" text-anchor="end">{escape(name[:32])}</text>'
                    f'<rect x="208" y="{y + 3}" width="{width:.1f}" height="18" fill="{colour(i, name)}"/>'
                    f'<text x="{214 + width:.1f}" y="{y + 16}">{escape(text)}</text>')
    return Markup(f'<svg viewBox="0 0 {W} {height}" role="img" aria-label="{escape(title)}" class="chart">'
                  f"<title>{escape(title)}</title>" + "".join(body) + "</svg>")

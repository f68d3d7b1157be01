"""Charts drawn on the server as SVG: no script, no style attribute (the console's policy
allows neither), only presentation attributes. Each chart is an image with a title and a
description for screen readers (``role="img"``); the page puts the same figures in a table
beside it, which is the accessible (and copyable) version.

Labels are data (topic and partner names): they are escaped like any other text.
"""

from __future__ import annotations

from markupsafe import Markup, escape

INK, BAR, LINE2, GRID = "#1f2933", "#5b2a86", "#b45309", "#d1d5db"


def _svg(ident: str, title: str, desc: str, width: int, height: int, body: list[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="{ident}-t {ident}-d" class="chart">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def bars(ident: str, title: str, rows: list[tuple[str, int]], *, width: int = 560) -> Markup:
    """A horizontal bar per ``(label, value)``, the value written at the bar's end."""
    row_h, label_w, value_w = 26, 210, 60
    top = max((v for _, v in rows), default=0) or 1
    span = width - label_w - value_w
    body = []
    for i, (label, value) in enumerate(rows):
        y = i * row_h
        w = round(span * value / top) if value else 0
        text = str(label) if len(str(label)) <= 30 else str(label)[:29] + "…"
        body.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" font-size="13" fill="{INK}">{escape(text)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w}" height="{row_h - 8}" fill="{BAR}"/>'
            f'<text x="{label_w + w + 6}" y="{y + 17}" font-size="13" fill="{INK}">{value}</text>'
        )
    desc = "; ".join(f"{label}: {value}" for label, value in rows) or "no data"
    return _svg(ident, title, desc, width, max(row_h, row_h * len(rows)), body)


def lines(
    ident: str, title: str, months: list[str], series: list[tuple[str, list[int]]], *, width: int = 560
) -> Markup:
    """One line per ``(name, values)`` over ``months``, with a legend and month labels."""
    height, left, bottom, top_pad = 220, 48, 40, 24
    plot_w, plot_h = width - left - 36, height - bottom - top_pad  # room for the last month's label
    top = max((v for _, vals in series for v in vals), default=0) or 1
    step = plot_w / max(1, len(months) - 1)

    def x(i: int) -> float:
        return round(left + i * step, 1)

    def y(v: int) -> float:
        return round(top_pad + plot_h - plot_h * v / top, 1)

    body = [
        f'<line x1="{left}" y1="{y(0)}" x2="{left + plot_w}" y2="{y(0)}" stroke="{GRID}"/>',
        f'<line x1="{left}" y1="{y(top)}" x2="{left + plot_w}" y2="{y(top)}" stroke="{GRID}"/>',
        f'<text x="{left - 6}" y="{y(top) + 4}" text-anchor="end" font-size="12" fill="{INK}">{top}</text>',
        f'<text x="{left - 6}" y="{y(0) + 4}" text-anchor="end" font-size="12" fill="{INK}">0</text>',
    ]
    for i, m in enumerate(months):
        if i % 2 == (len(months) - 1) % 2:  # every other month, always the latest
            body.append(
                f'<text x="{x(i)}" y="{height - 22}" text-anchor="middle" font-size="11" fill="{INK}">{escape(m)}</text>'
            )
    colours = (BAR, LINE2)
    for n, (name, values) in enumerate(series):
        colour = colours[n % len(colours)]
        points = " ".join(f"{x(i)},{y(v)}" for i, v in enumerate(values))
        dash = "" if n == 0 else ' stroke-dasharray="6 4"'  # told apart without colour too
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="3"{dash}/>')
        lx = left + n * 200
        body.append(
            f'<line x1="{lx}" y1="{height - 6}" x2="{lx + 24}" y2="{height - 6}" stroke="{colour}" stroke-width="3"{dash}/>'
            f'<text x="{lx + 30}" y="{height - 2}" font-size="12" fill="{INK}">{escape(name)}</text>'
        )
    desc = "; ".join(
        f"{name}: " + ", ".join(f"{m} {v}" for m, v in zip(months, values, strict=True)) for name, values in series
    )
    return _svg(ident, title, desc, width, height, body)

"""Small inline-SVG charts for the HTML reports: no JavaScript, no CDN, readable offline.

Every chart is a function of plain numbers returning an ``<svg>`` string; every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TypeGuard

PALETTE = ["#4363d8", "#e6194b", "#3cb44b", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
VERDICT_COLORS = {
    "improved": "#2e7d32",
    "degraded": "#c62828",
    "unchanged": "#616161",
    "inconclusive": "#ef6c00",
    None: "#455a64",
}
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _ok(v: float | None) -> TypeGuard[float]:
    return v is not None and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.1e}"


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _frame(width: int, height: int, title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" {FONT}><title>{escape(title)}</title>'
        f'<text x="8" y="14" font-weight="600" font-size="12">{escape(title)}</text>' + "".join(body) + "</svg>"
    )


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    highlight: int | None = None,
    width: int = 660,
    height: int = 220,
) -> str:
    """Values over runs (oldest left); ``highlight`` marks one x position (e.g. the baseline)."""
    left, right, top, bottom = 56, 150, 26, 40
    vals = [v for s in series.values() for v in s if _ok(v)]
    if not vals or not x_labels:
        return _frame(width, 50, title, ['<text x="8" y="36" fill="#777">no data yet</text>'])
    lo, hi = min(vals), max(vals)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.1 or 1), hi + (abs(hi) * 0.1 or 1)
    pad = (hi - lo) * 0.08
    lo, hi = lo - pad, hi + pad
    pw, ph = width - left - right, height - top - bottom
    n = len(x_labels)

    def x(i: int) -> float:
        return left + (pw * (i / (n - 1)) if n > 1 else pw / 2)

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ddd"/>']
    for t in _ticks(lo, hi):
        body.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y(t) + 4:.1f}" text-anchor="end" fill="#555">{_fmt(t)}</text>'
        )
    if highlight is not None and 0 <= highlight < n:
        body.append(
            f'<line x1="{x(highlight):.1f}" x2="{x(highlight):.1f}" y1="{top}" y2="{top + ph}" stroke="#999" stroke-dasharray="4 3"/>'
            f'<text x="{x(highlight) + 3:.1f}" y="{top + 10}" fill="#777">baseline</text>'
        )
    step = max(1, n // 8)
    for i in range(0, n, step):
        body.append(
            f'<text x="{x(i):.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#555">{escape(str(x_labels[i])[-14:])}</text>'
        )
    for k, (name, s) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = [(x(i), y(v)) for i, v in enumerate(s) if _ok(v)]
        if len(pts) > 1:
            body.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>'
            )
        body += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in pts]
        body.append(
            f'<rect x="{width - right + 10}" y="{top + 14 * k}" width="10" height="10" fill="{color}"/>'
            f'<text x="{width - right + 24}" y="{top + 9 + 14 * k}">{escape(name[:22])}</text>'
        )
    return _frame(width, height, title, body)


def diff_chart(title: str, rows: Sequence[dict], width: int = 660) -> str:
    """One line per metric: the difference (dot), its 95% interval (whisker), the +/- min_effect band (grey) and zero.

    Each line has its own scale (metrics differ in units); the end labels give it.
    """
    row_h, left, right, top = 34, 150, 110, 24
    height = top + row_h * max(1, len(rows)) + 8
    body = []
    pw = width - left - right
    for i, r in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        d, lo, hi, me = r.get("diff"), r.get("ci_low"), r.get("ci_high"), r.get("min_effect") or 0.0
        body.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end">{escape(str(r["metric"])[:24])}</text>')
        if not (_ok(d) and _ok(lo) and _ok(hi)):
            body.append(f'<text x="{left}" y="{cy + 4:.1f}" fill="#777">no paired values</text>')
            continue
        span = max(abs(lo), abs(hi), abs(me), abs(d)) * 1.15 or 1.0

        def x(v: float, span: float = span) -> float:
            return left + pw * (v + span) / (2 * span)

        color = VERDICT_COLORS.get(r.get("verdict"), "#455a64")
        body.append(f'<rect x="{left}" y="{cy - 11:.1f}" width="{pw}" height="22" fill="#fafafa" stroke="#eee"/>')
        if me > 0:
            body.append(f'<rect x="{x(-me):.1f}" y="{cy - 11:.1f}" width="{x(me) - x(-me):.1f}" height="22" fill="#e0e0e0"/>')
        body.append(f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{cy - 11:.1f}" y2="{cy + 11:.1f}" stroke="#9e9e9e"/>')
        body.append(
            f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<line x1="{x(lo):.1f}" x2="{x(lo):.1f}" y1="{cy - 5:.1f}" y2="{cy + 5:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<line x1="{x(hi):.1f}" x2="{x(hi):.1f}" y1="{cy - 5:.1f}" y2="{cy + 5:.1f}" stroke="{color}" stroke-width="2"/>'
            f'<circle cx="{x(d):.1f}" cy="{cy:.1f}" r="4" fill="{color}"/>'
        )
        body.append(
            f'<text x="{left}" y="{cy + 21:.1f}" fill="#999" font-size="9">{_fmt(-span)}</text>'
            f'<text x="{left + pw}" y="{cy + 21:.1f}" fill="#999" font-size="9" text-anchor="end">{_fmt(span)}</text>'
        )
        body.append(
            f'<text x="{left + pw + 8}" y="{cy + 4:.1f}" fill="{color}" font-weight="600">{escape(str(r.get("verdict") or ""))}</text>'
        )
    return _frame(width, height, title, body)


def bars_chart(
    title: str, groups: Sequence[tuple[str, Sequence[tuple[str, float | None, float | None, float | None]]]], width: int = 660
) -> str:
    """Before/after bars with 95% error bars: per metric (own scale), one bar per run: (run, value, low, high)."""
    panel_w, panel_h, top = 150, 150, 24
    per_row = max(1, (width - 10) // panel_w)
    rows = math.ceil(len(groups) / per_row) if groups else 1
    height = top + rows * (panel_h + 26) + 4
    body = []
    for g, (metric, bars) in enumerate(groups):
        ox = 10 + (g % per_row) * panel_w
        oy = top + (g // per_row) * (panel_h + 26)
        vals = [v for _, v, lo, hi in bars for v in (v, lo, hi) if _ok(v)]
        hi_v = max(vals + [0.0]) or 1.0
        lo_v = min(vals + [0.0])
        ph = panel_h - 30

        def y(v: float, oy: float = oy, ph: float = ph, lo_v: float = lo_v, hi_v: float = hi_v) -> float:
            return oy + 16 + ph * (1 - (v - lo_v) / ((hi_v - lo_v) or 1.0))

        body.append(
            f'<text x="{ox + 4}" y="{oy + 10}" font-weight="600">{escape(metric[:22])}</text>'
            f'<line x1="{ox + 4}" x2="{ox + panel_w - 14}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#999"/>'
        )
        bw = (panel_w - 24) / max(1, len(bars))
        for k, (run, v, lo, hi) in enumerate(bars):
            color = PALETTE[k % len(PALETTE)]
            bx = ox + 6 + k * bw
            if _ok(v):
                top_y, base_y = min(y(v), y(0)), max(y(v), y(0))
                body.append(
                    f'<rect x="{bx:.1f}" y="{top_y:.1f}" width="{bw * 0.7:.1f}" height="{max(base_y - top_y, 0.5):.1f}" fill="{color}" opacity="0.8">'
                    f"<title>{escape(run)}: {_fmt(v)}</title></rect>"
                    f'<text x="{bx + bw * 0.35:.1f}" y="{oy + panel_h - 2}" text-anchor="middle" font-size="9">{_fmt(v)}</text>'
                )
            if _ok(lo) and _ok(hi):
                cx = bx + bw * 0.35
                body.append(
                    f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="#212121" stroke-width="1.5"/>'
                    f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{y(lo):.1f}" y2="{y(lo):.1f}" stroke="#212121"/>'
                    f'<line x1="{cx - 4:.1f}" x2="{cx + 4:.1f}" y1="{y(hi):.1f}" y2="{y(hi):.1f}" stroke="#212121"/>'
                )
        body.append(
            f'<text x="{ox + panel_w - 16}" y="{oy + 24}" text-anchor="end" fill="#999" font-size="9">{_fmt(hi_v)}</text>'
        )
    return _frame(width, height, title, body)


def histogram(title: str, series: dict[str, Sequence[float]], bins: int = 24, width: int = 660, height: int = 220) -> str:
    """Distributions as overlaid step lines; log-spaced bins when the values span more than 20x."""
    left, right, top, bottom = 44, 150, 26, 40
    vals = [v for s in series.values() for v in s if _ok(v)]
    if not vals:
        return _frame(width, 50, title, ['<text x="8" y="36" fill="#777">no values</text>'])
    lo, hi = min(vals), max(vals)
    log = lo > 0 and hi / lo > 20
    if hi == lo:
        lo, hi = lo * 0.9 if lo else -1.0, hi * 1.1 if hi else 1.0
    edges = (
        [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / bins) for i in range(bins + 1)]
        if log
        else [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    )
    counts: dict[str, list[float]] = {}
    for name, s in series.items():
        c = [0] * bins
        for v in s:
            if _ok(v):
                pos = (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) if log else (v - lo) / (hi - lo)
                c[min(bins - 1, max(0, int(pos * bins)))] += 1
        total = max(1, sum(c))
        counts[name] = [k / total for k in c]
    top_share = max(max(c) for c in counts.values()) or 1.0
    pw, ph = width - left - right, height - top - bottom
    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ddd"/>']
    for k, (name, shares) in enumerate(counts.items()):
        color = PALETTE[k % len(PALETTE)]
        pts = []
        for i, share in enumerate(shares):
            x0, x1 = left + pw * i / bins, left + pw * (i + 1) / bins
            yv = top + ph * (1 - share / top_share)
            pts += [(x0, yv), (x1, yv)]
        pts = [(left, top + ph)] + pts + [(left + pw, top + ph)]
        body.append(
            f'<polyline fill="{color}" fill-opacity="0.12" stroke="{color}" stroke-width="1.8" '
            f'points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in pts)}"/>'
        )
        body.append(
            f'<rect x="{width - right + 10}" y="{top + 14 * k}" width="10" height="10" fill="{color}"/>'
            f'<text x="{width - right + 24}" y="{top + 9 + 14 * k}">{escape(name[:22])}</text>'
        )
    for i in (0, bins // 2, bins):
        body.append(
            f'<text x="{left + pw * i / bins:.1f}" y="{top + ph + 14}" text-anchor="middle" fill="#555">{_fmt(edges[i])}</text>'
        )
    body.append(
        f'<text x="{left + pw / 2:.1f}" y="{top + ph + 30}" text-anchor="middle" fill="#555">milliseconds{" (log scale)" if log else ""}</text>'
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" fill="#555">{top_share:.0%}</text>'
    )
    return _frame(width, height, title, body)

"""The drift report as one self-contained HTML page: inline CSS and inline SVG, no script and no
external asset, so it can be mailed, attached to a ticket or opened offline.

Per feature: its status and test results, and a picture of reference against live:
- numbers: the two cumulative distributions over the 1st-99th percentile range of both (what the
  KS statistic measures is the largest vertical gap between the two lines);
- categories: paired bars of each category's share (the 12 largest);
- embeddings: both reservoirs projected on the first two principal components of the pooled
  sample, with the mean shift and MMD in the table.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from .profile import Profile
from .report import Check, DriftReport, FeatureResult, Status
from .sketch import CategorySketch, EmbeddingSketch, NumericSketch, Sketch

REFERENCE_COLOUR = "#4c78a8"
LIVE_COLOUR = "#f58518"
WIDTH, HEIGHT = 560, 220
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP, MARGIN_RIGHT = 48, 28, 12, 12
MAX_CATEGORIES = 12

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin: 0 0 .4em; }
section { border: 1px solid #ddd; border-radius: 6px; padding: 1em; margin: 1em 0; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .7em; text-align: left; }
th { border-bottom: 1px solid #bbb; } .num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: .05em .55em; border-radius: 1em; font-size: .85em; color: #fff; }
.ok { background: #3a8a3a; } .drifted { background: #c0392b; } .insufficient { background: #888; }
.legend span { display: inline-block; width: .9em; height: .9em; margin: 0 .3em 0 1em; vertical-align: -.1em; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


def to_html(report: DriftReport, reference: Profile, live: Profile, *, title: str = "Interlock drift report") -> str:
    verdict = "drift" if report.dataset_drifted else "no drift"
    rows = "".join(
        f"<tr><td>{_e(f.name)}</td><td>{f.kind.value}</td><td>{_badge(f.status)}</td>"
        f"<td class=num>{f.n_reference}</td><td class=num>{f.n_live}</td></tr>"
        for f in report.features
    )
    sections = "".join(_section(f, reference.sketches.get(f.name), live.sketches.get(f.name)) for f in report.features)
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        f"<p>Dataset: <strong>{verdict}</strong>; {len(report.drifted_features)} drifted, share "
        f"{report.drifted_share:.2f} of the tested features, against a threshold of {report.dataset_share:.2f} "
        "(with at least one drifted feature). "
        f"Reference {report.n_reference} observations, live {report.n_live}.</p>"
        f'<p class=legend><span style="background:{REFERENCE_COLOUR}"></span>reference'
        f'<span style="background:{LIVE_COLOUR}"></span>live</p>'
        f"<table><tr><th>feature</th><th>kind</th><th>status</th><th>reference n</th><th>live n</th></tr>{rows}</table>"
        f"{sections}</body></html>"
    )


def _section(result: FeatureResult, ref: Sketch | None, live: Sketch | None) -> str:
    checks = "".join(_check_row(c) for c in result.checks)
    table = (
        "<table><tr><th>test</th><th>statistic</th><th>p-value</th><th>threshold</th><th>flags</th></tr>"
        f"{checks}</table>"
        if checks
        else ""
    )
    reason = f"<p>{_e(result.reason)}</p>" if result.reason else ""
    return f"<section><h2>{_e(result.name)} {_badge(result.status)}</h2>{reason}{table}{_plot(ref, live)}</section>"


def _plot(ref: Sketch | None, live: Sketch | None) -> str:
    if ref is None or live is None or ref.n == 0 or live.n == 0:
        return _svg(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data on one side</text>')
    if isinstance(ref, NumericSketch) and isinstance(live, NumericSketch):
        return _cdf_plot(ref, live)
    if isinstance(ref, CategorySketch) and isinstance(live, CategorySketch):
        return _bar_plot(ref.counts(), live.counts())
    if isinstance(ref, EmbeddingSketch) and isinstance(live, EmbeddingSketch):
        return _projection_plot(ref, live)
    return _svg('<text x="10" y="20">the two profiles disagree on this feature\'s kind</text>')


def _cdf_plot(ref: NumericSketch, live: NumericSketch) -> str:
    edges = np.array([0.01, 0.99])
    lows, highs = ref.quantiles(edges), live.quantiles(edges)
    lo, hi = float(min(lows[0], highs[0])), float(max(lows[1], highs[1]))
    if hi <= lo:
        hi = lo + 1.0
    xs = np.linspace(lo, hi, 160)
    body = _axes(lo, hi)
    for sketch, colour in ((ref, REFERENCE_COLOUR), (live, LIVE_COLOUR)):
        ys = sketch.cdf(xs)
        points = " ".join(f"{_px(x, lo, hi):.1f},{_py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        body += f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
    return _svg(body)


def _bar_plot(ref_counts: dict[str, float], live_counts: dict[str, float]) -> str:
    ref_total, live_total = sum(ref_counts.values()), sum(live_counts.values())
    shares = {
        name: (ref_counts.get(name, 0.0) / ref_total, live_counts.get(name, 0.0) / live_total)
        for name in set(ref_counts) | set(live_counts)
    }
    top = sorted(shares.items(), key=lambda kv: (-max(kv[1]), kv[0]))[:MAX_CATEGORIES]
    row = 16
    height = MARGIN_TOP + row * len(top) + 8
    left, span = 110, WIDTH - 110 - 90  # room on the right for the "100% / 100%" label
    body = ""
    for i, (name, (r, lv)) in enumerate(top):
        y = MARGIN_TOP + i * row
        body += f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{_e(name[:18])}</text>'
        body += f'<rect x="{left}" y="{y + 1}" width="{r * span:.1f}" height="6" fill="{REFERENCE_COLOUR}"/>'
        body += f'<rect x="{left}" y="{y + 8}" width="{lv * span:.1f}" height="6" fill="{LIVE_COLOUR}"/>'
        body += f'<text x="{left + max(r, lv) * span + 4:.1f}" y="{y + 11}">{r:.0%} / {lv:.0%}</text>'
    return _svg(body, height)


def _projection_plot(ref: EmbeddingSketch, live: EmbeddingSketch) -> str:
    a, b = ref.sample().astype(np.float64), live.sample().astype(np.float64)
    if a.shape[1] != b.shape[1]:
        return _svg('<text x="10" y="20">embeddings of different dimensions</text>')
    pooled = np.concatenate([a, b])
    centred = pooled - pooled.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ vt[:2].T if vt.shape[0] >= 2 else np.column_stack([centred @ vt[0], np.zeros(len(pooled))])
    lo, hi = projected.min(axis=0), projected.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    body = ""
    for points, colour in ((projected[: len(a)], REFERENCE_COLOUR), (projected[len(a) :], LIVE_COLOUR)):
        for x, y in points:
            cx = MARGIN_LEFT + (x - lo[0]) / span[0] * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)
            cy = MARGIN_TOP + (1 - (y - lo[1]) / span[1]) * (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM)
            body += f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{colour}" fill-opacity=".55"/>'
    body += f'<text x="{MARGIN_LEFT}" y="{HEIGHT - 8}">first two principal components of both samples</text>'
    return _svg(body)


def _axes(lo: float, hi: float) -> str:
    bottom, right = HEIGHT - MARGIN_BOTTOM, WIDTH - MARGIN_RIGHT
    out = (
        f'<line x1="{MARGIN_LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{MARGIN_LEFT}" y1="{MARGIN_TOP}" x2="{MARGIN_LEFT}" y2="{bottom}" stroke="#999"/>'
    )
    for y in (0.0, 0.5, 1.0):
        out += f'<text x="{MARGIN_LEFT - 6}" y="{_py(y) + 4:.1f}" text-anchor="end">{y:g}</text>'
    for x in (lo, (lo + hi) / 2, hi):
        out += f'<text x="{_px(x, lo, hi):.1f}" y="{bottom + 16}" text-anchor="middle">{_number(x)}</text>'
    return out


def _px(x: float, lo: float, hi: float) -> float:
    return MARGIN_LEFT + (x - lo) / (hi - lo) * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)


def _py(y: float) -> float:
    return MARGIN_TOP + (1.0 - y) * (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM)


def _svg(body: str, height: int = HEIGHT) -> str:
    return f'<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">{body}</svg>'


def _check_row(check: Check) -> str:
    cells: Sequence[str] = (
        _e(check.name),
        _number(check.statistic),
        "" if check.p_value is None else _number(check.p_value),
        "" if check.threshold is None else _number(check.threshold),
        {True: "yes", False: "no", None: "(reported only)"}[check.flagged],
    )
    return "<tr>" + "".join(f"<td class=num>{c}</td>" if i else f"<td>{c}</td>" for i, c in enumerate(cells)) + "</tr>"


def _badge(status: Status) -> str:
    return f'<span class="badge {status.value}">{status.value}</span>'


def _number(value: float) -> str:
    return f"{value:.4g}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)

"""Self-contained HTML reports: inline SVG plots and tables, no script, no external resource.

:func:`drift_html` renders a :class:`curata.DriftMonitor`'s history and latest check (used by
``DriftMonitor.to_html``, which writes it atomically). Everything here is string building: all
text goes through :func:`_esc`, numbers through :func:`_fmt`.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "-" if math.isnan(v) else str(v)
        return f"{v:.4g}"
    return str(v)


_SVG_W, _SVG_H = 640, 220
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 56, 16, 16, 40


def _svg_open(label: str, height: int = _SVG_H) -> list:
    return [
        f'<svg role="img" aria-label="{_esc(label)}" '
        f'width="{_SVG_W}" height="{height}" viewBox="0 0 {_SVG_W} {height}">',
        f'<rect x="0" y="0" width="{_SVG_W}" height="{height}" fill="#ffffff" stroke="#cccccc"/>',
    ]


def _svg_pvalue_plot(rows: list, alpha: float) -> str:
    """-log10(min adjusted p) per check in timestamp order, with the -log10(alpha) line."""
    # Windows may be checked out of time order (a backfill): the x axis is time, so the checks are
    # placed by timestamp (stable: equal timestamps keep their check order), not by arrival.
    rows = sorted(rows, key=lambda r: r["timestamp"])
    out = _svg_open("drift over time: -log10 of the smallest adjusted p-value per check")
    pw, ph = _SVG_W - _PAD_L - _PAD_R, _SVG_H - _PAD_T - _PAD_B
    floor = 1e-300
    ys = []
    for r in rows:
        p = r["min_adjusted_pvalue"]
        ys.append(None if p is None or not math.isfinite(p) else -math.log10(max(p, floor)))
    line = -math.log10(alpha)
    top = max([line * 1.5] + [y for y in ys if y is not None])
    top = max(top, 1.0)
    n = len(rows)

    def sx(i):
        return _PAD_L + (pw * (i + 0.5) / n if n else 0)

    def sy(v):
        return _PAD_T + ph * (1 - v / top)

    out.append(f'<line x1="{_PAD_L}" y1="{_PAD_T + ph}" x2="{_PAD_L + pw}" y2="{_PAD_T + ph}" stroke="#333333"/>')
    out.append(f'<line x1="{_PAD_L}" y1="{_PAD_T}" x2="{_PAD_L}" y2="{_PAD_T + ph}" stroke="#333333"/>')
    for frac in (0.0, 0.5, 1.0):
        v = top * frac
        out.append(f'<text x="{_PAD_L - 4}" y="{sy(v) + 4:.1f}" font-size="10" text-anchor="end">{_esc(f"{v:.3g}")}</text>')
    out.append(
        f'<line class="alpha" x1="{_PAD_L}" y1="{sy(line):.1f}" x2="{_PAD_L + pw}" y2="{sy(line):.1f}" '
        f'stroke="#d62728" stroke-dasharray="4 3"><title>{_esc(f"alpha = {alpha:g} (-log10 = {line:.3g})")}</title></line>'
    )
    pts = [(sx(i), sy(y)) for i, y in enumerate(ys) if y is not None]
    if len(pts) > 1:
        out.append('<polyline fill="none" stroke="#1f77b4" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
    for i, (r, y) in enumerate(zip(rows, ys)):
        if y is None:
            continue
        color = "#d62728" if r["drift"] else "#1f77b4"
        tip = f"{r['timestamp'].isoformat()}: min adjusted p = {r['min_adjusted_pvalue']:.3g}, {r['n_rows']} rows"
        out.append(f'<circle class="check" cx="{sx(i):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{color}"><title>{_esc(tip)}</title></circle>')
    out.append(f'<text x="{_PAD_L + pw / 2:.1f}" y="{_SVG_H - 8}" font-size="11" text-anchor="middle">check (oldest to latest)</text>')
    out.append(f'<text x="12" y="{_PAD_T + ph / 2:.1f}" font-size="11" transform="rotate(-90 12 {_PAD_T + ph / 2:.1f})" text-anchor="middle">-log10 p</text>')
    out.append("</svg>")
    return "\n".join(out)


def _svg_bars(labels: list, values: list, highlight: list, label: str, unit: str) -> str:
    """Horizontal bars, one per label."""
    n = len(labels)
    bar = 16
    height = _PAD_T + n * (bar + 4) + 24
    out = _svg_open(label, height)
    left = 150
    pw = _SVG_W - left - 80
    vmax = max([abs(v) for v in values if math.isfinite(v)] + [1e-12])
    for i, (lab, v, hi) in enumerate(zip(labels, values, highlight)):
        y = _PAD_T + i * (bar + 4)
        w = pw * abs(v) / vmax if math.isfinite(v) else 0.0
        color = "#d62728" if hi else "#1f77b4"
        out.append(f'<text x="{left - 6}" y="{y + bar - 4}" font-size="11" text-anchor="end">{_esc(lab)}</text>')
        out.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}">'
            f"<title>{_esc(f'{lab}: {unit} = {_fmt(v)}')}</title></rect>"
        )
        out.append(f'<text x="{left + w + 4:.1f}" y="{y + bar - 4}" font-size="10">{_esc(_fmt(v))}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _svg_shares(ref: np.ndarray, cur: np.ndarray, names: list, label: str) -> str:
    """Grouped vertical bars: reference share vs window share per group."""
    k = len(names)
    out = _svg_open(label)
    pw, ph = _SVG_W - _PAD_L - _PAD_R, _SVG_H - _PAD_T - _PAD_B
    top = max(float(np.max(ref)) if k else 0.0, float(np.max(cur)) if k else 0.0, 1e-12)
    slot = pw / max(k, 1)
    bw = slot * 0.38
    out.append(f'<line x1="{_PAD_L}" y1="{_PAD_T + ph}" x2="{_PAD_L + pw}" y2="{_PAD_T + ph}" stroke="#333333"/>')
    for frac in (0.0, 0.5, 1.0):
        y = _PAD_T + ph * (1 - frac)
        out.append(f'<text x="{_PAD_L - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{_esc(f"{top * frac:.2f}")}</text>')
    for i in range(k):
        x0 = _PAD_L + i * slot + slot * 0.1
        for j, (share, color, who) in enumerate(((ref[i], "#7f7f7f", "reference"), (cur[i], "#1f77b4", "window"))):
            h = ph * float(share) / top
            out.append(
                f'<rect class="share" x="{x0 + j * bw:.1f}" y="{_PAD_T + ph - h:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{_esc(f'{names[i]} {who} share = {float(share):.4f}')}</title></rect>"
            )
        out.append(f'<text x="{x0 + bw:.1f}" y="{_PAD_T + ph + 14}" font-size="10" text-anchor="middle">{_esc(names[i])}</text>')
    out.append(f'<rect x="{_PAD_L + pw - 150}" y="{_PAD_T}" width="10" height="10" fill="#7f7f7f"/>')
    out.append(f'<text x="{_PAD_L + pw - 136}" y="{_PAD_T + 9}" font-size="10">reference</text>')
    out.append(f'<rect x="{_PAD_L + pw - 70}" y="{_PAD_T}" width="10" height="10" fill="#1f77b4"/>')
    out.append(f'<text x="{_PAD_L + pw - 56}" y="{_PAD_T + 9}" font-size="10">window</text>')
    out.append("</svg>")
    return "\n".join(out)


def _table(header: list, rows: list) -> str:
    out = ["<table>", "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_esc(_fmt(v))}</td>" for v in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


_CSS = (
    "body{font-family:sans-serif;margin:24px;color:#222}"
    "table{border-collapse:collapse;margin:8px 0 16px}"
    "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}"
    "th{background:#f2f2f2}.drift{color:#d62728;font-weight:bold}.ok{color:#2ca02c}"
)


def _share_section(heading: str, shift: Any, names: list, what: str) -> list:
    """Heading, chi-square line, share plot and share table of a ClusterShift or ClassShift."""
    rows = [[n, float(a), float(b), float(d)] for n, a, b, d in zip(names, shift.ref_share, shift.cur_share,
                                                                    shift.share_diff)]
    summary = f"chi-square {_fmt(shift.statistic)}, adjusted p {_fmt(shift.adjusted_pvalue)}, drift {shift.drift}"
    return [
        f"<h2>{_esc(heading)}</h2>",
        f"<p>{_esc(summary)}</p>",
        _svg_shares(shift.ref_share, shift.cur_share, names, f"{what} shares: reference vs latest window"),
        _table([what, "reference share", "window share", "difference"], rows),
    ]


def drift_html(mon: Any, top_n: int, title: str) -> str:
    rows = mon._history
    last = mon.last_report
    body = [f"<h1>{_esc(title)}</h1>"]
    body.append(
        "<p>"
        + _esc(
            f"{mon._reference.n_rows} reference rows; {len(mon.numeric_columns)} numeric and "
            f"{len(mon.categorical_columns)} categorical columns; tests {', '.join(mon.tests)}"
            + (f" / {', '.join(mon.categorical_tests)}" if mon.categorical_columns else "")
            + f"; alpha {mon.alpha:g} with {mon.correction} correction; {len(rows)} check(s)."
        )
        + "</p>"
    )
    if not rows or last is None:
        body.append("<p>No check yet.</p>")
    else:
        cls = "drift" if last.drift else "ok"
        verdict = "DRIFT" if last.drift else ("not tested" if last.status != "ok" else "no drift")
        body.append(f'<h2>Latest check</h2><p class="{cls}">{_esc(last.summary())} &mdash; {_esc(verdict)}</p>')
        schema_report = last
        if last.status != "ok" and mon._last_tested is not None:
            last = mon._last_tested  # details of the latest window that could be tested
            body.append(f"<p>{_esc(f'Details below: latest tested window, {last.timestamp.isoformat()}.')}</p>")
        body.append("<h2>Drift over time</h2>")
        body.append(_svg_pvalue_plot(rows, mon.alpha))
        body.append(
            _table(
                ["timestamp", "rows", "status", "drift", "min adjusted p", "drifting columns", "top columns", "cluster p", "class p"],
                [[r["timestamp"].isoformat(), r["n_rows"], r["status"], r["drift"], r["min_adjusted_pvalue"],
                  r["n_drifting_columns"], ", ".join(r["top_columns"]), r["cluster_pvalue"], r["class_pvalue"]] for r in rows[-50:]],
            )
        )
        if last.results:
            # one bar plot per test kind, so that every bar of a plot is on the same scale: the
            # first numeric test over numeric columns, the first categorical test over categorical
            plots = []
            if mon.numeric_columns and mon.tests:
                plots.append((mon.tests[0], "numeric"))
            if mon.categorical_columns and mon.categorical_tests:
                plots.append((mon.categorical_tests[0], "categorical"))
            for test, kind in plots:
                rs = [r for r in last.results if r.test == test and r.kind == kind and r.status == "ok"]
                rs.sort(key=lambda r: (r.adjusted_pvalue if math.isfinite(r.adjusted_pvalue) else math.inf, -r.statistic))
                rs = rs[:top_n]
                body.append(f"<h2>{_esc(kind.capitalize())} columns: {_esc(test)} statistic (latest tested window, top {len(rs)})</h2>")
                body.append(_svg_bars([r.column for r in rs], [r.statistic for r in rs], [r.drift for r in rs],
                                      f"{test} statistic per {kind} column, latest check", f"{test} statistic"))
            rank = {c: i for i, c in enumerate(last.top_columns)}
            order = {c: i for i, c in enumerate(mon.numeric_columns + mon.categorical_columns)}
            best = {}
            for r in last.results:
                p = r.adjusted_pvalue if math.isfinite(r.adjusted_pvalue) else math.inf
                best[r.column] = min(best.get(r.column, math.inf), p)
            shown = sorted(best, key=lambda c: (rank.get(c, len(rank)), best[c], order.get(c, 0)))[:top_n]
            rows_ = [r for c in shown for r in last.results if r.column == c]
            body.append(f"<h2>Column results (latest tested window, {len(shown)} most significant columns)</h2>")
            body.append(
                _table(
                    ["column", "test", "statistic", "p-value", "adjusted p", "threshold", "drift", "status", "n ref", "n window", "NaN omitted"],
                    [[r.column, r.test, r.statistic, r.pvalue, r.adjusted_pvalue, r.threshold, r.drift, r.status, r.n_ref, r.n_cur, r.nan_cur]
                     for r in rows_],
                )
            )
        if last.clusters is not None:
            c = last.clusters
            names = [f"c{i}" for i in range(len(c.ref_share))]
            body += _share_section(f"Cluster share shift (k = {len(names)})", c, names, "cluster")
        if last.classes is not None:
            c = last.classes
            body += _share_section("Predicted class shift", c, [str(x) for x in c.classes], "class")
        if schema_report.schema is not None:
            s = schema_report.schema
            body.append("<h2>Schema</h2>")
            if not s.changed:
                body.append("<p>No schema change.</p>")
            else:
                rws = [["added", c, ""] for c in s.added] + [["removed", c, ""] for c in s.removed]
                rws += [["type changed", c, f"{a} -> {b}"] for c, (a, b) in s.type_changed.items()]
                rws += [["null rate", c, f"{a:.3f} -> {b:.3f}"] for c, (a, b) in s.null_rate.items()]
                body.append(_table(["change", "column", "detail"], rws))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )

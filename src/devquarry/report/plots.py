"""Plotly figures for the report: each function returns a Figure, which the report embeds as an
HTML fragment (plotly.js inlined once) and ``devquarry tables --figures`` writes as PNG or SVG."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

_LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=50, r=20, t=50, b=40))


def fragment(fig: go.Figure) -> str:
    # Post strings that reach a figure are JSON-encoded by plotly with <, > and / escaped.
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def threads_per_month(monthly: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for source, grp in monthly.groupby("source", sort=False):
        fig.add_trace(go.Scatter(x=grp["month"], y=grp["threads"], mode="lines+markers", name=str(source)))
    fig.update_layout(title="New threads per month", xaxis_title="month", yaxis_title="threads", **_LAYOUT)
    return fig


def resolved_share(summary: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        go.Bar(
            x=summary["share_resolved"] * 100,
            y=summary["source"],
            orientation="h",
            text=[f"{v:.1%}" for v in summary["share_resolved"]],
            textposition="auto",
        )
    )
    layout = dict(_LAYOUT, height=max(260, 26 * len(summary) + 90))
    fig.update_layout(title="Share of threads resolved", xaxis_title="% resolved", yaxis=dict(autorange="reversed"), **layout)
    return fig


def group_series(series: pd.DataFrame, period: str, top: int = 10) -> go.Figure:
    """New threads per period for the largest groups (popularity over time)."""
    sizes = series.groupby("group")["threads"].sum().sort_values(ascending=False)
    fig = go.Figure()
    for group in sizes.index[:top]:
        g = series[series.group == group].sort_values("period")
        fig.add_trace(go.Scatter(x=g["period"], y=g["threads"], mode="lines+markers", name=str(group)))
    fig.update_layout(title=f"New threads per {period}", xaxis_title=period, yaxis_title="threads", legend=dict(font=dict(size=10)), **_LAYOUT)
    return fig


def unresolved_by_group(m: pd.DataFrame) -> go.Figure:
    """Share unresolved per group with its 95% interval (the (all) row as a reference line)."""
    rows = m[m.group != "(all)"].sort_values("pct_unresolved")
    err = dict(type="data", symmetric=False, array=(rows.pct_unresolved_hi - rows.pct_unresolved) * 100,
               arrayminus=(rows.pct_unresolved - rows.pct_unresolved_lo) * 100) if "pct_unresolved_lo" in rows else None
    fig = go.Figure(go.Bar(x=rows.pct_unresolved * 100, y=rows.group.astype(str), orientation="h", error_x=err,
                           text=[f"{v:.1%} (n={n:,})" for v, n in zip(rows.pct_unresolved, rows.threads)], textposition="inside"))
    overall = m[m.group == "(all)"]
    if not overall.empty:
        fig.add_vline(x=float(overall.pct_unresolved.iloc[0]) * 100, line_dash="dot", annotation_text="all")
    layout = dict(_LAYOUT, height=max(280, 28 * len(rows) + 100))
    fig.update_layout(title="Share without an accepted answer (95% interval)", xaxis_title="% unresolved", xaxis_range=[0, 100], **layout)
    return fig


def hotspot_map(h: pd.DataFrame) -> go.Figure:
    """Popularity against difficulty (percentile ranks); hotspots in the upper right quadrant."""
    size = (h.threads / h.threads.max()) ** 0.5 * 40 + 6
    fig = go.Figure(go.Scatter(x=h.popularity, y=h.difficulty, mode="markers+text", text=h.group.astype(str), textposition="top center",
                               marker=dict(size=size, color=h.score, colorscale="Reds", showscale=True, colorbar=dict(title="score"),
                                           line=dict(width=1, color="#333"))))
    fig.add_hline(y=0.5, line_dash="dot")
    fig.add_vline(x=0.5, line_dash="dot")
    fig.update_layout(title="Hotspots: popularity and difficulty (percentile ranks among groups)", xaxis_title="popularity",
                      yaxis_title="difficulty", xaxis_range=[0, 1.08], yaxis_range=[0, 1.08], **dict(_LAYOUT, height=460))
    return fig


def topics_over_time(over_time: pd.DataFrame, top: int = 8) -> go.Figure:
    """Threads per period in each of the largest topics, stacked."""
    sizes = over_time.groupby("topic_id")["threads"].sum().sort_values(ascending=False)
    fig = go.Figure()
    for topic_id in sizes.index[:top]:
        grp = over_time[over_time.topic_id == topic_id]
        label = f"{topic_id}: {grp['label'].iloc[0]}"
        fig.add_trace(go.Scatter(x=grp["period"], y=grp["threads"], mode="lines+markers", name=label, stackgroup="one"))
    fig.update_layout(title=f"Threads per quarter, {min(top, len(sizes))} largest topics", xaxis_title="quarter", yaxis_title="threads",
                      legend=dict(font=dict(size=10)), **_LAYOUT)
    return fig


def report_figures(data: dict) -> dict[str, go.Figure]:
    """Every figure the report data supports, by file-friendly name."""
    figs = {}
    if not data["monthly"].empty:
        figs["threads_per_month"] = threads_per_month(data["monthly"])
    if not data["summary"].empty:
        figs["resolved_share"] = resolved_share(data["summary"])
    if data.get("series") is not None and not data["series"].empty:
        figs["threads_per_period_by_group"] = group_series(data["series"], data["period"])
    group = data.get("difficulty_by_group")
    if group is None:
        group = data.get("difficulty_by_source")
    if group is not None and len(group) > 1:
        figs["unresolved_by_group"] = unresolved_by_group(group)
    if data.get("hotspots") is not None and len(data["hotspots"]) > 1:
        figs["hotspots"] = hotspot_map(data["hotspots"])
    if data.get("topic_run") is not None and not data["topics_over_time"].empty:
        figs["topics_over_time"] = topics_over_time(data["topics_over_time"])
    return figs

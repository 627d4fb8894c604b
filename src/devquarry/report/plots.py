"""Plotly figures for the report, rendered as HTML fragments (plotly.js is inlined once)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

_LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=50, r=20, t=50, b=40))


def fragment(fig: go.Figure) -> str:
    # Post strings that reach a figure are JSON-encoded by plotly with <, > and / escaped.
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def threads_per_month(monthly: pd.DataFrame) -> str:
    fig = go.Figure()
    for source, grp in monthly.groupby("source", sort=False):
        fig.add_trace(go.Scatter(x=grp["month"], y=grp["threads"], mode="lines+markers", name=str(source)))
    fig.update_layout(title="New threads per month", xaxis_title="month", yaxis_title="threads", **_LAYOUT)
    return fragment(fig)


def resolved_share(summary: pd.DataFrame) -> str:
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
    return fragment(fig)


def topics_over_time(over_time: pd.DataFrame, top: int = 8) -> str:
    """Share of each period's threads per topic, for the largest topics."""
    sizes = over_time.groupby("topic_id")["threads"].sum().sort_values(ascending=False)
    fig = go.Figure()
    for topic_id in sizes.index[:top]:
        grp = over_time[over_time.topic_id == topic_id]
        label = f"{topic_id}: {grp['label'].iloc[0]}"
        fig.add_trace(go.Scatter(x=grp["period"], y=grp["threads"], mode="lines+markers", name=label, stackgroup="one"))
    fig.update_layout(title=f"Threads per quarter, {min(top, len(sizes))} largest topics", xaxis_title="quarter", yaxis_title="threads",
                      legend=dict(font=dict(size=10)), **_LAYOUT)
    return fragment(fig)

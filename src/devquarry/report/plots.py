"""Plotly figures for the report: each function returns a Figure, which the report embeds as an
HTML fragment (plotly.js inlined once) and ``devquarry tables --figures`` writes as PNG or SVG."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from devquarry.safe_text import html_label

# Plotly renders a subset of HTML (<a href>, <b>, <br>) in titles, labels, legends and hover text:
# every string from the data goes through html_label, so '<a href=...>' shows as text, not a link.
_LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=50, r=20, t=50, b=40))


def fragment(fig: go.Figure) -> str:
    # Post strings that reach a figure are JSON-encoded by plotly with <, > and / escaped.
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def monthly_caption(note: dict) -> str:
    """What the monthly chart leaves out, in words (the chart's subtitle, so exported figures say it too)."""
    if not note.get("left_out"):
        return "Every thread is shown; a month without threads counts zero."
    return (
        f"Left out: {note['left_out']:,} threads ({note['left_out_share']:.1%}) created before {note['start']:%Y-%m}, "
        f"the first in {note['first']:%Y-%m}; a month without threads inside the span counts zero."
    )


def threads_per_month(monthly: pd.DataFrame, note: dict | None = None) -> go.Figure:
    """New threads per month over the span ``report.data.monthly_span`` chose (zeros filled in)."""
    fig = go.Figure()
    for source, grp in monthly.groupby("source", sort=False):
        fig.add_trace(go.Scatter(x=grp["month"], y=grp["threads"], mode="lines+markers", name=html_label(source)))
    title = "New threads per month"
    if note and note.get("start") is not None:
        title += f"<br><sup>{monthly_caption(note)}</sup>"
        # The axis starts at the span, whatever plotly would pad.
        fig.update_xaxes(range=[note["start"] - pd.Timedelta(days=10), note["end"] + pd.Timedelta(days=20)])
    fig.update_layout(
        title=title,
        xaxis_title="month",
        yaxis_title="threads",
        showlegend=monthly.source.nunique() > 1,
        **dict(_LAYOUT, margin=dict(l=50, r=20, t=70, b=40)),
    )
    return fig


def resolved_share(summary: pd.DataFrame) -> go.Figure:
    summary = summary[summary["share_resolved"].notna()]  # a source that states no resolution has no bar
    fig = go.Figure(
        go.Bar(
            x=summary["share_resolved"] * 100,
            y=summary["source"].map(html_label),
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
        fig.add_trace(go.Scatter(x=g["period"], y=g["threads"], mode="lines+markers", name=html_label(group)))
    fig.update_layout(
        title=f"New threads per {html_label(period)}",
        xaxis_title=html_label(period),
        yaxis_title="threads",
        legend=dict(font=dict(size=10)),
        **_LAYOUT,
    )
    return fig


def unresolved_by_group(m: pd.DataFrame) -> go.Figure:
    """Share unresolved per group with its 95% interval (the (all) row as a reference line). The
    value labels sit right of each interval's upper end, so the error bars never cross them."""
    rows = m[(m.group != "(all)") & m.pct_unresolved.notna()].sort_values("pct_unresolved")
    has_ci = "pct_unresolved_lo" in rows
    err = (
        dict(
            type="data",
            symmetric=False,
            array=(rows.pct_unresolved_hi - rows.pct_unresolved) * 100,
            arrayminus=(rows.pct_unresolved - rows.pct_unresolved_lo) * 100,
        )
        if has_ci
        else None
    )
    groups = rows.group.map(html_label)
    fig = go.Figure(
        go.Bar(
            x=rows.pct_unresolved * 100,
            y=groups,
            orientation="h",
            error_x=err,
            showlegend=False,
            hovertemplate="%{y}: %{x:.1f}%<extra></extra>",
        )
    )
    ends = (rows.pct_unresolved_hi.fillna(rows.pct_unresolved) if has_ci else rows.pct_unresolved) * 100
    fig.add_trace(
        go.Scatter(
            x=ends + 1.5,
            y=groups,
            mode="text",
            textposition="middle right",
            showlegend=False,
            hoverinfo="skip",
            text=[f"{v:.1%} (n={n:,})" for v, n in zip(rows.pct_unresolved, rows.threads)],
            cliponaxis=False,
        )
    )
    overall = m[m.group == "(all)"]
    if not overall.empty and pd.notna(overall.pct_unresolved.iloc[0]):
        fig.add_vline(
            x=float(overall.pct_unresolved.iloc[0]) * 100, line_dash="dot", annotation_text="all", annotation_position="top"
        )
    layout = dict(_LAYOUT, height=max(280, 28 * len(rows) + 100))
    # Room right of 100% for the labels; the ticks stop at 100.
    fig.update_layout(
        title="Share without an accepted answer (95% interval)",
        xaxis_title="% unresolved",
        xaxis=dict(range=[0, 125], tickvals=list(range(0, 101, 20))),
        **layout,
    )
    return fig


def hotspot_map(h: pd.DataFrame) -> go.Figure:
    """Popularity against difficulty (percentile ranks); hotspots in the upper right quadrant."""
    size = (h.threads / h.threads.max()) ** 0.5 * 40 + 6
    fig = go.Figure(
        go.Scatter(
            x=h.popularity,
            y=h.difficulty,
            mode="markers+text",
            text=h.group.map(html_label),
            textposition="top center",
            marker=dict(
                size=size,
                color=h.score,
                colorscale="Reds",
                showscale=True,
                colorbar=dict(title="score"),
                line=dict(width=1, color="#333"),
            ),
        )
    )
    fig.add_hline(y=0.5, line_dash="dot")
    fig.add_vline(x=0.5, line_dash="dot")
    fig.update_layout(
        title="Hotspots: popularity and difficulty (percentile ranks among groups)",
        xaxis_title="popularity",
        yaxis_title="difficulty",
        xaxis_range=[0, 1.08],
        yaxis_range=[0, 1.08],
        **dict(_LAYOUT, height=460),
    )
    return fig


def topics_over_time(over_time: pd.DataFrame, top: int = 8, start: pd.Timestamp | None = None) -> go.Figure:
    """Threads per period in each of the largest topics, stacked, from the quarter of ``start`` (the
    monthly chart's span); a quarter without a topic's threads counts zero, so the stack stays true."""
    over_time = over_time.assign(period=pd.to_datetime(over_time.period, utc=True).dt.tz_localize(None))
    left = 0
    first = pd.Timestamp(start).to_period("Q").start_time if start is not None else None
    if first is not None and (over_time.period >= first).any():
        left = int(over_time.loc[over_time.period < first, "threads"].sum())
        over_time = over_time[over_time.period >= first]
    sizes = over_time.groupby("topic_id")["threads"].sum().sort_values(ascending=False)
    periods = sorted(over_time.period.unique())
    fig = go.Figure()
    for topic_id in sizes.index[:top]:
        grp = over_time[over_time.topic_id == topic_id]
        label = html_label(f"{topic_id}: {grp['label'].iloc[0]}")
        y = grp.set_index("period").threads.reindex(periods, fill_value=0)
        fig.add_trace(go.Scatter(x=y.index, y=y.values, mode="lines+markers", name=label, stackgroup="one"))
    title = f"Threads per quarter, {min(top, len(sizes))} largest topics"
    if left:
        title += f"<br><sup>Left out: {left:,} threads before {periods[0]:%Y-%m} (as in the monthly chart).</sup>"
    fig.update_layout(
        title=title,
        xaxis_title="quarter",
        yaxis_title="threads",
        legend=dict(font=dict(size=10)),
        **dict(_LAYOUT, margin=dict(l=50, r=20, t=70, b=40)),
    )
    return fig


def distribution_bars(dist: pd.DataFrame) -> go.Figure:
    """Share of threads per bin (``distributions.distribution``), a bar per source with its 95%
    interval; where one source only has values, its bars alone. The subtitle says how many threads
    had no value and were left out."""
    rows = dist[dist.bin != "(outside the bins)"]
    # Sources without a value of the measure have no bars (their threads are counted as left out).
    groups = [g for g in rows.group.unique() if g != "(all)" and rows.loc[rows.group == g, "n"].iloc[0] > 0]
    shown = ["(all)"] if len(groups) <= 1 else groups
    fig = go.Figure()
    for group in shown:
        g = rows[rows.group == group]
        fig.add_trace(
            go.Bar(
                x=g.bin.map(html_label),
                y=g.share * 100,
                name=html_label(group if group != "(all)" or len(groups) != 1 else groups[0]),
                error_y=dict(
                    type="data", symmetric=False, array=(g.share_hi - g.share) * 100, arrayminus=(g.share - g.share_lo) * 100
                ),
                customdata=list(zip(g["count"], g.n)),
                hovertemplate="%{x}: %{y:.1f}% (%{customdata[0]:,} of %{customdata[1]:,})<extra>%{fullData.name}</extra>",
            )
        )
    a = dist.attrs
    what = a.get("what", a.get("measure", ""))
    known = a.get("threads", 0) - a.get("unknown", 0)
    sub = f"{known:,} threads with a value" + (f"; {a['unknown']:,} without one left out" if a.get("unknown") else "")
    fig.update_layout(
        title=f"{html_label(what[:1].upper() + what[1:])} (95% interval)<br><sup>{html_label(sub)}</sup>",
        xaxis_title=html_label(what),
        yaxis_title="% of threads",
        barmode="group",
        showlegend=len(shown) > 1,
        **dict(_LAYOUT, margin=dict(l=50, r=20, t=70, b=40)),
    )
    return fig


def report_figures(data: dict) -> dict[str, go.Figure]:
    """Every figure the report data supports, by file-friendly name."""
    figs = {}
    if not data["monthly"].empty:
        figs["threads_per_month"] = threads_per_month(data["monthly"], data.get("monthly_note"))
    if data["summary"]["share_resolved"].notna().any():
        figs["resolved_share"] = resolved_share(data["summary"])
    if data.get("series") is not None and not data["series"].empty:
        figs["threads_per_period_by_group"] = group_series(data["series"], data["period"])
    group = data.get("difficulty_by_group")
    if group is None:
        group = data.get("difficulty_by_source")
    if group is not None and len(group) > 1 and group.pct_unresolved.notna().sum() > 1:
        figs["unresolved_by_group"] = unresolved_by_group(group)
    for measure, dist in (data.get("distributions") or {}).items():
        figs[f"{measure}_distribution"] = distribution_bars(dist)
    if data.get("hotspots") is not None and len(data["hotspots"]) > 1:
        figs["hotspots"] = hotspot_map(data["hotspots"])
    if data.get("topic_run") is not None and not data["topics_over_time"].empty:
        figs["topics_over_time"] = topics_over_time(data["topics_over_time"], start=(data.get("monthly_note") or {}).get("start"))
    return figs

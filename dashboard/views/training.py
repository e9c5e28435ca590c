"""Training: curves from Lightning logs (metrics.csv and TensorBoard events, via yolo.logs), several
runs compared, smoothing, log scale, the seed's accuracy targets; a run still writing is re-read."""

import frame
import job_panel
import jobs
import loaders
import places
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from yolo.config import ACCURACIES, LOSS_TOTAL, MAP50, metric_key
from yolo.logs import (available_metrics, default_smoothing, epoch_table, group_metrics, last_values, run_colours,
                       run_summary, seed_target, smooth_frame, thin)
from yolo.runs import find_runs

MAX_POINTS = 2000  # points drawn per curve; tables and smoothing use every logged value

ctx = frame.page("Training", "Curves of the runs under the logs folder "
                              f"(`{places.logs_root()}`), read from metrics.csv and TensorBoard events.")
job_panel.training_panel(ctx, show_button=False)
runs = [r for r in find_runs(ctx.logs_root) if r.has_metrics_csv or r.has_events]
if not runs:
    st.info(f"No run with logs in `{ctx.logs_root}` yet. Train the demo model (below, or "
            "`python train.py --preset demo`) and its curves appear here while it trains.")
    job_panel.training_panel(ctx)
    st.stop()

labels = [r.label for r in runs]
newest = [r.label for r in sorted(runs, key=lambda r: r.modified, reverse=True)[:3]]
chosen = st.multiselect("Runs", labels, default=newest, key="tr_runs")
if not chosen:
    st.info("Choose at least one run.")
    st.stop()
selected = [r for r in runs if r.label in chosen]


def curves() -> None:
    frame, warnings = loaders.read_run_metrics(selected, ctx.logs_root)
    for warning in warnings:
        st.warning(warning)
    silent = [label for label in chosen if frame.empty or label not in set(frame["run"].astype(str))]
    if silent:
        st.info(f"Nothing to draw for {', '.join(f'**{s}**' for s in silent)}: no value logged yet (a starting "
                "run writes its first rows after a few steps; this view refreshes with the page).")
    if frame.empty:
        return
    groups = group_metrics(available_metrics(frame))
    every = [m for names in groups.values() for m in names]
    preferred = [metric_key(s, k) for s in ("train", "val") for k in (LOSS_TOTAL, *ACCURACIES)] + [metric_key("val", MAP50)]
    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    metrics = c1.multiselect("Metrics", every, default=[m for m in preferred if m in every] or every[:4],
                             key="tr_metrics")
    x_axis = c2.radio("x axis", ["step", "epoch"], key="tr_x")
    per = c3.radio("Values", ["per epoch", "per step"], key="tr_kind",
                   help="Metrics logged both ways (training loss, accuracies) can be shown either way")
    log_y = c4.toggle("Log scale", key="tr_log")
    kinds = ("epoch", "plain") if per == "per epoch" else ("step", "plain")
    shown = frame[frame["metric"].isin(metrics) & frame["kind"].isin(kinds)]
    if x_axis == "epoch":
        shown = shown[shown["epoch"].notna()]
    longest = int(shown.groupby(["run", "metric", "kind"], observed=True).size().max()) if len(shown) else 0
    auto_weight = default_smoothing(longest)
    state = st.session_state
    if state.get("tr_smooth") in (None, state.get("tr_smooth_auto")):  # the default follows the curves
        state["tr_smooth"] = auto_weight  # shown until the user moves the slider
    state["tr_smooth_auto"] = auto_weight
    weight = st.slider("Smoothing (TensorBoard's debiased exponential moving average)", 0.0, 0.99, step=0.01,
                       key="tr_smooth",
                       help=f"Default {auto_weight:.2f} for curves of {longest} points: an average that lags by "
                            "about 1/40 of the curve (none up to 20 points). The faint line in each run's "
                            "own lighter colour is every logged value; the dot ends each curve at its last "
                            "logged value, whatever the smoothing.")
    shown = smooth_frame(shown, weight)
    thinned = shown.groupby(["run", "metric", "kind"], observed=True).size().max() > MAX_POINTS
    if thinned:
        st.caption(f"Curves longer than {MAX_POINTS:,} points are drawn from {MAX_POINTS:,} of them: the "
                   f"first and last point, and the lowest and highest value in each of "
                   f"{(MAX_POINTS - 2) // 2:,} equal runs of consecutive points (so spikes stay visible). "
                   "Smoothing, the tables and the summary use every logged value.")
    colours = run_colours(chosen)
    bold = {run: pair[0] for run, pair in colours.items()}
    columns = st.columns(2)
    for k, metric in enumerate(metrics):
        data = shown[shown["metric"] == metric].astype({"run": str, "metric": str, "kind": str})
        if data.empty:
            columns[k % 2].caption(f"{metric}: nothing logged {per} yet.")
            continue
        fig = px.line(thin(data, MAX_POINTS, "smoothed"), x=x_axis, y="smoothed", color="run", title=metric,
                      log_y=log_y, labels={"smoothed": metric}, color_discrete_map=bold,
                      category_orders={"run": list(chosen)})
        for trace in fig.data:
            trace.update(legendgroup=trace.name)
        if weight > 0:
            raw = px.line(thin(data, MAX_POINTS, "value"), x=x_axis, y="value", color="run",
                          color_discrete_map={run: pair[1] for run, pair in colours.items()})
            for trace in raw.data:
                trace.update(showlegend=False, legendgroup=trace.name, name=f"{trace.name} (every value)",
                             line_width=1)
                fig.add_trace(trace)
        for row in last_values(data, x_axis).itertuples(index=False):
            fig.add_trace(go.Scatter(x=[getattr(row, x_axis)], y=[row.value], mode="markers+text",
                                     marker={"color": bold.get(row.run), "size": 8}, text=[f"{row.value:.4g}"],
                                     textposition="middle left", showlegend=False, legendgroup=row.run,
                                     name=f"{row.run} (last value)"))
        target = seed_target(metric)
        if target is not None:
            fig.add_hline(y=target, line_dash="dash", line_color="gray",
                          annotation_text=f"seed target {target:.0f}%")
        columns[k % 2].plotly_chart(fig, width="stretch", key=f"tr_chart_{metric}")
        missing = [label for label in chosen if label not in silent and label not in set(data["run"])]
        if missing:
            columns[k % 2].caption(f"{metric}: nothing to draw {per} for {', '.join(missing)}.")
    st.subheader("Runs compared")
    table = epoch_table(frame)
    st.dataframe(run_summary(frame, monitor=metric_key("val", MAP50), table=table), hide_index=True,
                 width="stretch")
    with st.expander("Per-epoch table"):
        st.dataframe(table, hide_index=True, width="stretch")


live = jobs.status(ctx.logs_root).running
auto = st.toggle("Refresh every 5 s", value=live, key="tr_live",
                 help="For a run that is still training; each refresh re-reads its files")
st.fragment(run_every=5.0 if auto else None)(curves)()

with st.expander("Run configurations (config.yaml)"):
    for run in selected:
        st.markdown(f"**{run.label}** · `{run.path}`")
        if run.config is not None:
            st.json(run.config, expanded=False)
        else:
            st.caption("no readable config.yaml")
        for warning in run.warnings:
            st.warning(warning)

"""PNG figures of the study (matplotlib, Agg backend; the ``viz`` extra).  Each function
takes the result of one analysis and writes one file."""
from __future__ import annotations

import math
import pathlib
from typing import Any

import numpy as np

from ..errors import MissingDependencyError

#: file names of the figures, in report order
FIGURES = {"reasons": "invalid_by_reason.png", "clustering": "clustering.png",
           "components": "components.png", "cost_model": "cost_model.png",
           "validity_map": "validity_map.png"}


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("plots need matplotlib: pip install 'vtatune[viz]'") from None
    return plt


def _save(fig, path: pathlib.Path) -> pathlib.Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def plot_reasons(e1: dict, path: pathlib.Path, title: str) -> pathlib.Path:
    """Horizontal bars: share of the space that is valid and that fails for each reason."""
    plt = _pyplot()
    rows = e1["rows"]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.5))
    labels = [f"{r['reason']} ({r['count']})" for r in rows]
    colours = ["tab:green" if r["label"] == "valid" else
               "tab:red" if r["label"] == "invalid" else "tab:grey" for r in rows]
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [100 * r["share"] for r in rows], color=colours)
    ax.set_yticks(y, labels)
    ax.set_xlabel("% of the configuration space")
    ax.set_title(f"{title}: {100 * e1['invalid_fraction']:.1f} % invalid of {e1['size']}")
    ax.grid(True, axis="x", alpha=0.3)
    return _save(fig, path)


def plot_clustering(e2: dict[str, dict], path: pathlib.Path, title: str) -> pathlib.Path:
    """P(neighbour valid | valid) per graph (overall and per knob) against the base rate
    and the shuffled (random placement) value."""
    plt = _pyplot()
    adj = e2["adjacent"]
    bars = [("all knobs\n(adjacent)", adj["p_neighbour_valid"])]
    bars += [(f"{r['knob']}\n(adjacent)", r["p_neighbour_valid"]) for r in adj["per_knob"]]
    if "any" in e2:
        bars.append(("all knobs\n(any other)", e2["any"]["p_neighbour_valid"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(bars) + 2), 4))
    x = np.arange(len(bars))
    vals = [0 if math.isnan(v) else v for _, v in bars]
    ax.bar(x, vals, color="tab:blue")
    ax.axhline(adj["base_rate"], color="tab:red", ls="--",
               label=f"base rate (valid share) {adj['base_rate']:.3f}")
    ax.axhline(adj["shuffled"]["p_neighbour_valid"], color="tab:grey", ls=":",
               label="same count placed at random")
    ax.set_xticks(x, [b for b, _ in bars], fontsize=8)
    ax.set_ylabel("P(neighbour valid | valid)")
    ax.set_ylim(0, 1)
    ax.set_title(f"{title}: clustering of valid configurations")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_components(e2: dict[str, dict], path: pathlib.Path, title: str) -> pathlib.Path:
    """Histogram of the sizes of the connected valid components (adjacent graph)."""
    plt = _pyplot()
    adj = e2["adjacent"]
    sizes = np.asarray(adj["component_sizes"])
    null = np.asarray(adj["shuffled"].get("example_sizes") or [])
    fig, ax = plt.subplots(figsize=(6, 4))
    if sizes.size:
        top = max(sizes.max(), null.max() if null.size else 1)
        edges = np.unique(np.round(np.logspace(0, np.log10(top + 1), 20)).astype(int))
        ax.hist(sizes, bins=edges, color="tab:blue", edgecolor="black", label="measured")
        if null.size:
            ax.hist(null, bins=edges, histtype="step", color="tab:grey", lw=2,
                    label="same count placed at random (one shuffle)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no valid configuration", ha="center", transform=ax.transAxes)
    ax.set_xlabel("component size (valid configurations)")
    ax.set_ylabel("components")
    ax.set_title(f"{title}: {adj['components']} valid components "
                 f"(random placement: {adj['shuffled']['components']:.0f})", fontsize=10)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_cost_model(e3: dict[str, Any], path: pathlib.Path, title: str) -> pathlib.Path:
    """Each metric against the training-set size: median over seeds, band = quartiles."""
    plt = _pyplot()
    metrics = [m for m in dict.fromkeys(r["metric"] for r in e3["summary"])]
    cols = min(4, max(1, len(metrics)))
    rows = math.ceil(len(metrics) / cols) if metrics else 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    colours = {"S1": "tab:red", "S2": "tab:blue"}
    names = {"S1": "S1 invalid kept (label 0)", "S2": "S2 invalid removed"}
    for ax, m in zip(axes.flat, metrics):
        for sc in ("S1", "S2"):
            pts = [r for r in e3["summary"] if r["metric"] == m and r["scenario"] == sc
                   and r["runs"]]
            if not pts:
                continue
            n = [r["n"] for r in pts]
            ax.plot(n, [r["median"] for r in pts], "o-", color=colours[sc], label=names[sc])
            ax.fill_between(n, [r["q25"] for r in pts], [r["q75"] for r in pts],
                            color=colours[sc], alpha=0.2)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training samples n")
        whole = m == "validity_auc" or m.startswith("valid@")
        ax.set_title(f"{m} (whole space)" if whole else f"{m} (valid only)", fontsize=10)
        ax.grid(True, alpha=0.3)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if metrics and axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=8)
    elif not any(r["runs"] for r in e3["summary"]):
        fig.text(0.5, 0.5, "not computed: fewer than 2 valid configurations or no "
                           "training size fits the space", ha="center")
    fig.suptitle(f"{title}: XGB ({e3['loss_type']}) on knob features, "
                 f"{e3['seeds']} seeds, tested on {e3['n_test']} valid configurations",
                 fontsize=10)
    return _save(fig, path)


def plot_validity_map(gm: dict, path: pathlib.Path, title: str) -> pathlib.Path:
    """Two heat maps over two knobs: valid share and best GOPS, over all other knobs."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, key, cmap, label in ((axes[0], "valid_share", "Greens", "valid share"),
                                 (axes[1], "best_gops", "viridis", "best GOPS")):
        z = np.asarray(gm[key])
        top = max(float(z.max()), 1e-9)  # scaled to the data: shares are often small
        im = ax.imshow(z, origin="lower", cmap=cmap, aspect="auto", vmin=0, vmax=top)
        ax.set_xticks(range(len(gm["x_values"])), gm["x_values"])
        ax.set_yticks(range(len(gm["y_values"])), gm["y_values"])
        ax.set_xlabel(gm["x_knob"])
        ax.set_ylabel(gm["y_knob"])
        ax.set_title(label)
        for (r, c), v in np.ndenumerate(z):
            ax.text(c, r, f"{v:.2f}" if key == "valid_share" else f"{v:.1f}", ha="center",
                    va="center", fontsize=7,
                    color="black" if (key == "valid_share") == (v <= 0.6 * top) else "white")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(f"{title}: {gm['y_knob']} × {gm['x_knob']} (over all other knobs)", fontsize=10)
    return _save(fig, path)

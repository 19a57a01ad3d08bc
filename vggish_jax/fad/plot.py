"""A small PNG of FAD against 1/N with the FAD-infinity fit (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import os

import numpy as np

from vggish_jax import atomic


def fad_inf_png(path: str | os.PathLike, result: dict, title: str = "FAD vs 1/N") -> str:
    """Write the plot for an `evaluate` result's "fad_inf" entry; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    inf = result["fad_inf"]
    ns = np.array([p["n"] for p in inf["points"]], np.float64)
    fads = np.array([p["fad"] for p in inf["points"]])
    fig = Figure(figsize=(5, 3.5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(1.0 / ns, fads, "o", label="FAD on N frames (subsets)")
    x = np.linspace(0.0, 1.0 / ns.min(), 50)
    ax.plot(x, inf["value"] + inf["slope"] * x, "-", label=f"fit: FAD-inf {inf['value']:.4g}, R² {inf['r2']:.3f}")
    if inf.get("ci"):
        lo, hi = inf["ci"]
        ax.errorbar([0.0], [inf["value"]], yerr=[[inf["value"] - lo], [hi - inf["value"]]], fmt="s", capsize=4,
                    label=f"{100 * inf['ci_level']:.0f}% bootstrap CI [{lo:.4g}, {hi:.4g}]")
    ax.axhline(result["fad"], color="grey", lw=0.8, ls="--", label=f"FAD on all frames {result['fad']:.4g}")
    ax.set_xlabel("1 / N (frames)")
    ax.set_ylabel("FAD")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic.replacing(path, "wb") as f:
        fig.savefig(f, format="png")
    return os.fspath(path)

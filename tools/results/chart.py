"""Grouped bar chart: one group per dataset (and the average), one bar per method."""
import os

import matplotlib

matplotlib.use("Agg")  # files only: no display needed (and none on a cluster node)
import matplotlib.pyplot as plt  # noqa: E402

from tools.results.catalog import AVERAGE, display_name  # noqa: E402

FORMATS = (".png", ".svg")


def chart_metric(protocol):
    return "hm" if protocol.name == "base2new" else "accuracy"


def save_bar_chart(cells, protocol, methods, path):
    """Write the chart of HM (base-to-new) or accuracy per dataset per method to ``path``.

    Missing values get no bar. The format follows the extension (.png or .svg).
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise ValueError(f"chart file must end in {' or '.join(FORMATS)}, got {path!r}")
    metric = chart_metric(protocol)
    datasets = (*protocol.datasets, AVERAGE)
    width = 0.8 / max(len(methods), 1)
    figure_width = min(16.0, max(6.0, len(datasets) * (0.3 + 0.2 * len(methods))))
    figure, axes = plt.subplots(figsize=(figure_width, 4.0))
    for i, method in enumerate(methods):
        positions, heights = [], []
        for j, dataset in enumerate(datasets):
            cell = cells.get((method, dataset, metric))
            if cell is not None and not cell.missing:
                positions.append(j + (i - (len(methods) - 1) / 2) * width)
                heights.append(cell.mean)
        axes.bar(positions, heights, width=width, label=method)
    axes.set_xticks(range(len(datasets)))
    axes.set_xticklabels([display_name(d) for d in datasets], rotation=45, ha="right")
    axes.set_ylabel("HM (%)" if metric == "hm" else "Accuracy (%)")
    what = "harmonic mean of Base and New" if metric == "hm" else "test accuracy"
    axes.set_title(f"{protocol.name}: {what}")
    axes.set_xlim(-0.6, len(datasets) - 0.4)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))  # never over bars
    axes.grid(axis="y", alpha=0.3)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    figure.savefig(path, bbox_inches="tight", dpi=120)
    plt.close(figure)
    return path

"""Result cells per (method, dataset, metric), and the tables printed from them.

Base-to-new tables have a row per dataset and method and the columns Base, New, HM; the
other protocols a row per method and a column per dataset, then the average. With two or
more values in a column group the best (highest at the shown precision) is marked: a
trailing `*` in text, bold in Markdown, ``best=1`` in CSV.
"""
import csv
import io

from tabulate import tabulate

from tools.results.aggregate import average_cell, hm_cell, seed_cell
from tools.results.catalog import AVERAGE, display_name

DECIMALS = 2
METRIC_HEADERS = {"base": "Base", "new": "New", "hm": "HM", "accuracy": "Accuracy"}


def table_metrics(protocol):
    return ("base", "new", "hm") if protocol.name == "base2new" else ("accuracy",)


def measured_cells(experiments, expected_seeds):
    return {
        (e.method, e.dataset, e.metric): seed_cell(
            [run.accuracy for run in e.runs if run.accuracy is not None], expected_seeds)
        for e in experiments
    }


def add_derived_cells(cells, protocol, method):
    """Per-dataset HM and the average row, from a method's measured cells."""
    if protocol.name == "base2new":
        for dataset in protocol.datasets:
            cells[method, dataset, "hm"] = hm_cell(cells[method, dataset, "base"],
                                                   cells[method, dataset, "new"])
        for metric in ("base", "new"):
            cells[method, AVERAGE, metric] = average_cell(
                [cells[method, d, metric] for d in protocol.averaged])
        # The papers' average HM is the HM of the averaged Base and New.
        cells[method, AVERAGE, "hm"] = hm_cell(cells[method, AVERAGE, "base"],
                                               cells[method, AVERAGE, "new"])
    else:
        cells[method, AVERAGE, "accuracy"] = average_cell(
            [cells[method, d, "accuracy"] for d in protocol.averaged])


def build_cells(protocol, experiments, expected_seeds, methods):
    cells = measured_cells(experiments, len(expected_seeds))
    for method in methods:
        add_derived_cells(cells, protocol, method)
    return cells


def best_keys(cells, rows_by_group):
    """The cells holding a column group's highest value (ties all count), where >= 2 compete."""
    best = set()
    for keys in rows_by_group:
        values = {k: round(cells[k].mean, DECIMALS) for k in keys if k in cells and not cells[k].missing}
        if len(values) >= 2:
            top = max(values.values())
            best |= {k for k, v in values.items() if v == top}
    return best


def column_groups(protocol, methods):
    """Lists of cell keys that compete for 'best' (one list per table column per dataset)."""
    datasets = (*protocol.datasets, AVERAGE)
    return [[(m, d, metric) for m in methods] for d in datasets for metric in table_metrics(protocol)]


def format_cell(cell):
    if cell is None or cell.missing:
        return "" if cell is None or cell.published else "missing"
    text = f"{cell.mean:.{DECIMALS}f}"
    if cell.std is not None:
        text += f" ± {cell.std:.{DECIMALS}f}"
    if cell.incomplete:
        text += f" [{cell.seeds}/{cell.expected_seeds} seeds]" if cell.seeds else " [partial]"
    return text


def marked(text, is_best, fmt):
    if not is_best:
        return text
    return f"**{text}**" if fmt == "markdown" else f"{text} *"


def table_rows(cells, protocol, methods, fmt):
    """Headers and rows of the human-readable table."""
    best = best_keys(cells, column_groups(protocol, methods))

    def shown(key):
        return marked(format_cell(cells.get(key)), key in best, fmt)

    datasets = (*protocol.datasets, AVERAGE)
    if protocol.name == "base2new":
        headers = ["Dataset", "Method", "Base", "New", "HM"]
        rows = []
        for dataset in datasets:
            for i, method in enumerate(methods):
                label = display_name(dataset) if i == 0 else ""
                rows.append([label, method, *(shown((method, dataset, m)) for m in ("base", "new", "hm"))])
        return headers, rows
    headers = ["Method", *(display_name(d) for d in datasets)]
    if protocol.name in ("xd", "dg"):
        headers[1] += " (source)"
    rows = [[method, *(shown((method, d, "accuracy")) for d in datasets)] for method in methods]
    return headers, rows


def render_table(cells, protocol, methods, fmt="text"):
    headers, rows = table_rows(cells, protocol, methods, fmt)
    tablefmt = "pipe" if fmt == "markdown" else "simple"
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


CSV_FIELDS = ["protocol", "method", "dataset", "metric", "mean", "std", "seeds",
              "expected_seeds", "status", "best"]


def cell_status(cell):
    if cell.published:
        return "published"
    if cell.missing:
        return "missing"
    return "incomplete" if cell.incomplete else "ok"


def render_csv(cells, protocol, methods):
    """One line per value (long format), with the average as dataset ``average``."""
    best = best_keys(cells, column_groups(protocol, methods))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for method in methods:
        for dataset in (*protocol.datasets, AVERAGE):
            for metric in table_metrics(protocol):
                key = (method, dataset, metric)
                cell = cells.get(key)
                if cell is None:
                    continue
                writer.writerow([
                    protocol.name, method, dataset, metric,
                    "" if cell.missing else round(cell.mean, 4),
                    "" if cell.std is None else round(cell.std, 4),
                    cell.seeds, cell.expected_seeds, cell_status(cell), int(key in best),
                ])
    return out.getvalue()

"""Published numbers (tools/reference_results.json) as extra, labelled table rows.

Each entry names its method, protocol and source; its ``results`` map dataset to
metric to value, shown as published (nothing is recomputed from them).
"""
import json
import os

from tools.results.aggregate import published_cell

DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "reference_results.json")


class NoPublishedResults(LookupError):
    """The reference file has no entry for a requested method and protocol."""


def load_entries(path=DEFAULT_FILE):
    with open(path) as f:
        return json.load(f)["entries"]


def reference_rows(entries, protocol_name, methods):
    """{row label: (cells keyed (label, dataset, metric), source)} for the requested methods."""
    by_method = {e["method"]: e for e in entries if e["protocol"] == protocol_name}
    unknown = [m for m in methods if m not in by_method]
    if unknown:
        raise NoPublishedResults(f"no published {protocol_name} numbers for {', '.join(unknown)} "
                       f"(the file has: {', '.join(sorted(by_method)) or 'none'})")
    rows = {}
    for method in methods:
        entry = by_method[method]
        label = f"{method} (published)"
        cells = {(label, dataset, metric): published_cell(value)
                 for dataset, values in entry["results"].items() for metric, value in values.items()}
        rows[label] = (cells, entry["source"])
    return rows

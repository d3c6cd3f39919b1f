"""Seed-averaged result tables (and a bar chart) from the run folders the sweeps write.

    # one method, base-to-new on the 11 datasets (Base, New, HM and the average)
    python tools/parse_results.py base2new --method CoOp
    # several methods side by side, published numbers as extra rows, a chart of HM
    python tools/parse_results.py base2new --method CoOp --method MaPLe --method RPP \\
        --reference CoOp --reference MaPLe --format markdown --chart hm.png
    # cross-dataset (ImageNet -> 10 targets), domain generalisation, few-shot
    python tools/parse_results.py xd --method CoOp/vit_b16_ep50
    python tools/parse_results.py dg --method CoOp/vit_b16_ep50
    # prompts pre-trained on ImageNet-21K (scripts/{rpp,pomp}/pretrain.sh, xd.sh, dg.sh)
    python tools/parse_results.py xd --source imagenet21k --method RPP/vit_b16_in21k --method POMP/vit_b16_ep5
    python tools/parse_results.py fewshot --method CoOp --shots 4 --format csv > coop_4shots.csv
    # any folder of seed<N> runs, like CoOp's parse_test_res.py
    python tools/parse_results.py --dir output/oxford_pets/CoOp/vit_b16_16shots

A method is [LABEL=]TRAINER[/CFG]; CFG may be a glob and defaults to any config (it
must match one folder per dataset). A run's result is the final test accuracy in its
newest finished log. Values are mean ± sample std (ddof=1) over the seeds; the expected
seeds are --seeds, or else every seed found for any method and dataset. Runs that are
missing or unfinished are listed, and averages needing them are shown as missing.
Exit status: 0 (also with missing runs), 2 on bad arguments.
"""
import argparse
import csv
import io
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tabulate import tabulate  # noqa: E402

from tools.results import reference  # noqa: E402
from tools.results.aggregate import seed_cell  # noqa: E402
from tools.results.catalog import canonical_dataset  # noqa: E402
from tools.results.chart import save_bar_chart  # noqa: E402
from tools.results.collect import (  # noqa: E402
    Experiment, Method, find_experiments, make_protocol, read_experiments, seed_dirs,
    seeds_found, unfinished_runs, with_distinct_labels,
)
from tools.results.tables import build_cells, format_cell, render_csv, render_table  # noqa: E402

PROTOCOLS = ("base2new", "xd", "dg", "fewshot")


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("protocol", nargs="?", choices=PROTOCOLS,
                        help="which sweep's layout to read (or give --dir)")
    parser.add_argument("--dir", help="a folder of seed<N> run folders (instead of a protocol)")
    parser.add_argument("--method", action="append", default=[], type=Method.parse,
                        metavar="[LABEL=]TRAINER[/CFG]", help="a method to report (repeatable)")
    parser.add_argument("--output", default=os.environ.get("OUTPUT", "output"),
                        help="the sweeps' OUTPUT folder (default: $OUTPUT or output)")
    parser.add_argument("--shots", type=int, default=16, help="SHOTS of the sweep (default 16)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="the seeds every run should have (default: all seeds found)")
    parser.add_argument("--datasets", nargs="+", type=canonical_dataset,
                        help="dataset folder names (default: the protocol's standard list)")
    parser.add_argument("--source", default="imagenet", type=canonical_dataset,
                        help="source dataset of xd/dg (default imagenet; imagenet21k for the "
                             "pre-training sweeps, imagenet_21k accepted)")
    parser.add_argument("--reference", action="append", default=[], metavar="METHOD",
                        help="add the published numbers of METHOD as a row (repeatable)")
    parser.add_argument("--reference-file", default=reference.DEFAULT_FILE,
                        help="published numbers with their sources (default: tools/reference_results.json)")
    parser.add_argument("--format", choices=("text", "markdown", "csv"), default="text")
    parser.add_argument("--chart", metavar="FILE.png|FILE.svg",
                        help="also draw HM (base2new) or accuracy per dataset per method")
    return parser


class Report:
    """Tables go to stdout; with CSV the notes go to stderr so stdout stays one CSV."""

    def __init__(self, fmt):
        self.notes = sys.stderr if fmt == "csv" else sys.stdout

    def table(self, text):
        print(text)

    def note(self, text=""):
        print(text, file=self.notes)

    def unfinished(self, problems):
        if problems:
            self.note(f"\nMissing or unfinished runs ({len(problems)}):")
            for where, why in problems:
                self.note(f"  {where}: {why}")


def plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


def legend(protocol, expected_seeds, fmt):
    best = "bold" if fmt == "markdown" else "*"
    seeds = ", ".join(map(str, expected_seeds)) or "none found"
    lines = [f"Values: mean ± sample std (ddof=1) over seeds {seeds}; [k/n seeds]: only k finished; "
             f"[partial]: computed from such values; {best}: best in its column."]
    noun = "target" if protocol.name in ("xd", "dg") else "dataset"
    averaged = plural(len(protocol.averaged), noun)
    if protocol.name == "base2new":
        lines.append("HM = 2*Base*New/(Base+New) of the seed-averaged Base and New; the average "
                     f"row ({averaged}) has the HM of the averaged Base and New.")
    else:
        lines.append(f"Average: over the {averaged}.")
    return lines


def report_protocol(args, report):
    protocol = make_protocol(args.protocol, args.datasets, args.source)
    experiments = find_experiments(protocol, args.output, args.method, args.shots)
    expected_seeds = sorted(args.seeds or seeds_found(experiments))
    read_experiments(experiments, expected_seeds)
    labels = [m.label for m in args.method]
    cells = build_cells(protocol, experiments, expected_seeds, labels)
    sources = {}
    if args.reference:
        entries = reference.load_entries(args.reference_file)
        rows = reference.reference_rows(entries, protocol.name, args.reference)
        for label, (published, source) in rows.items():
            cells.update(published)
            labels.append(label)
            sources[label] = source

    if args.format == "csv":
        report.table(render_csv(cells, protocol, labels).rstrip("\n"))
    else:
        report.table(render_table(cells, protocol, labels, args.format))
        report.note()  # Markdown would read a line right below a table as one more row
    for line in legend(protocol, expected_seeds, args.format):
        report.note(line)
    for label, source in sources.items():
        report.note(f"{label}: {source}")
    problems = unfinished_runs(experiments)
    report.unfinished(problems)
    if args.chart:
        report.note(f"Chart: {save_bar_chart(cells, protocol, labels, args.chart)}")
    runs = sum(len(e.runs) for e in experiments)
    finished = sum(run.accuracy is not None for e in experiments for run in e.runs)
    return (f"{protocol.name}: {plural(len(args.method), 'method')}, {finished} of {runs} runs read with a "
            f"final result; {len(problems)} missing or unfinished entries listed")


def report_dir(args, report):
    """Each seed's accuracy and their mean ± std, for one folder of seed runs."""
    found = seed_dirs(args.dir)
    seeds = sorted(args.seeds or found)
    experiment = Experiment(args.dir, os.path.basename(os.path.normpath(args.dir)), "accuracy", args.dir,
                            seed_dirs=found)
    read_experiments([experiment], seeds)
    cell = seed_cell([run.accuracy for run in experiment.runs if run.accuracy is not None], len(seeds))
    rows = [[seed, "" if run.accuracy is None else f"{run.accuracy:.2f}", run.log or run.problem]
            for seed, run in zip(seeds, experiment.runs)]
    if args.format == "csv":
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([["seed", "accuracy", "log"], *rows])
        report.table(text.getvalue().rstrip("\n"))
    else:
        tablefmt = "pipe" if args.format == "markdown" else "simple"
        report.table(tabulate(rows, headers=["Seed", "Accuracy", "Log"], tablefmt=tablefmt,
                              disable_numparse=True))
    # The table already names each seed without a result and why.
    report.note(f"Accuracy: {format_cell(cell)} (mean ± sample std over {cell.seeds} of {len(seeds)} seeds)")
    return f"{args.dir}: {cell.seeds} of {len(seeds)} seeds with a final result"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if bool(args.protocol) == bool(args.dir):
        parser.error("give a protocol (base2new, xd, dg, fewshot) or --dir, not both")
    if args.protocol and not args.method:
        parser.error("give at least one --method TRAINER[/CFG]")
    try:
        args.method = with_distinct_labels(args.method)
    except ValueError as error:
        parser.error(str(error))
    if args.dir and not os.path.isdir(args.dir):
        parser.error(f"--dir {args.dir}: no such folder")
    if args.protocol and not os.path.isdir(args.output):
        parser.error(f"--output {args.output}: no such folder")
    if args.chart and os.path.splitext(args.chart)[1].lower() not in (".png", ".svg"):
        parser.error(f"--chart {args.chart}: the file must end in .png or .svg")
    started = time.time()
    report = Report(args.format)
    try:
        summary = report_dir(args, report) if args.dir else report_protocol(args, report)
    except (reference.NoPublishedResults, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report.note(f"\nSummary: {summary} ({time.time() - started:.1f} s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""List every image of a dataset that cannot be decoded (without training).

    python tools/scan_images.py --root $DATA --dataset oxford_pets [--output bad_files.txt]

Prints one ``<path>\t<reason>`` line per bad file; exit status 1 if any was found.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.catalog import lookup  # noqa: E402
from datasets.inspection import build_check_cfg, inspect_dataset  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, help="the data root (DATASET.ROOT, $DATA)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--dataset-config-file", help="configs/datasets/*.yaml")
    group.add_argument("--dataset", help="dataset name or config stem (e.g. oxford_pets)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--output", help="also write the list to this file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides")
    args = parser.parse_args(argv)
    if args.dataset:
        try:
            lookup(args.dataset)
        except KeyError as exc:
            parser.error(str(exc.args[0]))
    cfg = build_check_cfg(os.path.abspath(args.root), args.dataset_config_file, args.dataset, args.opts)
    report = inspect_dataset(cfg, scan_images=True, workers=args.workers, progress=sys.stderr.isatty())
    if report.error:
        print(report.error, file=sys.stderr)
        return 2
    lines = [f"{path}\t{reason}" for path, reason in report.bad_images]
    lines += [f"{path}\tmissing" for paths in report.missing_files.values() for path in paths]
    for line in lines:
        print(line)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
    checked = sum(c for c in report.split_counts.values() if c)
    print(f"{report.name}: {len(lines)} bad of {checked:,} listed images", file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())

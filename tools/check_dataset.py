"""Report what a dataset looks like on disk: classes, images per split, missing files.

    python tools/check_dataset.py --root $DATA --dataset-config-file configs/datasets/dtd.yaml
    python tools/check_dataset.py --root $DATA --dataset dtd,eurosat --scan-images
    python tools/check_dataset.py --root $DATA --all
    python tools/check_dataset.py --root $DATA --dataset imagenet21k DATASET.IN21K_CLASS_SET all

Exit status: 0 when everything checked is complete, 1 otherwise.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.catalog import CATALOG, lookup  # noqa: E402
from datasets.inspection import build_check_cfg, format_report, inspect_dataset  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, help="the data root (DATASET.ROOT, $DATA)")
    parser.add_argument("--dataset-config-file", action="append", default=[],
                        help="configs/datasets/*.yaml (repeatable)")
    parser.add_argument("--dataset", action="append", default=[],
                        help="dataset names or config stems, comma-separated or repeated (e.g. dtd,eurosat)")
    parser.add_argument("--all", action="store_true", help="every dataset except the demo")
    parser.add_argument("--scan-images", action="store_true", help="also decode every image (slow)")
    parser.add_argument("--workers", type=int, default=8, help="threads for --scan-images")
    parser.add_argument("opts", nargs=argparse.REMAINDER,
                        help="config overrides, e.g. DATASET.IN21K_CLASS_SET all")
    return parser


def selected_configs(args, parser):
    configs = [(f, None) for f in args.dataset_config_file]
    try:
        names = [d for arg in args.dataset for d in arg.split(",") if d]
        configs += [(None, lookup(d).name) for d in names]
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    if args.all:
        configs += [(None, name) for name in CATALOG if name != "Demo"]
    if not configs:
        parser.error("name a dataset: --dataset-config-file, --dataset or --all")
    return configs


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    ok = True
    for config_file, dataset in selected_configs(args, parser):
        cfg = build_check_cfg(os.path.abspath(args.root), config_file, dataset, args.opts)
        report = inspect_dataset(
            cfg, scan_images=args.scan_images, workers=args.workers, progress=args.scan_images
        )
        print(format_report(report))
        ok = ok and report.ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

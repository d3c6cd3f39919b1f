"""Download datasets into $DATA in the layout the dataset classes expect.

    python tools/download_datasets.py --root $DATA dtd eurosat
    python tools/download_datasets.py --root $DATA --all --source mirror
    python tools/download_datasets.py --root $DATA caltech101 --print-urls   # what to fetch by hand

--source auto (default) uses the hosts CoOp's DATASETS.md names (Google Drive through
gdown, the official sites) and switches to the Hugging Face mirror
(zhengli97/prompt_learning_dataset) where those are dead or incomplete. ImageNet images
(and ImageNet-21K) cannot be downloaded automatically; only their small files are fetched.
Offline, the tool stops before downloading anything and prints the URLs to fetch by hand.
Exit status: 0 done, 1 downloaded but the layout check failed, 2 nothing could be fetched.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.catalog import CATALOG, lookup  # noqa: E402
from datasets.download import DownloadError, download, manual_instructions  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", required=True, help="the data root ($DATA, DATASET.ROOT)")
    parser.add_argument("datasets", nargs="*", help="config stems or names, e.g. dtd oxford_pets")
    parser.add_argument("--all", action="store_true", help="every dataset (ImageNet images stay manual)")
    parser.add_argument("--source", choices=("auto", "official", "mirror"), default="auto")
    parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives")
    parser.add_argument("--print-urls", action="store_true", help="only print what to fetch by hand")
    return parser


def main(argv=None, fetchers=None, reach=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        names = [lookup(d).name for d in args.datasets]
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    if args.all:
        names += [n for n in CATALOG if n != "Demo" and n not in names]
    if not names:
        parser.error("name the datasets to download, or --all")
    if "Demo" in names:
        parser.error("the demo dataset is generated on first use, not downloaded")
    root = os.path.abspath(os.path.expanduser(args.root))
    try:
        if args.print_urls:
            print("\n".join(manual_instructions(root, [CATALOG[n] for n in names], args.source)))
            return 0
        extra = {"reach": reach} if reach else {}
        problems = download(root, names, fetchers, args.source, args.keep_archives, **extra)
    except DownloadError as exc:
        print(f"Download failed: {exc}", file=sys.stderr)
        return 2
    for name, problem in problems.items():
        print(f"{name} is still incomplete:\n{problem}", file=sys.stderr)
    if not problems:
        print(f"Done. Check with: python tools/check_dataset.py --root {root} --dataset {','.join(names)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

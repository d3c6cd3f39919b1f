"""Report what is on disk for a dataset (layout, classes, split sizes, missing or bad
files) without building Datums or training: the engine behind tools/check_dataset.py."""
import os
from dataclasses import dataclass, field

from datasets.catalog import CATALOG
from datasets.errors import DatasetError
from datasets.image_check import find_bad_images
from datasets.pipeline import dataset_folder

SPLITS = ("train", "val", "test")
SHOWN = 10


@dataclass
class DatasetReport:
    name: str
    dataset_dir: str
    missing_layout: list = field(default_factory=list)  # [(what, path, fix)]
    error: str = ""  # why the splits could not be read
    classnames: list = field(default_factory=list)
    split_counts: dict = field(default_factory=dict)  # split -> number of images (None: not a split)
    missing_files: dict = field(default_factory=dict)  # split -> [paths]
    bad_images: list = None  # [(path, reason)]; None when not scanned

    @property
    def ok(self):
        return not (self.missing_layout or self.error or any(self.missing_files.values()) or self.bad_images)


def build_check_cfg(root, config_file=None, dataset=None, opts=()):
    """The config a training run would use for this dataset (defaults + dataset YAML + opts)."""
    from engine import get_cfg_default
    from engine.config_extension import extend_cfg

    from datasets.catalog import lookup

    cfg = extend_cfg(get_cfg_default())
    if config_file is None:
        config_file = default_config_file(lookup(dataset).config)
    cfg.merge_from_file(config_file)
    cfg.DATASET.ROOT = root
    if opts:
        cfg.merge_from_list(list(opts))
    return cfg


def default_config_file(config):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, "configs", "datasets", f"{config}.yaml")


def _classnames(records):
    names = {}
    for r in records:
        names.setdefault(r.label, r.classname)
    return [names[label] for label in sorted(names)]


def inspect_dataset(cfg, scan_images=False, workers=8, progress=False):
    """Check the layout of ``cfg.DATASET.NAME`` under ``cfg.DATASET.ROOT`` and read its splits."""
    from engine import DATASET_REGISTRY

    name = cfg.DATASET.NAME
    info = CATALOG[name]
    cls = DATASET_REGISTRY.get(name)
    dataset_dir = dataset_folder(cfg, info)
    report = DatasetReport(name, dataset_dir)
    for req in info.requirements:
        path = os.path.join(dataset_dir, req.path)
        if not os.path.exists(path):
            report.missing_layout.append((req.what, path, req.fix))
    try:
        cls.check_layout(dataset_dir)
        splits = cls.read_records(dataset_dir, cfg)
    except (DatasetError, OSError, ValueError) as exc:
        report.error = str(exc)
        return report
    all_paths = []
    for split in SPLITS:
        records = splits.get(split)
        if records is None:
            report.split_counts[split] = None
            continue
        records = list(records)
        report.split_counts[split] = len(records)
        report.missing_files[split] = [r.impath for r in records if not os.path.isfile(r.impath)]
        all_paths += [r.impath for r in records]
        if not report.classnames:
            report.classnames = _classnames(records)
    if scan_images:
        missing = {p for paths in report.missing_files.values() for p in paths}
        report.bad_images = find_bad_images((p for p in all_paths if p not in missing), workers, progress)
    return report


def _split_line(split, counts, published):
    count = counts.get(split)
    if count is not None:
        expected = published.get(split)
        note = f"  (CoOp's split has {expected:,})" if expected and expected != count else ""
        return f"  {split + ':':6s} {count:,} images{note}"
    if counts.get("train") is None:
        return f"  {split + ':':6s} none (test-only dataset; test doubles as train_x for class names)"
    return f"  {split + ':':6s} none (val = test, as in CoOp)"


def format_report(report):
    lines = [f"{report.name}  ({report.dataset_dir})"]
    for what, path, fix in report.missing_layout:
        lines += [f"  MISSING {what}: {path}", f"    fix: {fix}"]
    if report.error:
        lines += ["  ERROR: " + report.error.replace("\n", "\n  ")]
        return "\n".join(lines)
    shown = ", ".join(report.classnames[:SHOWN]) + (", ..." if len(report.classnames) > SHOWN else "")
    lines.append(f"  classes: {len(report.classnames):,} ({shown})")
    info = CATALOG.get(report.name)
    published = dict(zip(SPLITS, info.split_sizes)) if info else {}
    for split in SPLITS:
        lines.append(_split_line(split, report.split_counts, published))
    for split, paths in report.missing_files.items():
        if paths:
            lines.append(f"  MISSING {len(paths):,} {split} files, e.g.")
            lines += [f"    {p}" for p in paths[:SHOWN]]
    if report.bad_images is not None:
        lines.append(f"  unreadable images: {len(report.bad_images):,}")
        lines += [f"    {p}  ({reason})" for p, reason in report.bad_images]
    lines.append("  OK" if report.ok else "  PROBLEMS FOUND")
    return "\n".join(lines)

"""Where the sweep scripts (scripts/common.sh) put each run, and reading them all.

    base2new  OUTPUT/base2new/train_base/<dataset>/shots_<S>/<TRAINER>/<CFG>/seed<N>  (Base)
              OUTPUT/base2new/test_new/<dataset>/shots_<S>/<TRAINER>/<CFG>/seed<N>    (New)
    xd, dg    OUTPUT/<source>/<TRAINER>/<CFG>_<S>shots/seed<N>                        (source)
              OUTPUT/evaluation/<TRAINER>/<CFG>_<S>shots/<dataset>/seed<N>            (targets)
    fewshot   OUTPUT/<dataset>/<TRAINER>/<CFG>_<S>shots/seed<N>

CFG may be a glob pattern, since one method's sweep can use another config per dataset
(CoOp: vit_b16_ep50_ctxv1 on ImageNet, vit_b16_ctxv1 elsewhere); it must then match
exactly one folder per dataset.
"""
import glob
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional

from tqdm import tqdm

from tools.results.catalog import BASE2NEW_DATASETS, CROSS_DATASET_TARGETS, DG_TARGETS
from tools.results.logs import RunResult, read_run

SEED_DIR = re.compile(r"^seed_?(\d+)$")


@dataclass(frozen=True)
class Protocol:
    name: str
    metrics: tuple  # what each dataset's runs measure
    datasets: tuple  # the table's columns, in order
    averaged: tuple  # the datasets its average is taken over


def make_protocol(name, datasets=None, source="imagenet"):
    if name == "base2new":
        names = tuple(datasets or BASE2NEW_DATASETS)
        return Protocol(name, ("base", "new"), names, names)
    if name in ("xd", "dg"):
        targets = tuple(datasets or (CROSS_DATASET_TARGETS if name == "xd" else DG_TARGETS))
        return Protocol(name, ("accuracy",), (source, *targets), targets)
    if name == "fewshot":
        names = tuple(datasets or BASE2NEW_DATASETS)
        return Protocol(name, ("accuracy",), names, names)
    raise ValueError(f"unknown protocol {name!r}")


@dataclass(frozen=True)
class Method:
    label: str
    trainer: str
    cfg: str = "*"  # glob pattern over config names

    @classmethod
    def parse(cls, text):
        """``TRAINER``, ``TRAINER/CFG`` or ``LABEL=TRAINER/CFG``."""
        label, has_label, spec = text.partition("=")
        if not has_label:
            label, spec = "", text
        trainer, _, cfg = spec.partition("/")
        if not trainer:
            raise ValueError(f"no trainer in method {text!r} (expected [LABEL=]TRAINER[/CFG])")
        return cls(label or trainer, trainer, cfg or "*")


def with_distinct_labels(methods):
    """``methods`` with every table label unique: a trainer given twice without labels
    (``RPP/demo_clip`` and ``RPP/demo_clip_no_kd``) is shown as TRAINER/CFG, since rows are
    keyed by label. Raises ValueError when labels still collide."""
    counts = Counter(method.label for method in methods)
    distinct = [
        replace(method, label=f"{method.trainer}/{method.cfg}")
        if counts[method.label] > 1 and method.label == method.trainer else method
        for method in methods
    ]
    repeated = [label for label, count in Counter(m.label for m in distinct).items() if count > 1]
    if repeated:
        raise ValueError(f"two --method entries share the label {repeated[0]!r}; "
                         "name them apart with LABEL=TRAINER/CFG")
    return distinct


def experiment_pattern(protocol, output, method, dataset, metric, shots):
    """The glob matching the folder that holds one dataset's seed runs."""
    root = glob.escape(output)
    trainer = glob.escape(method.trainer)
    if protocol.name == "base2new":
        split = "train_base" if metric == "base" else "test_new"
        return os.path.join(root, "base2new", split, glob.escape(dataset), f"shots_{shots}",
                            trainer, method.cfg)
    cfg_shots = f"{method.cfg}_{shots}shots"
    if protocol.name in ("xd", "dg") and dataset != protocol.datasets[0]:
        return os.path.join(root, "evaluation", trainer, cfg_shots, glob.escape(dataset))
    return os.path.join(root, glob.escape(dataset), trainer, cfg_shots)


def seed_dirs(folder):
    """{seed number: run folder} for the ``seed<N>`` sub-folders of ``folder``."""
    found = {}
    for name in os.listdir(folder):
        match = SEED_DIR.match(name)
        if match and os.path.isdir(os.path.join(folder, name)):
            found[int(match.group(1))] = os.path.join(folder, name)
    return found


@dataclass
class Experiment:
    """One dataset's seed runs of one method (for one metric)."""

    method: str
    dataset: str
    metric: str
    folder: Optional[str]  # None when no folder (or several) matched
    problem: Optional[str] = None
    seed_dirs: Dict[int, str] = field(default_factory=dict)
    runs: List[RunResult] = field(default_factory=list)


def find_experiment(protocol, output, method, dataset, metric, shots):
    pattern = experiment_pattern(protocol, output, method, dataset, metric, shots)
    matches = sorted(p for p in glob.glob(pattern) if os.path.isdir(p))
    if not matches:
        return Experiment(method.label, dataset, metric, None, problem=f"missing: no folder {pattern}")
    if len(matches) > 1:
        return Experiment(method.label, dataset, metric, None,
                          problem=f"ambiguous: {pattern} matches {', '.join(matches)} (give CFG)")
    return Experiment(method.label, dataset, metric, matches[0], seed_dirs=seed_dirs(matches[0]))


def find_experiments(protocol, output, methods, shots):
    return [
        find_experiment(protocol, output, method, dataset, metric, shots)
        for method in methods for dataset in protocol.datasets for metric in protocol.metrics
    ]


def seeds_found(experiments):
    return sorted({seed for e in experiments for seed in e.seed_dirs})


def read_experiments(experiments, expected_seeds):
    """Read each expected seed's run (a seed without a folder is a missing run)."""
    jobs = []
    for experiment in experiments:
        if experiment.folder is None:
            continue
        for seed in expected_seeds:
            run_dir = experiment.seed_dirs.get(seed, os.path.join(experiment.folder, f"seed{seed}"))
            jobs.append((experiment, run_dir))
    for experiment, run_dir in tqdm(jobs, desc="Reading runs", unit="run", disable=None):
        experiment.runs.append(read_run(run_dir))
    return experiments


def unfinished_runs(experiments):
    """(which run, why) for every expected run without a final result, in table order."""
    found = []
    for e in experiments:
        where = f"{e.method} {e.dataset} {e.metric}"
        if e.folder is None:
            found.append((f"{where} (all seeds)", e.problem))
        elif not e.runs:
            found.append((f"{where} (all seeds)", f"no seed<N> folders in {e.folder}"))
        found += [(f"{where} {os.path.basename(run.run_dir)}", f"{run.problem}: {run.run_dir}")
                  for run in e.runs if run.accuracy is None]
    return found

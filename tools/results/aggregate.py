"""Seed statistics, dataset averages and the harmonic mean, as table cells.

Spread is the sample standard deviation (ddof=1) over seeds. CoOp's parse_test_res.py
prints the population one (np.std, ddof=0), which is smaller by sqrt((n-1)/n): 0.82x
for 3 seeds. One seed has no spread (std is None).

Nothing is averaged over fewer inputs than a cell needs: a dataset average with a
missing dataset, or an HM with a missing side, is itself missing. Cells computed from
fewer seeds than expected stay usable but carry ``incomplete``, and so does everything
derived from them.
"""
import statistics
from dataclasses import dataclass
from typing import Optional


@dataclass
class Cell:
    mean: Optional[float] = None  # None: missing
    std: Optional[float] = None
    seeds: int = 0  # seeds the value is computed from (0 for derived and published values)
    expected_seeds: int = 0
    incomplete: bool = False
    published: bool = False

    @property
    def missing(self):
        return self.mean is None


def seed_cell(accuracies, expected_seeds):
    """Mean and sample std over the seeds that finished."""
    if not accuracies:
        return Cell(expected_seeds=expected_seeds, incomplete=True)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else None
    return Cell(
        mean=statistics.fmean(accuracies), std=std, seeds=len(accuracies),
        expected_seeds=expected_seeds, incomplete=len(accuracies) < expected_seeds,
    )


def average_cell(cells):
    """The plain mean over datasets; missing if any dataset is."""
    if not cells or any(c.missing for c in cells):
        return Cell(incomplete=True)
    return Cell(
        mean=statistics.fmean(c.mean for c in cells),
        incomplete=any(c.incomplete for c in cells),
    )


def harmonic_mean(base, new):
    if base + new == 0:
        return 0.0
    return 2 * base * new / (base + new)


def hm_cell(base, new):
    """HM of (seed- or dataset-averaged) Base and New, as the base-to-new papers compute it."""
    if base.missing or new.missing:
        return Cell(incomplete=True)
    return Cell(mean=harmonic_mean(base.mean, new.mean), incomplete=base.incomplete or new.incomplete)


def published_cell(value):
    return Cell(mean=None if value is None else float(value), published=True)

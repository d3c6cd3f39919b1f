"""DATALOADER.NUM_WORKERS above the machine's cores is lowered, with one line, not torch's warning."""
import os
import warnings

import pytest
from PIL import Image


def cores_this_process_may_use():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.fixture
def fresh_reports(monkeypatch):
    from engine.bundled.data import loader_options

    monkeypatch.setattr(loader_options, "_LOWERED", set(), raising=False)
    return loader_options


def test_more_workers_than_cores_are_lowered_once_with_one_line(fresh_reports, capsys):
    worker_count = fresh_reports.worker_count
    assert worker_count(8, available=2) == 2
    assert capsys.readouterr().out == (
        "DATALOADER.NUM_WORKERS 8 lowered to 2: this process may use 2 CPU cores\n")
    assert worker_count(8, available=2) == 2  # every loader of a run asks again: said once
    assert worker_count(2, available=2) == 2 and worker_count(0, available=2) == 0
    assert worker_count(3, available=1) == 1
    assert capsys.readouterr().out == (
        "DATALOADER.NUM_WORKERS 3 lowered to 1: this process may use 1 CPU core\n")


def test_a_loader_asking_for_too_many_workers_gets_the_cores_and_no_torch_warning(
        fresh_reports, tmp_path, capsys):
    import torchvision.transforms as T

    from engine.bundled.config import get_cfg_default
    from engine.bundled.data import Datum
    from engine.bundled.data.data_manager import build_data_loader
    from engine.config_extension import extend_cfg

    cores = cores_this_process_may_use()
    cfg = extend_cfg(get_cfg_default())
    cfg.INPUT.SIZE = (8, 8)
    cfg.DATALOADER.NUM_WORKERS = cores + 3
    items = []
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(tmp_path / f"{i}.png")
        items.append(Datum(impath=str(tmp_path / f"{i}.png"), label=i))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = build_data_loader(cfg, data_source=items, batch_size=2, tfm=T.ToTensor(), is_train=False)
        labels = [label for batch in loader for label in batch["label"].tolist()]
    assert loader.num_workers == cores
    assert labels == [0, 1, 2, 3]
    assert not [w for w in caught if "worker" in str(w.message)], [str(w.message) for w in caught]
    assert capsys.readouterr().out.count(f"DATALOADER.NUM_WORKERS {cores + 3} lowered to {cores}") == 1

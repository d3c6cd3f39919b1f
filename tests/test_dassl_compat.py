"""engine.dassl_compat against the REAL Dassl.pytorch (0.6.3, c61a1b5).

Marked ``real_dassl``: the default run skips this file and ``tests/test_real_dassl.py``
runs it in a process on the real engine (skipped, saying why, where there is no Dassl).
"""
import math

import pytest
import torch

import engine  # applies the compat patches when BACKEND is "dassl"
from tests.fixtures.real_dassl import ONLY_ON_REAL_DASSL

pytestmark = pytest.mark.real_dassl
if engine.BACKEND != "dassl":
    pytest.skip(ONLY_ON_REAL_DASSL, allow_module_level=True)

from dassl.config import get_cfg_default  # noqa: E402
from dassl.engine import TrainerBase  # noqa: E402
from dassl.optim import build_lr_scheduler  # noqa: E402
from dassl.optim.lr_scheduler import _BaseWarmupScheduler  # noqa: E402
from dassl.utils import load_checkpoint, resume_from_checkpoint, save_checkpoint  # noqa: E402
from engine.dassl_compat import apply_dassl_compat  # noqa: E402

BASE_LR = 0.002
MAX_EPOCH = 6


def optim_cfg(warmup_epoch=1, warmup_type="constant", scheduler="cosine"):
    cfg = get_cfg_default().OPTIM
    cfg.NAME, cfg.LR, cfg.MAX_EPOCH, cfg.LR_SCHEDULER = "sgd", BASE_LR, MAX_EPOCH, scheduler
    cfg.WARMUP_EPOCH, cfg.WARMUP_TYPE = warmup_epoch, warmup_type
    cfg.WARMUP_CONS_LR = cfg.WARMUP_MIN_LR = 1e-5
    return cfg


def make_run(cfg, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    optim = torch.optim.SGD(model.parameters(), lr=BASE_LR, momentum=0.9, weight_decay=5e-4)
    return model, optim, build_lr_scheduler(optim, cfg)


def run_epochs(model, optim, sched, start, stop):
    """One SGD step then one scheduler step per epoch; returns the LR each epoch used."""
    lrs = []
    for epoch in range(start, stop):
        lrs.append(optim.param_groups[0]["lr"])
        data = torch.Generator().manual_seed(epoch)  # same batch for an epoch in every run
        x, y = torch.randn(8, 4, generator=data), torch.randint(0, 3, (8,), generator=data)
        optim.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optim.step()
        sched.step()
    return lrs


def cosine(e, warmup):
    return BASE_LR * (1 + math.cos(math.pi * (e - warmup) / MAX_EPOCH)) / 2


@pytest.mark.parametrize(
    "warmup_epoch, warmup_type, head",
    [
        (1, "constant", [1e-5]),  # the CoOp recipe
        (2, "constant", [1e-5, 1e-5]),
        (3, "linear", [1e-5, BASE_LR / 3, 2 * BASE_LR / 3]),
    ],
)
def test_warmup_then_cosine_follows_the_documented_sequence(warmup_epoch, warmup_type, head):
    model, optim, sched = make_run(optim_cfg(warmup_epoch, warmup_type))
    assert isinstance(sched, _BaseWarmupScheduler)
    lrs = run_epochs(model, optim, sched, 0, warmup_epoch + MAX_EPOCH + 1)
    expected = head + [cosine(e, warmup_epoch) for e in range(warmup_epoch, len(lrs))]
    assert lrs == pytest.approx(expected, abs=1e-9)
    assert lrs[1 : warmup_epoch + 3] != pytest.approx(lrs[0 : warmup_epoch + 2])  # it moves


def test_warmup_state_dict_is_plain_data():
    _, _, sched = make_run(optim_cfg())
    state = sched.state_dict()
    assert isinstance(state["successor"], dict)
    assert state["successor"]["T_max"] == MAX_EPOCH
    assert not any(isinstance(v, (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler))
                   for v in list(state.values()) + list(state["successor"].values()))


@pytest.mark.parametrize("warmup_type", ["constant", "linear"])
def test_resume_with_weights_only_load_matches_an_uninterrupted_run(tmp_path, warmup_type):
    cfg = optim_cfg(warmup_epoch=2, warmup_type=warmup_type)
    model, optim, sched = make_run(cfg)
    uninterrupted = run_epochs(model, optim, sched, 0, MAX_EPOCH + 2)

    model_a, optim, sched = make_run(cfg)
    first = run_epochs(model_a, optim, sched, 0, 3)
    state = {"state_dict": model_a.state_dict(), "epoch": 3, "optimizer": optim.state_dict(),
             "scheduler": sched.state_dict(), "val_result": None}
    save_checkpoint(state, str(tmp_path))
    fpath = tmp_path / "model.pth.tar-3"
    torch.load(fpath, weights_only=True)  # what Dassl's load_checkpoint does on torch >= 2.6
    assert load_checkpoint(str(fpath))["epoch"] == 3

    model_b, optim, sched = make_run(cfg, seed=123)  # fresh objects, different init
    assert resume_from_checkpoint(str(tmp_path), model_b, optim, sched) == 3
    rest = run_epochs(model_b, optim, sched, 3, MAX_EPOCH + 2)
    assert first + rest == pytest.approx(uninterrupted, abs=1e-12)
    assert sched.successor.optimizer is optim  # bound to the live optimizer, LR not frozen
    torch.testing.assert_close(model_b.state_dict(), model.state_dict())


def test_trainer_base_save_model_and_resume_model_if_exist(tmp_path):
    cfg = optim_cfg()
    model, optim, sched = make_run(cfg)
    run_epochs(model, optim, sched, 0, 2)
    saver = TrainerBase()
    saver.register_model("prompt_learner", model, optim, sched)
    saver.save_model(1, str(tmp_path))  # epoch index 1 -> model.pth.tar-2

    model2, optim2, sched2 = make_run(cfg, seed=7)
    loader = TrainerBase()
    loader.register_model("prompt_learner", model2, optim2, sched2)
    assert loader.resume_model_if_exist(str(tmp_path)) == 2
    assert torch.equal(model2.weight, model.weight)
    assert optim2.param_groups[0]["lr"] == optim.param_groups[0]["lr"]
    assert sched2.state_dict() == sched.state_dict()


def test_legacy_state_with_a_successor_object_restores_into_the_live_successor():
    cfg = optim_cfg()
    model, optim, old = make_run(cfg)
    run_epochs(model, optim, old, 0, 3)
    legacy = dict(old.state_dict(), successor=old.successor)  # what unpatched Dassl stored
    _, optim, sched = make_run(cfg)
    sched.load_state_dict(legacy)
    assert sched.successor.optimizer is optim
    assert sched.successor.last_epoch == old.successor.last_epoch


def test_apply_dassl_compat_is_idempotent():
    patched = dict(vars(_BaseWarmupScheduler))
    apply_dassl_compat()
    apply_dassl_compat()
    assert dict(vars(_BaseWarmupScheduler)) == patched
    _, _, sched = make_run(optim_cfg())
    assert isinstance(sched.state_dict()["successor"], dict)


def test_engine_exports_the_real_dassl_api():
    import dassl.engine
    import dassl.optim

    assert engine.TrainerX is dassl.engine.TrainerX
    assert engine.build_lr_scheduler is dassl.optim.build_lr_scheduler


# --------------------------------------------------------------------------- corrupt images


def image_items(tmp_path, count, broken):
    """Dassl Datums for ``count`` small PNGs; those at the ``broken`` indices are not images."""
    from dassl.data.datasets import Datum
    from PIL import Image

    items = []
    for i in range(count):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(path)
        if i in broken:
            path.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
        items.append(Datum(impath=str(path), label=i))
    return items


def dassl_loader(items, policy, workers=0, **dataloader_keys):
    """A test loader built by Dassl's own build_data_loader (patched) and DatasetWrapper."""
    import torchvision.transforms as T
    from dassl.data import data_manager

    from engine.config_extension import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.DATALOADER.CORRUPT_IMAGE = policy
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.INPUT.SIZE = (8, 8)
    for key, value in dataloader_keys.items():
        cfg.DATALOADER[key] = value
    return data_manager.build_data_loader(cfg, data_source=items, batch_size=2,
                                          tfm=T.ToTensor(), is_train=False)


def test_dassl_reads_images_through_our_reader():
    import dassl.data.data_manager as data_manager
    import dassl.utils

    from engine.dassl_compat import (
        _ORIGINALS, _build_data_loader, _dataset_wrapper_getitem, _read_image,
    )

    apply_dassl_compat()  # again: must not wrap the patched functions in themselves
    assert _ORIGINALS["getitem"] is not _dataset_wrapper_getitem
    assert _ORIGINALS["build_data_loader"] is not _build_data_loader
    assert data_manager.read_image is _read_image
    assert data_manager.build_data_loader is _build_data_loader
    assert data_manager.DatasetWrapper.__getitem__ is _dataset_wrapper_getitem
    assert dassl.utils.read_image is not _read_image, "Dassl's public helper is left alone"


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_fails_naming_the_file(tmp_path, workers):
    from engine.bundled.data.data_manager import CorruptImageError
    from engine.launch import one_line
    from engine.user_errors import is_user_error

    items = image_items(tmp_path, 4, broken={2})
    loader = dassl_loader(items, "fail", workers)
    assert type(loader) is torch.utils.data.DataLoader  # a plain loader, as Dassl's
    with pytest.raises(CorruptImageError) as info:
        list(loader)
    assert is_user_error(info.value)
    line = one_line(info.value)  # what train.py prints after "error: "
    assert line.startswith(f'Cannot read image "{tmp_path / "2.png"}"')
    assert "DATALOADER.CORRUPT_IMAGE skip" in line


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_drops_and_counts_unreadable_images(tmp_path, capsys, workers):
    items = image_items(tmp_path, 6, broken={1, 4, 5})
    loader = dassl_loader(items, "skip", workers)
    batches = list(loader)
    # batch (4, 5) is all unreadable and left out; the others lose their bad image
    assert [b["label"].tolist() for b in batches] == [[0], [2, 3]]
    assert [b["img"].shape[0] for b in batches] == [1, 2]
    assert sorted(p.rsplit("/", 1)[-1] for p in loader.skipped_images) == ["1.png", "4.png", "5.png"]
    printed = capsys.readouterr().out
    assert f'Warning: skipped unreadable image "{tmp_path / "4.png"}"' in printed
    assert "Skipped 3 unreadable image(s) in this pass over 6 images" in printed


def test_readable_images_load_as_before(tmp_path):
    items = image_items(tmp_path, 3, broken=set())
    for policy in ("fail", "skip"):
        batches = list(dassl_loader(items, policy))
        assert [b["label"].tolist() for b in batches] == [[0, 1], [2]]
        assert batches[0]["img"].shape == (2, 3, 8, 8)
        assert batches[0]["impath"] == [str(tmp_path / "0.png"), str(tmp_path / "1.png")]


def test_unknown_corrupt_image_policy_is_a_user_error(tmp_path):
    from engine.user_errors import is_user_error

    with pytest.raises(Exception, match="CORRUPT_IMAGE") as info:
        dassl_loader(image_items(tmp_path, 2, broken=set()), "ignore")
    assert is_user_error(info.value)


# --------------------------------------------------------------------------- loader keys

# DATALOADER.PIN_MEMORY, PERSISTENT_WORKERS and PREFETCH_FACTOR are ours; Dassl's
# build_data_loader reads only NUM_WORKERS and pins whenever CUDA is used.
NON_DEFAULT_LOADER_KEYS = ["DATALOADER.NUM_WORKERS", "2", "DATALOADER.PIN_MEMORY", "False",
                           "DATALOADER.PERSISTENT_WORKERS", "True",
                           "DATALOADER.PREFETCH_FACTOR", "3"]


def demo_data_manager(data_root, *opts):
    from tests.fixtures.cfg import dataset_cfg

    cfg = dataset_cfg("demo", data_root, num_shots=2, opts=["INPUT.SIZE", "(32, 32)", *opts])
    return engine.DataManager(cfg), cfg


def worker_options(loader):
    return (loader.num_workers, loader.pin_memory, loader.persistent_workers,
            loader.prefetch_factor)


def test_loader_keys_reach_every_loader_of_dassls_data_manager(demo_data_root, monkeypatch):
    import dassl.data.data_manager

    # Pinning is decided for a CUDA run; no batch is loaded, so no GPU is needed.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    dm, _ = demo_data_manager(demo_data_root, *NON_DEFAULT_LOADER_KEYS)
    assert type(dm) is dassl.data.data_manager.DataManager
    loaders = [dm.train_loader_x, dm.val_loader, dm.test_loader]
    assert [worker_options(loader) for loader in loaders] == [(2, False, True, 3)] * 3

    # Our keys at their defaults: pinned on CUDA, as Dassl's own loaders are.
    dm, _ = demo_data_manager(demo_data_root, "DATALOADER.NUM_WORKERS", "0")
    loaders = [dm.train_loader_x, dm.val_loader, dm.test_loader]
    assert [worker_options(loader) for loader in loaders] == [(0, True, False, None)] * 3


def test_rebuilt_loaders_keep_what_dassl_chose_and_load_the_same_batches(demo_data_root):
    from engine.dassl_compat import _ORIGINALS

    dm, cfg = demo_data_manager(demo_data_root, *NON_DEFAULT_LOADER_KEYS)
    for loader, is_train in ((dm.train_loader_x, True), (dm.val_loader, False)):
        plain = _ORIGINALS["build_data_loader"](
            cfg, sampler_type=type(loader.sampler).__name__, data_source=loader.dataset.data_source,
            batch_size=loader.batch_size, tfm=loader.dataset.transform, is_train=is_train)
        assert (loader.batch_size, loader.drop_last, len(loader)) == \
            (plain.batch_size, plain.drop_last, len(plain))
        assert type(loader.sampler) is type(plain.sampler)
        assert plain.num_workers == 2 and not plain.persistent_workers  # Dassl's own

    def labels(loader):
        return [batch["label"].tolist() for batch in loader]

    val = dm.val_loader  # sequential: the same batches every pass, with or without workers
    reference = labels(torch.utils.data.DataLoader(val.dataset, batch_size=val.batch_size))
    assert len(reference) > 1
    assert labels(val) == reference
    assert labels(val) == reference  # a second epoch on the same persistent workers


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_loader_keys_reach_loaders_of_either_corrupt_image_policy(tmp_path, policy):
    from engine.bundled.data.data_manager import SkipCountingDataLoader

    items = image_items(tmp_path, 4, broken=set())
    cfg_keys = {"PERSISTENT_WORKERS": True, "PREFETCH_FACTOR": 4, "PIN_MEMORY": False}
    loader = dassl_loader(items, policy, workers=2, **cfg_keys)
    assert isinstance(loader, SkipCountingDataLoader) is (policy == "skip")
    assert worker_options(loader) == (2, False, True, 4)

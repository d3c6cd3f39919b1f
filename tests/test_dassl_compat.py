"""engine.dassl_compat against the REAL Dassl.pytorch (0.6.3, c61a1b5).

Skipped unless ``import dassl`` works. To run them, install Dassl into a separate
virtual env (``python -m venv --system-site-packages VENV``,
``VENV/bin/pip install --no-build-isolation -e Dassl.pytorch`` plus gdown, wilds) and run
``RPP_ENGINE=dassl VENV/bin/python -m pytest tests/test_dassl_compat.py``.
"""
import importlib.util
import math

import pytest
import torch

if importlib.util.find_spec("dassl") is None:
    pytest.skip(
        "Dassl is not installed (import dassl fails). To run these tests: "
        "RPP_ENGINE=dassl /work/ext/dassl-venv/bin/python -m pytest tests/test_dassl_compat.py "
        "(any env with Dassl.pytorch installed works)",
        allow_module_level=True,
    )

import engine  # noqa: E402  (applies the compat patches when BACKEND is "dassl")
from dassl.config import get_cfg_default  # noqa: E402
from dassl.engine import TrainerBase  # noqa: E402
from dassl.optim import build_lr_scheduler  # noqa: E402
from dassl.optim.lr_scheduler import _BaseWarmupScheduler  # noqa: E402
from dassl.utils import load_checkpoint, resume_from_checkpoint, save_checkpoint  # noqa: E402
from engine.dassl_compat import apply_dassl_compat  # noqa: E402

apply_dassl_compat()  # also when RPP_ENGINE=bundled left engine/__init__ off the dassl path

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


@pytest.mark.skipif(engine.BACKEND != "dassl", reason="RPP_ENGINE=bundled selected")
def test_engine_exports_the_real_dassl_api():
    import dassl.engine
    import dassl.optim

    assert engine.TrainerX is dassl.engine.TrainerX
    assert engine.build_lr_scheduler is dassl.optim.build_lr_scheduler

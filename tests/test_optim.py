"""Optimizers and LR schedules: Dassl's per-epoch LR tables, warmup save/resume, Dassl's
RAdam (against a reference written here, and against the real Dassl when available)."""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from engine.bundled.config import get_cfg_default
from engine.bundled.optim import (
    AVAILABLE_OPTIMIZERS, ConstantWarmupScheduler, RAdam, build_lr_scheduler,
    build_optimizer,
)
from engine.config_errors import ConfigError
from engine.user_errors import is_user_error
from tests.fixtures.real_dassl import dassl_checkout, why_no_real_dassl


def optim_cfg(**overrides):
    cfg = get_cfg_default().OPTIM
    cfg.NAME = "sgd"
    cfg.LR = 0.002
    cfg.MAX_EPOCH = 6
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = build_optimizer(model, cfg)
    return model, optimizer, build_lr_scheduler(optimizer, cfg)


def train_one_epoch(model, optimizer):
    # A real update so the optimizer has state (momentum) worth saving.
    loss = model(torch.ones(4, 3)).pow(2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def lr_sequence(cfg, epochs=8):
    model, optimizer, scheduler = build(cfg)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        train_one_epoch(model, optimizer)
        scheduler.step()
    return lrs


COS = [0.002, 0.001866, 0.0015, 0.001, 0.0005, 0.000134, 0.0, 0.000134]

# Spec section 4: the LR used in epochs 0..7 (base 0.002, MAX_EPOCH 6, one step per epoch).
LR_TABLE = {
    "cosine": (dict(LR_SCHEDULER="cosine"), COS),
    "cosine+constant warmup 1 (CoOp)": (
        dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant"), [1e-5] + COS[:7]),
    "cosine+constant warmup 2": (
        dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="constant"), [1e-5] * 2 + COS[:6]),
    "cosine+linear warmup 3": (
        dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=3, WARMUP_TYPE="linear"),
        [1e-5, 0.000667, 0.001333] + COS[:5]),
    "cosine+constant warmup 2, no recount": (
        dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="constant", WARMUP_RECOUNT=False),
        [1e-5, 1e-5, 0.002, 0.001333, 0.000667, 0.000179, 0.0]),
    "single_step default": (dict(LR_SCHEDULER="single_step"), [0.002] * 6 + [0.0002]),
    "single_step (2,)": (
        dict(LR_SCHEDULER="single_step", STEPSIZE=(2,)), [0.002, 0.002, 0.0002, 0.0002, 2e-5, 2e-5]),
    "multi_step (2,4)": (
        dict(LR_SCHEDULER="multi_step", STEPSIZE=(2, 4)), [0.002, 0.002, 0.0002, 0.0002, 2e-5]),
}


@pytest.mark.parametrize("name", list(LR_TABLE))
def test_lr_per_epoch_matches_dassl(name):
    overrides, expected = LR_TABLE[name]
    got = lr_sequence(optim_cfg(**overrides))[: len(expected)]
    assert got == pytest.approx(expected, abs=1e-6)


def test_coop_cosine_closed_form():
    cfg = optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant", MAX_EPOCH=50)
    lrs = lr_sequence(cfg, epochs=50)
    assert lrs[0] == 1e-5
    for epoch in range(1, 50):
        assert lrs[epoch] == pytest.approx(0.002 * (1 + math.cos(math.pi * (epoch - 1) / 50)) / 2, abs=1e-9)


def _assert_plain_data(obj):
    """Only what torch.load(weights_only=True) accepts without extra globals."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            _assert_plain_data(key)
            _assert_plain_data(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _assert_plain_data(value)
    else:
        assert obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)), type(obj)


WARMUP_CONFIGS = {
    "constant": dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="constant"),
    "linear": dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=3, WARMUP_TYPE="linear"),
    "no recount": dict(LR_SCHEDULER="cosine", WARMUP_EPOCH=2, WARMUP_TYPE="constant",
                       WARMUP_RECOUNT=False),
}


@pytest.mark.parametrize("config_name", list(WARMUP_CONFIGS))
@pytest.mark.parametrize("stop_after", [1, 4], ids=["mid-warmup", "mid-cosine"])
def test_warmup_resume_continues_like_an_uninterrupted_run(tmp_path, config_name, stop_after):
    cfg = optim_cfg(**WARMUP_CONFIGS[config_name])
    epochs = 8
    reference = lr_sequence(cfg, epochs)

    model, optimizer, scheduler = build(cfg)
    lrs = []
    for _ in range(stop_after):
        lrs.append(optimizer.param_groups[0]["lr"])
        train_one_epoch(model, optimizer)
        scheduler.step()
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict()}
    _assert_plain_data(state["scheduler"])
    assert isinstance(state["scheduler"]["successor"], dict)
    torch.save(state, tmp_path / "ckpt.pt")
    del model, optimizer, scheduler

    # A fresh process would rebuild everything from the config, then load the states.
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    model, optimizer, scheduler = build(cfg, seed=123)
    model.load_state_dict(loaded["model"])
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    for _ in range(stop_after, epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        train_one_epoch(model, optimizer)
        scheduler.step()
    assert lrs == pytest.approx(reference, abs=1e-12)
    assert len(set(round(lr, 9) for lr in lrs[stop_after:])) > 1  # Dassl's resumed LR froze


def test_warmup_scheduler_state_restores_successor_in_place():
    cfg = optim_cfg(LR_SCHEDULER="cosine", WARMUP_EPOCH=1, WARMUP_TYPE="constant")
    _, optimizer, scheduler = build(cfg)
    assert isinstance(scheduler, ConstantWarmupScheduler)
    successor = scheduler.successor
    state = scheduler.state_dict()
    state["successor"]["last_epoch"] = 3
    scheduler.load_state_dict(state)
    assert scheduler.successor is successor and successor.optimizer is optimizer
    assert successor.last_epoch == 3


def test_scheduler_config_errors():
    optimizer = build(optim_cfg())[1]
    with pytest.raises(ValueError, match="cosine"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="poly"))
    with pytest.raises(ValueError, match="WARMUP_TYPE"):
        build_lr_scheduler(optimizer, optim_cfg(WARMUP_EPOCH=1, WARMUP_TYPE="exp"))
    with pytest.raises(ConfigError, match="STEPSIZE"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="single_step", STEPSIZE=(2.5,)))
    with pytest.raises(ConfigError, match="STEPSIZE"):
        build_lr_scheduler(optimizer, optim_cfg(LR_SCHEDULER="multi_step", STEPSIZE=3))


@pytest.mark.parametrize("name, cls", [
    ("adam", torch.optim.Adam), ("amsgrad", torch.optim.Adam), ("sgd", torch.optim.SGD),
    ("rmsprop", torch.optim.RMSprop), ("radam", RAdam), ("adamw", torch.optim.AdamW),
])
def test_each_optimizer_with_config_hyperparameters(name, cls):
    cfg = optim_cfg(NAME=name, LR=0.01, WEIGHT_DECAY=0.001, ADAM_BETA1=0.8)
    optimizer = build_optimizer(nn.Linear(3, 2), cfg)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.01 and group["weight_decay"] == 0.001
    if name in ("adam", "amsgrad", "radam", "adamw"):
        assert group["betas"] == (0.8, 0.999)
    if name in ("adam", "amsgrad"):
        assert group["amsgrad"] is (name == "amsgrad")
    if name == "sgd":
        assert group["momentum"] == 0.9 and group["dampening"] == 0 and group["nesterov"] is False
    if name == "rmsprop":
        assert group["alpha"] == 0.99 and group["momentum"] == 0.9
    if name == "radam":
        assert optimizer.degenerated_to_sgd is True and group["eps"] == 1e-8


def test_unknown_optimizer_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        build_optimizer(nn.Linear(3, 2), optim_cfg(NAME="adagrad"))
    assert "adagrad" in str(info.value)
    assert all(name in str(info.value) for name in AVAILABLE_OPTIMIZERS)
    assert is_user_error(info.value)  # train.py: one "error: ..." line, exit status 2


def test_frozen_parameters_are_passed_too():
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    model[0].requires_grad_(False)
    optimizer = build_optimizer(model, optim_cfg())
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 4


def test_accepts_params_and_param_groups():
    a, b = nn.Linear(3, 2), nn.Linear(2, 2)
    optimizer = build_optimizer(a.parameters(), optim_cfg())
    assert len(optimizer.param_groups[0]["params"]) == 2
    groups = [{"params": a.parameters()}, {"params": b.parameters(), "lr": 0.5}]
    optimizer = build_optimizer(None, optim_cfg(), param_groups=groups)
    assert [g["lr"] for g in optimizer.param_groups] == [0.002, 0.5]


class TwoPartNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)


def test_staged_lr_gives_new_layers_the_base_lr():
    cfg = optim_cfg(STAGED_LR=True, NEW_LAYERS=("head",), BASE_LR_MULT=0.1)
    model = TwoPartNet()
    optimizer = build_optimizer(nn.DataParallel(model), cfg)  # DataParallel is unwrapped
    base, new = optimizer.param_groups
    assert base["lr"] == pytest.approx(0.0002) and new["lr"] == 0.002
    assert {id(p) for p in base["params"]} == {id(p) for p in model.backbone.parameters()}
    assert {id(p) for p in new["params"]} == {id(p) for p in model.head.parameters()}


def test_staged_lr_errors_and_warnings():
    with pytest.raises(ValueError, match="classifier"):
        build_optimizer(TwoPartNet(), optim_cfg(STAGED_LR=True, NEW_LAYERS=("classifier",)))
    with pytest.raises(TypeError):
        build_optimizer(TwoPartNet().parameters(), optim_cfg(STAGED_LR=True, NEW_LAYERS=("head",)))
    with pytest.warns(UserWarning, match="STAGED_LR is ignored"):
        build_optimizer(None, optim_cfg(STAGED_LR=True), param_groups=TwoPartNet().parameters())


# --------------------------------------------------------------------------- RAdam

CURVATURE = np.array([1.0, 3.0, 0.5, 2.0])
OFFSET = np.array([0.5, -1.0, 0.2, 0.0])
START = np.array([1.0, -2.0, 0.7, 0.3])


def quadratic_grad(x):
    """Gradient of sum(CURVATURE * x^2 / 2 + OFFSET * x)."""
    return CURVATURE * x + OFFSET


def radam_reference(steps, lr, weight_decay, betas=(0.9, 0.999), eps=1e-8,
                    degenerated_to_sgd=True):
    """Dassl's RAdam on the quadratic, in float64, from the algorithm of Liu et al.:
    rectified Adam once rho_t >= 5, a bias-corrected momentum step before that, weight
    decay decoupled and applied (scaled by lr) only on steps that update."""
    beta1, beta2 = betas
    rho_inf = 2 / (1 - beta2) - 1
    x, m, v = START.copy(), np.zeros(4), np.zeros(4)
    trajectory = []
    for t in range(1, steps + 1):
        g = quadratic_grad(x)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        rho_t = rho_inf - 2 * t * beta2 ** t / (1 - beta2 ** t)
        m_hat = m / (1 - beta1 ** t)
        if rho_t >= 5:
            r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf
                            / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            # eps is added to sqrt(v_t), not to the bias-corrected sqrt(v_hat).
            adaptive = math.sqrt(1 - beta2 ** t) / (np.sqrt(v) + eps)
            x = x * (1 - lr * weight_decay) - lr * r_t * m_hat * adaptive
        elif degenerated_to_sgd:
            x = x * (1 - lr * weight_decay) - lr * m_hat
        trajectory.append(x.copy())
    return trajectory


def run_on_quadratic(make_optimizer, steps, dtype=torch.float32):
    param = nn.Parameter(torch.tensor(START, dtype=dtype))
    optimizer = make_optimizer([param])
    curvature, offset = torch.tensor(CURVATURE), torch.tensor(OFFSET)
    trajectory = []
    for _ in range(steps):
        optimizer.zero_grad()
        param.grad = (curvature * param.detach().double() + offset).to(dtype)
        optimizer.step()
        trajectory.append(param.detach().double().numpy().copy())
    return trajectory, optimizer


def assert_trajectories_close(got, want, rtol=1e-5):
    scale = max(np.abs(w).max() for w in want)
    for step, (g, w) in enumerate(zip(got, want), start=1):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale, err_msg=f"step {step}")


@pytest.mark.parametrize("weight_decay", [0.0, 0.2])
def test_radam_matches_the_reference_through_both_phases(weight_decay):
    # With beta2 = 0.999, steps 1-5 are momentum steps and 6-12 rectified Adam steps.
    want = radam_reference(12, lr=0.05, weight_decay=weight_decay)
    got, _ = run_on_quadratic(lambda p: RAdam(p, lr=0.05, weight_decay=weight_decay), 12)
    assert_trajectories_close(got, want)
    # The reference can tell: torch's RAdam (decay added to the gradient) ends elsewhere.
    if weight_decay:
        torch_radam, _ = run_on_quadratic(
            lambda p: torch.optim.RAdam(p, lr=0.05, weight_decay=weight_decay), 12)
        assert not np.allclose(torch_radam[-1], want[-1], rtol=1e-3)


def test_radam_without_sgd_fallback_waits_for_the_rectification():
    want = radam_reference(9, lr=0.05, weight_decay=0.2, degenerated_to_sgd=False)
    got, _ = run_on_quadratic(
        lambda p: RAdam(p, lr=0.05, weight_decay=0.2, degenerated_to_sgd=False), 9)
    for step in range(5):
        assert np.array_equal(got[step], np.float32(START)), "no update (nor decay) before step 6"
    assert_trajectories_close(got, want)


def test_radam_updates_half_parameters_from_fp32_moments():
    want = radam_reference(8, lr=0.05, weight_decay=0.2)
    got, optimizer = run_on_quadratic(
        lambda p: RAdam(p, lr=0.05, weight_decay=0.2), 8, dtype=torch.float16)
    (state,) = optimizer.state.values()
    assert state["exp_avg"].dtype == state["exp_avg_sq"].dtype == torch.float32
    assert_trajectories_close(got, want, rtol=5e-3)  # fp16 parameters and gradients


def test_radam_resumes_from_its_state_dict(tmp_path):
    reference, _ = run_on_quadratic(lambda p: RAdam(p, lr=0.05, weight_decay=0.2), 10)
    _, optimizer = run_on_quadratic(lambda p: RAdam(p, lr=0.05, weight_decay=0.2), 4)
    torch.save(optimizer.state_dict(), tmp_path / "optim.pt")
    param = nn.Parameter(torch.tensor(reference[3], dtype=torch.float32))
    resumed = RAdam([param], lr=0.05, weight_decay=0.2)
    resumed.load_state_dict(torch.load(tmp_path / "optim.pt", weights_only=True))
    for _ in range(6):
        param.grad = (torch.tensor(CURVATURE) * param.detach().double()
                      + torch.tensor(OFFSET)).float()
        resumed.step()
    np.testing.assert_allclose(param.detach().double().numpy(), reference[-1], rtol=1e-6)


# --------------------------------------------------------------------------- vs real Dassl


@pytest.fixture(scope="module")
def dassl_optim():
    if dassl_checkout() is None:
        pytest.skip(why_no_real_dassl())
    from tests.fixtures.dassl_files import load_dassl_module

    return load_dassl_module("optim.optimizer")


class FrozenStemNet(nn.Module):
    """A frozen first layer (passed to the optimizer, never updated) and two trained ones."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(5, 6).requires_grad_(False)
        self.backbone = nn.Linear(6, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.backbone(torch.tanh(self.stem(x)))))


def train_steps(build, cfg, steps=12, dtype=torch.float32):
    torch.manual_seed(0)
    model = FrozenStemNet().to(dtype)
    data = torch.randn(16, 5, dtype=dtype)
    target = torch.randn(16, 3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Dassl's RAdam uses deprecated overloads
        optimizer = build(model, cfg)
        for _ in range(steps):
            optimizer.zero_grad()
            (model(data) - target).pow(2).mean().backward()
            optimizer.step()
    return [p.detach().double() for p in model.parameters()], optimizer


@pytest.mark.parametrize("name", AVAILABLE_OPTIMIZERS)
@pytest.mark.parametrize("staged", [False, True], ids=["one group", "staged lr"])
def test_build_optimizer_steps_like_dassls(dassl_optim, name, staged):
    cfg = optim_cfg(NAME=name, LR=0.03, WEIGHT_DECAY=0.05, STAGED_LR=staged,
                    NEW_LAYERS=("head",), BASE_LR_MULT=0.1)
    ours, our_optimizer = train_steps(build_optimizer, cfg)
    theirs, their_optimizer = train_steps(dassl_optim.build_optimizer, cfg)
    assert type(our_optimizer).__name__ == type(their_optimizer).__name__
    assert [g["lr"] for g in our_optimizer.param_groups] == [
        g["lr"] for g in their_optimizer.param_groups]
    for ours_p, theirs_p in zip(ours, theirs):
        torch.testing.assert_close(ours_p, theirs_p, rtol=1e-5, atol=1e-6)
    moved = [not torch.equal(p, q) for p, q in zip(ours, train_steps(build_optimizer, cfg, 0)[0])]
    assert moved == [False, False, True, True, True, True]  # the frozen stem stays


@pytest.mark.parametrize("degenerated_to_sgd", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_radam_equals_dassls_step_by_step(dassl_optim, degenerated_to_sgd, dtype):
    def ours(model, _):
        return RAdam(model.parameters(), lr=0.03, weight_decay=0.05, betas=(0.8, 0.99),
                     degenerated_to_sgd=degenerated_to_sgd)

    def theirs(model, _):
        return dassl_optim.RAdam(model.parameters(), lr=0.03, weight_decay=0.05,
                                 betas=(0.8, 0.99), degenerated_to_sgd=degenerated_to_sgd)

    for steps in (1, 3, 6, 12):  # with (0.8, 0.99) the rectified steps start at step 6
        mine, _ = train_steps(ours, None, steps, dtype)
        dassls, _ = train_steps(theirs, None, steps, dtype)
        for p, q in zip(mine, dassls):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"after {steps} steps")

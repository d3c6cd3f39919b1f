"""``build_optimizer``: the optimizer Dassl builds from ``cfg.OPTIM``.

Every name maps to the torch optimizer Dassl uses, with the same arguments, except
``radam``: Dassl has its own RAdam (decoupled weight decay, SGD steps while the
rectification is undefined), reproduced in ``radam.py``.
"""
import warnings

import torch
import torch.nn as nn

from engine.bundled.optim.radam import RAdam
from engine.config_errors import ConfigError

AVAILABLE_OPTIMIZERS = ["adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw"]


def build_optimizer(model, optim_cfg, param_groups=None):
    """Build the optimizer named by ``optim_cfg.NAME``.

    ``model`` is an ``nn.Module`` or an iterable of parameters / param-group dicts.
    Frozen parameters are passed on as well (as Dassl does): torch simply never
    updates a parameter whose ``.grad`` stays None.
    """
    name = optim_cfg.NAME
    if name not in AVAILABLE_OPTIMIZERS:
        raise ConfigError(f"OPTIM.NAME must be one of {AVAILABLE_OPTIMIZERS}, but got {name!r}")
    params = _select_params(model, optim_cfg, param_groups)
    return _construct(name, params, optim_cfg)


def _select_params(model, optim_cfg, param_groups):
    if param_groups is not None:
        if optim_cfg.STAGED_LR:
            warnings.warn("STAGED_LR is ignored because explicit param_groups were given")
        return param_groups
    if optim_cfg.STAGED_LR:
        return _staged_param_groups(model, optim_cfg)
    if isinstance(model, nn.Module):
        return model.parameters()
    return model


def _staged_param_groups(model, optim_cfg):
    """Named new layers train at LR; every other child at LR * BASE_LR_MULT."""
    if not isinstance(model, nn.Module):
        raise TypeError("STAGED_LR needs an nn.Module (its children are split by name)")
    if isinstance(model, nn.DataParallel):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    if isinstance(new_layers, str):
        new_layers = [new_layers]
    if not new_layers:
        warnings.warn("OPTIM.NEW_LAYERS is empty, so STAGED_LR scales every layer's LR")
    children = dict(model.named_children())
    missing = [n for n in new_layers if n not in children]
    if missing:
        raise ConfigError(
            f"OPTIM.NEW_LAYERS names {missing}, which are not direct children of the "
            f"model; the children are {list(children)}"
        )
    base_params, new_params = [], []
    for child_name, child in children.items():
        target = new_params if child_name in new_layers else base_params
        target.extend(child.parameters())
    # Always two groups (base first), even if one is empty, so group indices are stable.
    return [
        {"params": base_params, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT},
        {"params": new_params},
    ]


def _construct(name, params, c):
    betas = (c.ADAM_BETA1, c.ADAM_BETA2)
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(
            params, lr=c.LR, weight_decay=c.WEIGHT_DECAY, betas=betas, amsgrad=name == "amsgrad"
        )
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=c.LR, momentum=c.MOMENTUM, weight_decay=c.WEIGHT_DECAY,
            dampening=c.SGD_DAMPNING, nesterov=c.SGD_NESTEROV,
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=c.LR, momentum=c.MOMENTUM, weight_decay=c.WEIGHT_DECAY,
            alpha=c.RMSPROP_ALPHA,
        )
    if name == "radam":
        return RAdam(params, lr=c.LR, weight_decay=c.WEIGHT_DECAY, betas=betas)
    return torch.optim.AdamW(params, lr=c.LR, weight_decay=c.WEIGHT_DECAY, betas=betas)

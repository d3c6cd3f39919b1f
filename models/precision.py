"""Mixed precision as a config value (CoOp's PREC: fp16 | fp32 | amp, plus bf16).

Parameters stay fp32 (learned prompts get fp32 updates, unlike CoOp's fp16 SGD);
fp16/amp/bf16 select autocast for the forward pass. Logits and losses are computed
by the callers in fp32. Half precision on a CPU is slow or unsupported, so fp16/amp
fall back to fp32 there; bf16 autocast works on both.
"""
import contextlib

import torch

PRECISIONS = ("fp32", "fp16", "amp", "bf16")


def check_precision(prec):
    if prec not in PRECISIONS:
        raise ValueError(f"PREC must be one of {', '.join(PRECISIONS)}, got {prec!r}")
    return prec


def autocast_dtype(prec, device):
    """The autocast dtype for ``prec`` on ``device``, or None for plain fp32."""
    device_type = torch.device(device).type
    if prec == "bf16":
        return torch.bfloat16
    if prec in ("fp16", "amp") and device_type == "cuda":
        return torch.float16
    return None


def autocast(prec, device):
    dtype = autocast_dtype(prec, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def make_grad_scaler(prec, device):
    """A GradScaler when fp16 autocast is active (fp16 gradients can underflow), else None."""
    if autocast_dtype(prec, device) is torch.float16:
        return torch.amp.GradScaler("cuda")
    return None

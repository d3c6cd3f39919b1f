"""Trainers register themselves in the engine's TRAINER_REGISTRY on import."""
from trainers import cocoop, coop, ivlp, maple, pomp, rpp, vpt, zsclip  # noqa: F401
from trainers import linear_probe  # noqa: F401

"""Trainers register themselves in the engine's TRAINER_REGISTRY on import."""
from trainers import coop, zsclip  # noqa: F401

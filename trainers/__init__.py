"""Trainers register themselves in the engine's TRAINER_REGISTRY on import.

Every module of this package is imported, so a new trainer file registers by being here.
"""
import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

"""Datasets, transforms and data loaders (Dassl's ``dassl.data`` API)."""
from engine.bundled.data.data_manager import DataManager, DatasetWrapper, build_data_loader
from engine.bundled.data.dataset_base import DatasetBase, build_dataset
from engine.bundled.data.datum import Datum
from engine.bundled.data.samplers import build_sampler

__all__ = [
    "Datum", "DatasetBase", "build_dataset", "DataManager", "DatasetWrapper",
    "build_data_loader", "build_sampler",
]

"""DATALOADER worker keys (workers, pinned memory, persistent workers) reach the loaders."""
import pytest
import torch
from PIL import Image


def loader_cfg(**dataloader_keys):
    from engine.bundled.config import get_cfg_default
    from engine.config_extension import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.INPUT.SIZE = (8, 8)
    for key, value in dataloader_keys.items():
        cfg.DATALOADER[key] = value
    return cfg


@pytest.fixture
def images(tmp_path):
    from engine.bundled.data import Datum

    items = []
    for i in range(6):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(path)
        items.append(Datum(impath=str(path), label=i % 3))
    return items


def test_defaults():
    cfg = loader_cfg()
    assert cfg.DATALOADER.PIN_MEMORY is True
    assert cfg.DATALOADER.PERSISTENT_WORKERS is False  # exact resume by default
    assert cfg.DATALOADER.PREFETCH_FACTOR == 2


def test_worker_keys_reach_the_data_loader(images):
    import torchvision.transforms as T

    from engine.bundled.data.data_manager import build_data_loader

    cfg = loader_cfg(NUM_WORKERS=2, PERSISTENT_WORKERS=True, PREFETCH_FACTOR=3, PIN_MEMORY=True)
    loader = build_data_loader(cfg, data_source=images, batch_size=2, tfm=T.ToTensor(),
                               is_train=False)
    assert loader.num_workers == 2
    assert loader.persistent_workers is True
    assert loader.prefetch_factor == 3
    # pinning only helps host-to-GPU copies: on when the run uses CUDA
    assert loader.pin_memory is (torch.cuda.is_available() and cfg.USE_CUDA)
    labels = [label for _ in range(2) for batch in loader for label in batch["label"].tolist()]
    assert labels == [0, 1, 2, 0, 1, 2] * 2  # two epochs through the same workers

    cfg = loader_cfg(NUM_WORKERS=2, PERSISTENT_WORKERS=False)
    assert build_data_loader(cfg, data_source=images, batch_size=2, tfm=T.ToTensor(),
                             is_train=False).persistent_workers is False


def test_without_workers_the_worker_options_are_left_out(images):
    import torchvision.transforms as T

    from engine.bundled.data.data_manager import build_data_loader
    from engine.bundled.data.loader_options import loader_worker_options

    cfg = loader_cfg(NUM_WORKERS=0, PERSISTENT_WORKERS=True)
    cfg.USE_CUDA = False
    assert loader_worker_options(cfg) == {"num_workers": 0, "pin_memory": False}
    loader = build_data_loader(cfg, data_source=images, batch_size=4, tfm=T.ToTensor(),
                               is_train=True)
    assert loader.num_workers == 0 and loader.persistent_workers is False


def test_pinning_is_off_without_cuda():
    from engine.bundled.data.loader_options import loader_worker_options

    cfg = loader_cfg(NUM_WORKERS=1, PIN_MEMORY=True)
    cfg.USE_CUDA = False
    assert loader_worker_options(cfg) == {
        "num_workers": 1, "pin_memory": False, "persistent_workers": False, "prefetch_factor": 2,
    }


def test_keys_are_set_from_the_command_line(make_cfg):
    from engine.bundled.data import DataManager

    cfg = make_cfg("CoOp", "DATALOADER.NUM_WORKERS", "1", "DATALOADER.PERSISTENT_WORKERS", "False",
                   "DATALOADER.PREFETCH_FACTOR", "4", "DATALOADER.PIN_MEMORY", "False")
    assert cfg.DATALOADER.PIN_MEMORY is False
    dm = DataManager(cfg)
    for loader in (dm.train_loader_x, dm.test_loader):
        assert loader.num_workers == 1
        assert loader.persistent_workers is False
        assert loader.prefetch_factor == 4
        assert loader.pin_memory is False

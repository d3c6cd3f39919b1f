"""Every shipped trainer config merges into the full config tree under its trainer."""
import glob
import os

import pytest

from conftest import REPO_ROOT

CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "configs", "trainers", "*", "*.yaml")))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, os.path.join(REPO_ROOT, "configs")))
def test_trainer_config_merges(make_cfg, path):
    trainer = os.path.basename(os.path.dirname(path))
    cfg = make_cfg(trainer, config_file=path)
    assert cfg.TRAINER.NAME == trainer
    size = cfg.INPUT.SIZE[0]
    expected = 32 if cfg.MODEL.BACKBONE.NAME in ("tiny-vit", "tiny-rn", "demo-clip") else 224
    assert tuple(cfg.INPUT.SIZE) == (expected, expected), size


def test_rpp_and_pomp_protocol_configs_exist():
    names = {os.path.relpath(p, os.path.join(REPO_ROOT, "configs", "trainers")) for p in CONFIGS}
    for name in ("RPP/vit_b16_in21k.yaml", "RPP/vit_b16_in1k.yaml", "RPP/vit_b16_base2new.yaml",
                 "RPP/vit_b16_eval.yaml", "RPP/vit_b16_in21k_shared_qkv.yaml",
                 "RPP/vit_b16_in21k_text_only.yaml", "RPP/vit_b16_in21k_no_kd.yaml",
                 "POMP/vit_b16_ep5.yaml", "POMP/vit_b16_ep20.yaml", "POMP/vit_b16_ep5_loge.yaml",
                 "POMP/vit_b16_in1k.yaml", "POMP/vit_b16_base2new.yaml"):
        assert name in names, name

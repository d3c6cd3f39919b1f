"""tools/export_classifier.py: a trained CoOp prompt (tiny CLIP, demo dataset) round trip."""
import os
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT, TINY_COOP_CONFIG
from tools import export_classifier


@pytest.fixture(scope="module")
def trained_coop(demo_data_root, tmp_path_factory):
    """CoOp trained for one epoch; a large LR so the prompt moves visibly from its init."""
    from engine.bundled.utils.logger import Logger
    from engine.launch import build_arg_parser, run

    out = str(tmp_path_factory.mktemp("coop_run"))
    args = build_arg_parser().parse_args([
        "--root", demo_data_root, "--trainer", "CoOp", "--seed", "1",
        "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG,
        "--output-dir", out, "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "1", "TEST.NO_TEST", "True",
        "OPTIM.WARMUP_EPOCH", "0", "OPTIM.LR", "2.0",
    ])
    try:
        trainer = run(args)
    finally:
        while isinstance(sys.stdout, Logger):  # run() tees stdout into the run's log
            sys.stdout.close()
    return trainer, out


def write_names(path, names):
    path.write_text("".join(f"{name}\n" for name in names))
    return str(path)


def export(*argv):
    return export_classifier.main([str(a) for a in argv])


def coop_export(tmp_path, run_dir, names_file, prefix, *extra):
    return export("--trainer", "CoOp", "--config-file", TINY_COOP_CONFIG, "--model-dir", run_dir,
                  "--classnames", names_file, "--output", tmp_path / prefix, *extra)


def test_coop_export_equals_the_trainers_text_features(trained_coop, tmp_path, capsys):
    trainer, run_dir = trained_coop
    names_file = write_names(tmp_path / "names.txt", trainer.dm.dataset.classnames)
    assert coop_export(tmp_path, run_dir, names_file, "coop", "--load-epoch", 1, "--chunk-size", 3) == 0
    assert "Wrote" in capsys.readouterr().out

    with torch.no_grad():
        expected = trainer.model.text_features().cpu()
    exported_np = np.load(tmp_path / "coop.npy")
    exported_pt = torch.load(tmp_path / "coop.pt", weights_only=True)
    assert exported_np.dtype == np.float32 and exported_pt.dtype == torch.float32
    num_classes = len(trainer.dm.dataset.classnames)
    assert exported_np.shape == tuple(expected.shape) == (num_classes, 40)
    assert torch.allclose(torch.from_numpy(exported_np), expected, atol=1e-6)
    assert torch.equal(exported_pt, torch.from_numpy(exported_np))
    assert torch.allclose(exported_pt.norm(dim=-1), torch.ones(num_classes), atol=1e-6)

    # The learned prompt is what got exported, not the "a photo of a" initialisation.
    untrained = trainer.build_prompted_model(trainer.cfg, trainer.load_frozen_clip(), trainer.classnames)
    with torch.no_grad():
        initial = untrained.text_features().cpu()
    assert (initial - expected).abs().max() > 1e-3


def test_row_i_is_line_i_for_any_order_and_the_default_checkpoint_is_the_last(trained_coop, tmp_path):
    trainer, run_dir = trained_coop
    names = list(reversed(trainer.dm.dataset.classnames))[:7]
    assert coop_export(tmp_path, run_dir, write_names(tmp_path / "names.txt", names), "subset") == 0
    with torch.no_grad():
        all_features = trainer.model.text_features().cpu()
    order = [trainer.dm.dataset.classnames.index(name) for name in names]
    assert torch.allclose(torch.load(tmp_path / "subset.pt"), all_features[order], atol=1e-6)


def test_zeroshot_clip_uses_the_hand_crafted_template(tmp_path):
    from engine.launch import build_arg_parser, setup_cfg
    from models.clip_loader import load_clip_from_cfg, tokenize

    names = ["sea_lion", "golden retriever", "red car"]
    code = export("--trainer", "ZeroshotCLIP", "--config-file", TINY_COOP_CONFIG,
                  "--classnames", write_names(tmp_path / "names.txt", names),
                  "--output", tmp_path / "clip.npy", "--chunk-size", 2)
    assert code == 0
    cfg = setup_cfg(build_arg_parser().parse_args(
        ["--trainer", "ZeroshotCLIP", "--config-file", TINY_COOP_CONFIG,
         "--dataset-config-file", DEMO_DATASET_CONFIG]))
    clip_model = load_clip_from_cfg(cfg)
    texts = ["a photo of a sea lion.", "a photo of a golden retriever.", "a photo of a red car."]
    with torch.no_grad():
        expected = F.normalize(clip_model.encode_text(tokenize(texts)).float(), dim=-1)
    assert torch.allclose(torch.from_numpy(np.load(tmp_path / "clip.npy")), expected, atol=1e-5)


def test_bad_input_is_one_error_line(trained_coop, tmp_path, capsys):
    _, run_dir = trained_coop
    names_file = write_names(tmp_path / "names.txt", ["cat", "dog"])
    assert export("--trainer", "CoOOp", "--classnames", names_file, "--output", tmp_path / "x") == 2
    assert capsys.readouterr().err.strip() == "error: unknown trainer 'CoOOp'. Did you mean CoOp?"
    assert coop_export(tmp_path, run_dir, names_file, "x", "--load-epoch", 7) == 2
    assert "model.pth.tar-7" in capsys.readouterr().err
    assert coop_export(tmp_path, run_dir, write_names(tmp_path / "empty.txt", ["", " "]), "x") == 2
    assert "no class names" in capsys.readouterr().err
    assert export("--trainer", "CoOp", "--config-file", TINY_COOP_CONFIG, "--classnames", names_file,
                  "--output", tmp_path / "x") == 2
    assert "--model-dir is needed" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("trainer_name", ["IVLP", "VPT", "MaPLe", "POMP", "RPP", "PromptSRC"])
def test_deep_and_vision_prompts_round_trip_through_a_checkpoint(trainer_name, make_cfg, tmp_path):
    """A perturbed prompt saved in the trainers' checkpoint layout comes back out exactly."""
    from engine import TRAINER_REGISTRY
    from models.clip_loader import load_clip_from_cfg

    config_file = os.path.join(REPO_ROOT, "configs", "trainers", trainer_name, "tiny_vit.yaml")
    cfg = make_cfg(trainer_name, config_file=config_file)
    names = ["sea_lion", "red car", "tabby cat", "golden retriever", "oak tree"]
    model = TRAINER_REGISTRY.get(trainer_name).build_prompted_model(
        cfg, load_clip_from_cfg(cfg), [n.replace("_", " ") for n in names])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.prompt_learner.parameters():
            param.add_(0.5 * torch.randn(param.shape, generator=generator))
        expected = model.text_features()
    checkpoint_dir = tmp_path / "run" / "prompt_learner"
    checkpoint_dir.mkdir(parents=True)
    torch.save({"state_dict": model.prompt_learner.state_dict(), "epoch": 3},
               checkpoint_dir / "model.pth.tar-3")

    code = export("--trainer", trainer_name, "--config-file", config_file, "--model-dir", tmp_path / "run",
                  "--classnames", write_names(tmp_path / "names.txt", names), "--output", tmp_path / "out",
                  "--chunk-size", 2)
    assert code == 0
    assert torch.allclose(torch.load(tmp_path / "out.pt"), expected, atol=1e-6)

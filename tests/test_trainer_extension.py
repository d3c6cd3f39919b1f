"""The trainer extension point: config nodes inherited by subclasses, trainers registered
by being in the package, and a method with a feature-level loss (KgCoOp's) written on
the step outputs without encoding anything twice."""
import importlib
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from conftest import REPO_ROOT


def default_cfg():
    from engine import get_cfg_default
    from engine.config_extension import extend_cfg

    return extend_cfg(get_cfg_default())


def test_a_subclass_node_holds_its_parents_keys_and_its_own():
    from trainers.coop import CoOp

    class WithWeight(CoOp):
        config_node = "TEST_WITH_WEIGHT"
        config_keys = {"W": 8.0, "N_CTX": 4}  # a new key, and a new default for CoOp's

    cfg = default_cfg()
    node = cfg.TRAINER.TEST_WITH_WEIGHT
    coop = dict(cfg.TRAINER.COOP)
    assert set(node) == set(coop) | {"W"}
    assert node.W == 8.0 and node.N_CTX == 4 and coop["N_CTX"] == 16
    assert all(node[key] == value for key, value in coop.items() if key != "N_CTX")
    assert WithWeight.options(cfg) is node
    # POMP is such a subclass: CoOp's keys, its own context length
    assert dict(cfg.TRAINER.POMP) == dict(coop, N_CTX=4)


def test_a_subclass_without_a_node_reads_its_parents_and_may_not_add_keys():
    from trainers.rpp import RPP, RPP_Transfer

    cfg = default_cfg()
    assert RPP_Transfer.options(cfg) is RPP.options(cfg) is cfg.TRAINER.RPP
    with pytest.raises(TypeError, match="config_node"):
        class Stray(RPP):  # noqa: F841
            config_keys = {"EXTRA": 1}


def test_messages_name_the_subclass_node(make_cfg):
    from models.clip_loader import load_clip_from_cfg
    from models.deep_prompts import PromptDepthError
    from trainers.ivlp import IVLP

    class DeeperIVLP(IVLP):
        config_node = "TEST_DEEPER_IVLP"

    ivlp_config = os.path.join(REPO_ROOT, "configs", "trainers", "IVLP", "tiny_vit.yaml")
    cfg = make_cfg("IVLP", "TRAINER.TEST_DEEPER_IVLP.PROMPT_DEPTH_TEXT", 7, config_file=ivlp_config)
    with pytest.raises(PromptDepthError, match=r"TRAINER\.TEST_DEEPER_IVLP\.PROMPT_DEPTH_TEXT is 7"):
        DeeperIVLP.build_prompted_model(cfg, load_clip_from_cfg(cfg), ["cat", "dog"])


def test_every_module_of_the_trainer_package_is_imported(tmp_path, monkeypatch):
    # The package's __init__ in a scratch package with two modules nobody lists.
    package = tmp_path / "scratch_trainers"
    package.mkdir()
    with open(os.path.join(REPO_ROOT, "trainers", "__init__.py")) as f:
        (package / "__init__.py").write_text(f.read())
    for name in ("first_method", "second_method"):
        (package / f"{name}.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("scratch_trainers")
    assert {"scratch_trainers.first_method", "scratch_trainers.second_method"} <= set(sys.modules)
    for name in ("scratch_trainers", "scratch_trainers.first_method", "scratch_trainers.second_method"):
        sys.modules.pop(name)


def kgcoop_like():
    """KgCoOp (Yao et al., CVPR 2023) in a few lines: CoOp plus W times the squared distance
    between the learned and the hand-crafted class text features."""
    from models.zero_shot import ZeroShotClassifier
    from trainers.coop import CoOp

    class KgCoOpLike(CoOp):
        config_node = "TEST_KGCOOP"
        config_keys = {"W": 8.0}

        def build_extra_models(self, clip_model):
            self.hand_crafted = ZeroShotClassifier(clip_model, self.classnames, ["a photo of a {}."])

        def loss_terms(self, step):
            terms = super().loss_terms(step)
            reference = self.hand_crafted.text_features
            if step.class_ids is not None:
                reference = reference[step.class_ids]
            distance = (step.text_features - reference).pow(2).sum(-1).mean()
            terms["loss_kg"] = self.options(self.cfg).W * distance
            return terms

    return KgCoOpLike


@pytest.mark.parametrize("sampling_k", [0, 5])
def test_a_feature_loss_uses_the_steps_features_without_a_second_pass(make_cfg, restore_stdout,
                                                                       monkeypatch, sampling_k):
    trainer_class = kgcoop_like()
    cfg = make_cfg("CoOp", "DATASET.NUM_SHOTS", 2, "TRAINER.TEST_KGCOOP.W", 2.0,
                   "TRAINER.TEST_KGCOOP.PREC", "fp32", "TRAINER.CLASS_SAMPLING.K", sampling_k)
    trainer = trainer_class(cfg)
    batch = next(iter(trainer.train_loader_x))
    image, label = trainer.parse_batch_train(batch)
    text_passes = []
    original = trainer.model.text_encoder.forward
    monkeypatch.setattr(trainer.model.text_encoder, "forward",
                        lambda *args, **kwargs: text_passes.append(1) or original(*args, **kwargs))
    torch.manual_seed(0)
    step = trainer.training_step(image, label)
    terms = trainer.loss_terms(step)
    assert len(text_passes) == 1, "the loss reuses the step's text features"
    assert set(terms) == {"loss_ce", "loss_kg"}

    # independently: the learned prompts' features against CLIP's own "a photo of a {}."
    with torch.no_grad():
        embeddings, tokens, _ = trainer.model.prompt_learner.text_inputs(step.class_ids)
        learned = F.normalize(trainer.model.text_encoder(embeddings, tokens).float(), dim=-1)
        names = trainer.classnames if step.class_ids is None else [
            trainer.classnames[i] for i in step.class_ids.tolist()]
        texts = [f"a photo of a {name}." for name in names]
        hand_crafted = F.normalize(trainer.model.text_encoder.encode_texts(texts).float(), dim=-1)
    expected = 2.0 * ((learned - hand_crafted) ** 2).sum(-1).mean()
    assert terms["loss_kg"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-7)
    assert step.logits.shape == (image.shape[0], len(names))

"""KgCoOp on the tiny CLIP: its config node and recipes, the knowledge-guided term against a
cosine computed here, where its gradient goes, W = 0 as CoOp, the hand-crafted features
encoded once per run, and (slow) its sweep, the parser and a resume through train.py's path."""
import csv
import io
import itertools
import os
import sys

import pytest
import torch

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT, TINY_COOP_CONFIG
from test_sweeps import ACCURACY, dry, run_script  # noqa: F401  (dry: a fixture)

KGCOOP_CONFIGS = os.path.join(REPO_ROOT, "configs", "trainers", "KgCoOp")
TINY_KGCOOP_CONFIG = os.path.join(KGCOOP_CONFIGS, "tiny_vit.yaml")


@pytest.fixture
def make_trainer(make_cfg, tmp_path):
    built = itertools.count()

    def build(*opts, trainer="KgCoOp", config_file=TINY_KGCOOP_CONFIG):
        from engine import build_trainer

        cfg = make_cfg(trainer, "DATASET.NUM_SHOTS", 2, *opts, config_file=config_file,
                       output_dir=str(tmp_path / f"run{next(built)}"))
        return build_trainer(cfg)
    return build


def move_prompts_off_the_template(trainer, seed=0):
    """Demo's hand-crafted prompt is the initial one ("a photo of a {}."), where the term
    is 0; a random move of the context makes it (and its gradient) non-trivial."""
    ctx = trainer.model.prompt_learner.ctx
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ctx.add_(torch.randn(ctx.shape, generator=generator).to(ctx.device) * ctx.norm(dim=-1).mean())


def one_batch(trainer):
    batch = next(iter(trainer.train_loader_x))
    trainer.batch_idx, trainer.num_batches = 0, 1000  # no LR step inside a test's steps
    return batch, trainer.parse_batch_train(batch)


def test_node_holds_coops_keys_and_the_official_weight():
    from engine import get_cfg_default
    from engine.config_extension import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    coop, kgcoop = dict(cfg.TRAINER.COOP), dict(cfg.TRAINER.KGCOOP)
    assert set(kgcoop) == set(coop) | {"W"}
    assert kgcoop.pop("W") == 8.0 and kgcoop == coop


@pytest.mark.parametrize("config, backbone, batch, epochs", [
    ("vit_b16_ep100_ctxv1", "ViT-B/16", 128, 100),  # base-to-new (official config + script)
    ("rn50_ep100", "RN50", 128, 100),
    ("vit_b16_ep100_ctxv1_few_shot", "ViT-B/16", 32, 100),  # authors: batch 32 (issue #4)
    ("vit_b16_ep25_ctxv1_cross_datasets", "ViT-B/16", 128, 25),  # authors' DG test: epoch 25 (issue #8)
])
def test_configs_hold_the_official_recipe(make_cfg, config, backbone, batch, epochs):
    cfg = make_cfg("KgCoOp", config_file=os.path.join(KGCOOP_CONFIGS, f"{config}.yaml"))
    opts = cfg.TRAINER.KGCOOP
    assert (opts.N_CTX, opts.CTX_INIT, opts.W, opts.CSC, opts.PREC) == (4, "a photo of a", 8.0, False, "fp16")
    assert cfg.MODEL.BACKBONE.NAME == backbone and cfg.DATALOADER.TRAIN_X.BATCH_SIZE == batch
    assert cfg.OPTIM.MAX_EPOCH == epochs and cfg.OPTIM.LR == pytest.approx(0.002)
    assert (cfg.OPTIM.NAME, cfg.OPTIM.LR_SCHEDULER, cfg.OPTIM.WARMUP_EPOCH) == ("sgd", "cosine", 1)


def test_hand_crafted_prompts_are_kgcoops():
    from engine import get_cfg_default
    from engine.config_extension import extend_cfg
    from models.templates import CUSTOM_TEMPLATES
    from trainers.kgcoop import KgCoOp

    cfg = extend_cfg(get_cfg_default())
    cfg.DATASET.NAME = "DescribableTextures"  # KgCoOp's own; CoOp's is "{} texture."
    assert KgCoOp.hand_crafted_template(cfg) == "a photo of a {}, a type of texture."
    for name in ("OxfordPets", "EuroSAT", "UCF101", "ImageNet"):
        cfg.DATASET.NAME = name
        assert KgCoOp.hand_crafted_template(cfg) == CUSTOM_TEMPLATES[name]


@pytest.mark.parametrize("sampling_k", [0, 5])
def test_the_term_is_one_minus_the_mean_cosine_to_the_hand_crafted_features(make_trainer, restore_stdout,
                                                                             sampling_k):
    trainer = make_trainer("TRAINER.KGCOOP.W", 2.0, "TRAINER.CLASS_SAMPLING.K", sampling_k)
    move_prompts_off_the_template(trainer)
    _, (image, label) = one_batch(trainer)
    torch.manual_seed(0)
    step = trainer.training_step(image, label)
    terms = trainer.loss_terms(step)
    assert set(terms) == {"loss_ce", "loss_kg"}

    # independently: the learned class prompts and "a photo of a {class}." through the text
    # encoder, and the cosine written out
    model = trainer.model
    names = trainer.classnames if step.class_ids is None else [
        trainer.classnames[i] for i in step.class_ids.tolist()]
    with torch.no_grad():
        embeddings, tokens, _ = model.prompt_learner.text_inputs(step.class_ids)
        learned = model.text_encoder(embeddings, tokens).double()
        hand_crafted = model.text_encoder.encode_texts([f"a photo of a {name}." for name in names]).double()
    cosine = (learned * hand_crafted).sum(-1) / (learned.norm(dim=-1) * hand_crafted.norm(dim=-1))
    expected = 2.0 * (1.0 - cosine.mean())
    assert expected > 1e-2, "the test needs prompts away from the template"
    assert terms["loss_kg"].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-6)
    assert step.logits.shape == (image.shape[0], len(names))


def test_the_gradient_reaches_only_the_prompt(make_trainer, restore_stdout):
    trainer = make_trainer()
    move_prompts_off_the_template(trainer)
    batch, (image, label) = one_batch(trainer)
    step = trainer.training_step(image, label)
    trainer.loss_terms(step)["loss_kg"].backward()
    with_grad = {name: p.grad for name, p in trainer.model.named_parameters() if p.grad is not None}
    assert list(with_grad) == ["prompt_learner.ctx"] and with_grad["prompt_learner.ctx"].abs().sum() > 0
    assert not trainer.hand_crafted_features.requires_grad

    for group in trainer.optim.param_groups:
        group["lr"] = 0.05
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.forward_backward(batch)
    for name, param in trainer.model.named_parameters():
        assert torch.equal(param.detach(), before[name]) == (name != "prompt_learner.ctx"), name


def test_w_zero_is_coop(make_trainer, restore_stdout):
    kgcoop = make_trainer("TRAINER.KGCOOP.W", 0.0)
    coop = make_trainer(trainer="CoOp", config_file=TINY_COOP_CONFIG)  # the same recipe on CoOp
    torch.testing.assert_close(kgcoop.model.prompt_learner.ctx, coop.model.prompt_learner.ctx,
                               rtol=0, atol=0)
    batch, (image, label) = one_batch(kgcoop)
    one_batch(coop)
    for trainer in (kgcoop, coop):
        move_prompts_off_the_template(trainer)  # where the term (at W > 0) would pull
    losses = [trainer.loss_terms(trainer.training_step(image, label)) for trainer in (kgcoop, coop)]
    assert losses[0]["loss_kg"].item() == 0.0
    assert sum(losses[0].values()).item() == pytest.approx(losses[1]["loss_ce"].item(), rel=1e-6)

    # one training step: W = 0 moves the prompt exactly as CoOp does
    summaries = [trainer.forward_backward(batch) for trainer in (kgcoop, coop)]
    assert summaries[0]["loss"] == pytest.approx(summaries[1]["loss"], rel=1e-6)
    torch.testing.assert_close(kgcoop.model.prompt_learner.ctx, coop.model.prompt_learner.ctx,
                               rtol=1e-5, atol=1e-7)


def test_hand_crafted_features_are_encoded_once_per_run(make_trainer, restore_stdout, monkeypatch):
    import trainers.kgcoop as kgcoop_module

    encoded = []
    original = kgcoop_module.class_text_features
    monkeypatch.setattr(kgcoop_module, "class_text_features",
                        lambda clip_model, names, templates: encoded.append(list(names))
                        or original(clip_model, names, templates))
    trainer = make_trainer()
    assert encoded == [trainer.classnames]
    assert trainer.hand_crafted_features.shape[0] == len(trainer.classnames)

    text_passes = []
    forward = trainer.model.text_encoder.forward
    monkeypatch.setattr(trainer.model.text_encoder, "forward",
                        lambda *args, **kwargs: text_passes.append(1) or forward(*args, **kwargs))
    batch, _ = one_batch(trainer)
    for _ in range(3):
        trainer.forward_backward(batch)
    assert len(encoded) == 1, "no step encodes the hand-crafted prompts again"
    assert len(text_passes) == 3, "one text pass per step: the learned prompts, used by CE and the term"

    evaluator = make_trainer("EVAL_ONLY", True)  # evaluation is CoOp's: the term is not built
    assert len(encoded) == 1 and evaluator.hand_crafted_features is None


def test_a_negative_weight_is_a_one_line_error(make_trainer, restore_stdout):
    from engine.user_errors import is_user_error

    with pytest.raises(Exception, match=r"TRAINER\.KGCOOP\.W must be >= 0") as error:
        make_trainer("TRAINER.KGCOOP.W", -1.0)
    assert is_user_error(error.value)


def test_few_shot_sweep_uses_the_batch_32_recipe(dry):
    result, (train,) = dry("scripts/kgcoop/few_shot.sh", "caltech101", 4, 2)
    assert result.returncode == 0, result.stderr
    cfg = "vit_b16_ep100_ctxv1_few_shot"
    assert train["flags"]["--trainer"] == "KgCoOp"
    assert train["flags"]["--config-file"] == f"configs/trainers/KgCoOp/{cfg}.yaml"
    assert train["flags"]["--output-dir"] == f"{dry.output}/caltech101/KgCoOp/{cfg}_4shots/seed2"
    assert train["opts"] == {"DATASET.NUM_SHOTS": "4", "DATASET.SUBSAMPLE_CLASSES": "all"}


# ------------------------------------------------------- the sweep, the parser and a resume
@pytest.mark.slow
def test_base2new_sweep_on_the_demo_is_read_by_the_parser(demo_data_root, tmp_path, capsys):
    from tools import parse_results

    output = str(tmp_path / "output")
    env = {"DATA": demo_data_root, "OUTPUT": output, "CFG": "tiny_vit", "EPOCHS": "2",
           "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    swept = run_script("scripts/kgcoop/base2new.sh", "demo", 1, env=env, timeout=300)
    assert swept.returncode == 0, swept.stderr[-3000:]
    common = "demo/shots_16/KgCoOp/tiny_vit/seed1"
    train_log = open(os.path.join(output, "base2new", "train_base", common, "log.txt")).read()
    test_log = open(os.path.join(output, "base2new", "test_new", common, "log.txt")).read()
    assert 'Knowledge-guided term: W 8.0, hand-crafted prompts "a photo of a {}." for 15 classes' in train_log
    assert "loss_kg" in train_log
    assert "Knowledge-guided term" not in test_log and "model.pth.tar-2" in test_log
    base, new = (float(ACCURACY.findall(log.split("Finish training")[-1])[-1].split()[-1][:-1])
                 for log in (train_log, test_log))

    assert parse_results.main(["base2new", "--method", "KgCoOp", "--datasets", "demo", "--output", output,
                               "--reference", "KgCoOp", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    ours = {row["metric"]: float(row["mean"]) for row in rows
            if row["method"] == "KgCoOp" and row["dataset"] == "demo"}
    assert ours["base"] == pytest.approx(base) and ours["new"] == pytest.approx(new)
    assert ours["hm"] == pytest.approx(2 * base * new / (base + new), abs=1e-3)
    published = {row["metric"]: float(row["mean"]) for row in rows
                 if row["method"] == "KgCoOp (published)" and row["dataset"] == "average"}
    assert published == {"base": 80.73, "new": 73.6, "hm": 77.0}


@pytest.mark.slow
def test_train_py_resumes_a_kgcoop_run_exactly(demo_data_root, tmp_path, restore_stdout):
    from engine.launch import parse_args, run

    def train(output_dir, flags=(), opts=()):
        return run(parse_args([
            "--root", demo_data_root, "--trainer", "KgCoOp", "--seed", "1",
            "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_KGCOOP_CONFIG,
            "--output-dir", str(output_dir), *flags,
            "DATASET.NUM_SHOTS", "2", "DATALOADER.TRAIN_X.BATCH_SIZE", "8", "OPTIM.MAX_EPOCH", "2",
            "TRAIN.CHECKPOINT_FREQ", "1", "TEST.NO_TEST", "True", "OPTIM.LR", "0.05", *opts,
        ]))

    reference = train(tmp_path / "a")
    reference.close_writer()
    first = train(tmp_path / "b", opts=("OPTIM.MAX_EPOCH", "1"))
    first.close_writer()
    resumed = train(tmp_path / "b", flags=("--resume",))  # asks for 2 epochs, resumes after the first
    resumed.close_writer()
    assert resumed.start_epoch == 1
    assert resumed.hand_crafted_features is not None
    torch.testing.assert_close(resumed.hand_crafted_features, reference.hand_crafted_features,
                               rtol=0, atol=0)
    assert torch.equal(resumed.model.prompt_learner.ctx, reference.model.prompt_learner.ctx)
    assert not torch.equal(first.model.prompt_learner.ctx, reference.model.prompt_learner.ctx)

"""Dassl's default config tree and merging realistic CoOp/MaPLe-style YAML into it."""
import pytest
from yacs.config import CfgNode

from engine.bundled.config import get_cfg_default

COOP_STYLE_YAML = """\
DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 4
  TEST:
    BATCH_SIZE: 100
  NUM_WORKERS: 8

INPUT:
  SIZE: (224, 224)
  INTERPOLATION: "bicubic"
  PIXEL_MEAN: [0.48145466, 0.4578275, 0.40821073]
  PIXEL_STD: [0.26862954, 0.26130258, 0.27577711]
  TRANSFORMS: ["random_resized_crop", "random_flip", "normalize"]

OPTIM:
  NAME: "sgd"
  LR: 0.002
  MAX_EPOCH: 5
  LR_SCHEDULER: "cosine"
  WARMUP_EPOCH: 1
  WARMUP_TYPE: "constant"
  WARMUP_CONS_LR: 1e-5

TRAIN:
  PRINT_FREQ: 20

MODEL:
  BACKBONE:
    NAME: "ViT-B/16"
"""


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, CfgNode):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_returns_an_independent_mutable_clone():
    cfg = get_cfg_default()
    cfg.OPTIM.LR = 123.0
    cfg.TRAINER.NAME = "X"
    fresh = get_cfg_default()
    assert fresh.OPTIM.LR == 0.0003 and fresh.TRAINER.NAME == ""
    assert isinstance(fresh, CfgNode) and not fresh.is_frozen()


@pytest.mark.parametrize("key, value", [
    ("VERSION", 1), ("OUTPUT_DIR", "./output"), ("RESUME", ""), ("SEED", -1),
    ("USE_CUDA", True), ("VERBOSE", True),
    ("INPUT.SIZE", (224, 224)), ("INPUT.INTERPOLATION", "bilinear"), ("INPUT.TRANSFORMS", ()),
    ("INPUT.NO_TRANSFORM", False), ("INPUT.PIXEL_MEAN", [0.485, 0.456, 0.406]),
    ("INPUT.PIXEL_STD", [0.229, 0.224, 0.225]), ("INPUT.CROP_PADDING", 4),
    ("INPUT.RRCROP_SCALE", (0.08, 1.0)), ("INPUT.CUTOUT_N", 1), ("INPUT.CUTOUT_LEN", 16),
    ("INPUT.GN_MEAN", 0.0), ("INPUT.GN_STD", 0.15), ("INPUT.RANDAUGMENT_N", 2),
    ("INPUT.RANDAUGMENT_M", 10), ("INPUT.COLORJITTER_H", 0.1), ("INPUT.RGS_P", 0.2),
    ("INPUT.GB_P", 0.5), ("INPUT.GB_K", 21),
    ("DATASET.ROOT", ""), ("DATASET.NAME", ""), ("DATASET.SOURCE_DOMAINS", ()),
    ("DATASET.TARGET_DOMAINS", ()), ("DATASET.NUM_LABELED", -1), ("DATASET.NUM_SHOTS", -1),
    ("DATASET.VAL_PERCENT", 0.1), ("DATASET.STL10_FOLD", -1), ("DATASET.CIFAR_C_TYPE", ""),
    ("DATASET.CIFAR_C_LEVEL", 1), ("DATASET.ALL_AS_UNLABELED", False),
    ("DATALOADER.NUM_WORKERS", 4), ("DATALOADER.K_TRANSFORMS", 1),
    ("DATALOADER.RETURN_IMG0", False), ("DATALOADER.TRAIN_X.SAMPLER", "RandomSampler"),
    ("DATALOADER.TRAIN_X.BATCH_SIZE", 32), ("DATALOADER.TRAIN_X.N_DOMAIN", 0),
    ("DATALOADER.TRAIN_X.N_INS", 16), ("DATALOADER.TRAIN_U.SAME_AS_X", True),
    ("DATALOADER.TRAIN_U.BATCH_SIZE", 32), ("DATALOADER.TEST.SAMPLER", "SequentialSampler"),
    ("DATALOADER.TEST.BATCH_SIZE", 32),
    ("MODEL.INIT_WEIGHTS", ""), ("MODEL.BACKBONE.NAME", ""), ("MODEL.BACKBONE.PRETRAINED", True),
    ("MODEL.HEAD.NAME", ""), ("MODEL.HEAD.HIDDEN_LAYERS", ()), ("MODEL.HEAD.ACTIVATION", "relu"),
    ("MODEL.HEAD.BN", True), ("MODEL.HEAD.DROPOUT", 0.0),
    ("OPTIM.NAME", "adam"), ("OPTIM.LR", 0.0003), ("OPTIM.WEIGHT_DECAY", 0.0005),
    ("OPTIM.MOMENTUM", 0.9), ("OPTIM.SGD_DAMPNING", 0), ("OPTIM.SGD_NESTEROV", False),
    ("OPTIM.RMSPROP_ALPHA", 0.99), ("OPTIM.ADAM_BETA1", 0.9), ("OPTIM.ADAM_BETA2", 0.999),
    ("OPTIM.STAGED_LR", False), ("OPTIM.NEW_LAYERS", ()), ("OPTIM.BASE_LR_MULT", 0.1),
    ("OPTIM.LR_SCHEDULER", "single_step"), ("OPTIM.STEPSIZE", (-1,)), ("OPTIM.GAMMA", 0.1),
    ("OPTIM.MAX_EPOCH", 10), ("OPTIM.WARMUP_EPOCH", -1), ("OPTIM.WARMUP_TYPE", "linear"),
    ("OPTIM.WARMUP_CONS_LR", 1e-05), ("OPTIM.WARMUP_MIN_LR", 1e-05),
    ("OPTIM.WARMUP_RECOUNT", True),
    ("TRAIN.CHECKPOINT_FREQ", 0), ("TRAIN.PRINT_FREQ", 10), ("TRAIN.COUNT_ITER", "train_x"),
    ("TEST.EVALUATOR", "Classification"), ("TEST.PER_CLASS_RESULT", False),
    ("TEST.COMPUTE_CMAT", False), ("TEST.NO_TEST", False), ("TEST.SPLIT", "test"),
    ("TEST.FINAL_MODEL", "last_step"), ("TRAINER.NAME", ""),
    ("TRAINER.CDAC.CLASS_LR_MULTI", 10), ("TRAINER.DDAIG.G_ARCH", ""),
    ("TRAINER.DDAIG.CLAMP_MIN", -1.0), ("TRAINER.DOMAINMIX.TYPE", "crossdomain"),
    ("TRAINER.MIXMATCH.RAMPUP", 20000), ("TRAINER.MIXMATCH.WEIGHT_U", 100.0),
    ("TRAINER.FIXMATCH.STRONG_TRANSFORMS", ()), ("TRAINER.SE.RAMPUP", 300),
])
def test_default_value_and_exact_type(key, value):
    node = get_cfg_default()
    for part in key.split("."):
        node = node[part]
    assert node == value
    assert type(node) is type(value)  # yacs type-checks merges against these


def test_builtin_trainer_nodes_have_dassls_keys():
    trainer = get_cfg_default().TRAINER
    expected = {
        "CDAC": {"CLASS_LR_MULTI", "P_THRESH", "RAMPUP_COEF", "RAMPUP_ITRS",
                 "STRONG_TRANSFORMS", "TOPK_MATCH"},
        "CROSSGRAD": {"ALPHA_D", "ALPHA_F", "EPS_D", "EPS_F"},
        "DAEL": {"CONF_THRE", "STRONG_TRANSFORMS", "WEIGHT_U"},
        "DAELDG": {"CONF_THRE", "STRONG_TRANSFORMS", "WEIGHT_U"},
        "DDAIG": {"ALPHA", "CLAMP", "CLAMP_MAX", "CLAMP_MIN", "G_ARCH", "LMDA", "WARMUP"},
        "DOMAINMIX": {"ALPHA", "BETA", "TYPE"},
        "ENTMIN": {"LMDA"},
        "FIXMATCH": {"CONF_THRE", "STRONG_TRANSFORMS", "WEIGHT_U"},
        "M3SDA": {"LMDA", "N_STEP_F"},
        "MCD": {"N_STEP_F"},
        "MEANTEACHER": {"EMA_ALPHA", "RAMPUP", "WEIGHT_U"},
        "MIXMATCH": {"MIXUP_BETA", "RAMPUP", "TEMP", "WEIGHT_U"},
        "MME": {"LMDA"},
        "SE": {"CONF_THRE", "EMA_ALPHA", "RAMPUP"},
    }
    assert set(trainer.keys()) == set(expected) | {"NAME"}
    for name, keys in expected.items():
        assert set(trainer[name].keys()) == keys, name


def test_top_level_sections_and_leaf_count():
    cfg = get_cfg_default()
    assert set(cfg.keys()) == {
        "VERSION", "OUTPUT_DIR", "RESUME", "SEED", "USE_CUDA", "VERBOSE", "INPUT", "DATASET",
        "DATALOADER", "MODEL", "OPTIM", "TRAIN", "TEST", "TRAINER",
    }
    leaves = dict(_leaves(cfg))
    non_trainer = [k for k in leaves if not k.startswith("TRAINER.")]
    assert len(non_trainer) == 90  # counted from Dassl 0.6.3's printed default tree
    assert len(leaves) == 90 + 1 + 44  # + TRAINER.NAME + the built-in trainers' keys


def test_merge_coop_style_yaml_file(tmp_path):
    path = tmp_path / "vit_b16_ep5.yaml"
    path.write_text(COOP_STYLE_YAML)
    cfg = get_cfg_default()
    cfg.merge_from_file(str(path))

    assert cfg.DATALOADER.TRAIN_X.BATCH_SIZE == 4
    assert cfg.DATALOADER.TEST.BATCH_SIZE == 100
    assert cfg.DATALOADER.NUM_WORKERS == 8
    assert cfg.INPUT.SIZE == (224, 224) and isinstance(cfg.INPUT.SIZE, tuple)
    assert cfg.INPUT.INTERPOLATION == "bicubic"
    assert cfg.INPUT.PIXEL_MEAN == [0.48145466, 0.4578275, 0.40821073]
    assert cfg.INPUT.PIXEL_STD == [0.26862954, 0.26130258, 0.27577711]
    # A YAML list merged into a tuple default stays a tuple.
    assert cfg.INPUT.TRANSFORMS == ("random_resized_crop", "random_flip", "normalize")
    assert cfg.OPTIM.NAME == "sgd" and cfg.OPTIM.LR == 0.002 and cfg.OPTIM.MAX_EPOCH == 5
    assert cfg.OPTIM.LR_SCHEDULER == "cosine" and cfg.OPTIM.WARMUP_EPOCH == 1
    assert cfg.OPTIM.WARMUP_TYPE == "constant"
    # PyYAML reads 1e-5 as a string; yacs literal-evaluates it into a float.
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and isinstance(cfg.OPTIM.WARMUP_CONS_LR, float)
    assert cfg.TRAIN.PRINT_FREQ == 20
    assert cfg.MODEL.BACKBONE.NAME == "ViT-B/16"
    # Untouched keys keep their defaults.
    assert cfg.OPTIM.WEIGHT_DECAY == 0.0005 and cfg.TEST.FINAL_MODEL == "last_step"


def test_merge_from_list_then_freeze():
    cfg = get_cfg_default()
    cfg.merge_from_list(["DATASET.NUM_SHOTS", "16", "OPTIM.MAX_EPOCH", "50",
                         "INPUT.SIZE", "(32, 32)"])
    cfg.freeze()
    assert cfg.DATASET.NUM_SHOTS == 16 and cfg.OPTIM.MAX_EPOCH == 50
    assert cfg.INPUT.SIZE == (32, 32)
    with pytest.raises(AttributeError):
        cfg.OPTIM.LR = 1.0


def test_print_dumps_yaml_with_sorted_keys():
    text = str(get_cfg_default())
    assert text.index("DATALOADER:") < text.index("DATASET:") < text.index("INPUT:")
    assert "  SGD_DAMPNING: 0" in text and "  SIZE: (224, 224)" in text


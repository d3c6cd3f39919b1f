"""Export a trained prompt as a zero-shot classifier for any list of class names.

    python tools/export_classifier.py --trainer CoOp \\
        --config-file configs/trainers/CoOp/vit_b16_ep50.yaml \\
        --model-dir output/imagenet/CoOp/vit_b16_ep50_16shots/seed1 --load-epoch 50 \\
        --classnames lvis_classnames.txt --output exports/coop_lvis
    # hand-crafted prompts ("a photo of a {}."), nothing to load
    python tools/export_classifier.py --trainer ZeroshotCLIP \\
        --config-file configs/trainers/CoOp/vit_b16.yaml --classnames names.txt --output exports/clip

Writes ``PREFIX.npy`` and ``PREFIX.pt``: the L2-normalised text embeddings of the class
prompts, float32 [num_classes, dim], row i for line i of the class-name file (blank lines
are skipped; "_" reads as a space, as for dataset class names). That is the format
open-vocabulary detectors and segmenters load as a classifier (Detic's
``--zeroshot_weight_path``). Classes are encoded ``--chunk-size`` at a time (by the model's
own ``PromptedCLIP.all_text_features``, as in evaluation), so 21K names fit in memory.
Features are computed in fp32 whatever the trainer's PREC.

The config is built as train.py builds it (defaults, the trainer YAML, --backbone,
trailing KEY VALUE overrides), so pass the overrides the run was trained with
(e.g. TRAINER.COOP.N_CTX 16). --model-dir is the run folder, its ``prompt_learner``
folder or a checkpoint file; without --load-epoch the checkpoint is ``model-best.pth.tar``
if present, else the last ``model.pth.tar-<N>`` (the rule train.py --eval-only follows).
Exit status: 0, or 2 with one ``error:`` line on bad input.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine import TRAINER_REGISTRY, get_cfg_default  # noqa: E402
from engine.bundled.registry import closest_match  # noqa: E402
from engine.bundled.utils.checkpoint import load_weights  # noqa: E402
from engine.checkpoint_files import deployed_checkpoint_names  # noqa: E402
from engine.config_errors import ConfigError, merge_config_file, merge_config_list  # noqa: E402
from engine.config_extension import extend_cfg  # noqa: E402
from engine.user_errors import UserError, is_user_error  # noqa: E402
from models.clip_loader import load_clip_from_cfg  # noqa: E402
from models.zero_shot import class_text_features  # noqa: E402
from trainers.prompt_trainer import find_prompt_checkpoint  # noqa: E402
from trainers.zsclip import ZeroshotCLIP, zeroshot_templates  # noqa: E402


class ExportError(UserError):
    """Bad input to the export (class names, trainer, checkpoint)."""


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainer", required=True, help="registered trainer name (CoOp, ZeroshotCLIP, ...)")
    parser.add_argument("--config-file", default="", help="the trainer YAML the run used")
    parser.add_argument("--model-dir", default="",
                        help="the run's output folder, or a checkpoint file (not for ZeroshotCLIP)")
    parser.add_argument("--load-epoch", type=int, help="load model.pth.tar-<N> (default: best, else last)")
    parser.add_argument("--classnames", required=True, help="text file, one class name per line")
    parser.add_argument("--output", required=True, help="output prefix: writes PREFIX.npy and PREFIX.pt")
    parser.add_argument("--chunk-size", type=int, default=1000,
                        help="classes encoded at a time (default 1000)")
    parser.add_argument("--backbone", default="", help="override MODEL.BACKBONE.NAME")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def read_classnames(path):
    with open(path, encoding="utf-8") as f:
        names = [line.strip().replace("_", " ") for line in f]
    names = [name for name in names if name]
    if not names:
        raise ExportError(f"no class names in {path}")
    return names


def build_cfg(args):
    """The config as train.py builds it, without a dataset."""
    cfg = get_cfg_default()
    extend_cfg(cfg)
    if args.config_file:
        merge_config_file(cfg, args.config_file)
    cfg.TRAINER.NAME = args.trainer
    if args.backbone:
        cfg.MODEL.BACKBONE.NAME = args.backbone
    merge_config_list(cfg, args.opts or [])
    cfg.freeze()
    return cfg


def trainer_class(name):
    names = TRAINER_REGISTRY.registered_names()
    if name not in names:
        hint = closest_match(name, sorted(names))
        raise ExportError(f"unknown trainer {name!r}." + (f" Did you mean {hint}?" if hint else ""))
    return TRAINER_REGISTRY.get(name)


def checkpoint_path(model_dir, load_epoch):
    path = find_prompt_checkpoint(model_dir, load_epoch)
    if path is None:
        raise ExportError(f"no checkpoint {deployed_checkpoint_names(load_epoch)} in {model_dir} (nor in its prompt_learner folder)")
    return path


def load_prompted_model(cls, cfg, clip_model, classnames, model_dir, load_epoch):
    """The trainer's prompted CLIP for ``classnames`` with the run's learned prompt loaded."""
    model = cls.build_prompted_model(cfg, clip_model, classnames)
    if not hasattr(model.prompt_learner, "text_inputs"):
        raise ExportError(f"{cls.__name__} conditions its prompts on each image: "
                          "it has no fixed class embedding to export")
    path = checkpoint_path(model_dir, load_epoch)
    # Official CoOp-style checkpoints also hold frozen per-class buffers; they belong to
    # the training class names, not to these.
    checkpoint = load_weights(model.prompt_learner, path, cls.ignored_checkpoint_keys,
                              cls.checkpoint_mismatch_hint, layout=cls.prompt_layout_of(cfg))
    print(f"Loaded {path} (epoch {checkpoint.get('epoch', '?')})")
    return model.eval()


@torch.no_grad()
def encode(args, cfg, classnames):
    """[num_classes, dim] float32 CPU features, and a description of their source."""
    cls = trainer_class(args.trainer)
    device = torch.device(args.device)
    clip_model = load_clip_from_cfg(cfg, device=device).eval()
    print(f"Encoding {len(classnames):,} classes, {args.chunk_size} at a time")
    if issubclass(cls, ZeroshotCLIP):
        if args.model_dir:
            raise ExportError(f"{args.trainer} learns nothing: drop --model-dir")
        templates = zeroshot_templates(cfg.DATASET.NAME, cls.use_template_ensemble or cls.options(cfg).ENSEMBLE)
        features = class_text_features(clip_model, classnames, templates, batch_size=args.chunk_size)
        return features.float().cpu(), f"templates {templates}"
    if not hasattr(cls, "build_prompted_model"):
        raise ExportError(f"trainer {args.trainer} has no prompted model to export")
    if not args.model_dir:
        raise ExportError(f"--model-dir is needed for {args.trainer} (the run to export)")
    model = load_prompted_model(cls, cfg, clip_model, classnames, args.model_dir, args.load_epoch)
    model.to(device).text_chunk_classes = args.chunk_size
    return model.all_text_features().float().cpu(), f"{args.trainer} prompt from {args.model_dir}"


def output_prefix(path):
    root, extension = os.path.splitext(path)
    return root if extension in (".npy", ".pt") else path


def main(argv=None):
    args = build_parser().parse_args(argv)
    started = time.time()
    try:
        if args.chunk_size < 1:
            raise ExportError("--chunk-size must be at least 1")
        classnames = read_classnames(args.classnames)
        cfg = build_cfg(args)
        features, source = encode(args, cfg, classnames)
    except Exception as error:  # noqa: BLE001  (only input errors are shortened)
        if not (is_user_error(error) or isinstance(error, (OSError, ConfigError))):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    prefix = output_prefix(args.output)
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    np.save(prefix + ".npy", features.numpy())
    torch.save(features, prefix + ".pt")
    print(f"Wrote {prefix}.npy and {prefix}.pt: {features.shape[0]} classes x {features.shape[1]} dims, "
          f"float32, L2-normalised ({source}; {time.time() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

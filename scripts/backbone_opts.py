"""The config overrides that move a sweep's recipe onto another CLIP (``BACKBONE=...``).

    python3 scripts/backbone_opts.py tiny-vit configs/trainers/RPP/vit_b16_in21k.yaml
    MODEL.BACKBONE.NAME
    tiny-vit
    INPUT.SIZE
    (32, 32)
    TRAINER.RPP.PROMPT_DEPTH_TEXT
    3
    ...

One word per line (scripts/common.sh reads them into an array). The input size is the
backbone's own; a prompt depth of the recipe's trainer deeper than the backbone's layers
on that side (the ViT-B/16 recipes prompt 9 or 12 of 12 layers; tiny-vit has 3) is
capped at the layer count, so everything else of the recipe runs unchanged. An unknown
backbone or a bad config ends with one ``error:`` line and exit status 2.
"""
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tower_layers(model_cfg):
    """{"TEXT": layers, "VISION": layers or None (a ResNet tower has no prompt layers)}."""
    vision = model_cfg["vision_cfg"]["layers"]
    return {"TEXT": int(model_cfg["text_cfg"]["layers"]),
            "VISION": vision if isinstance(vision, int) else None}


def capped_depths(cfg, trainer_nodes, layers):
    """[(dotted key, capped value)] for the depth keys of ``trainer_nodes`` deeper than ``layers``."""
    caps = []
    for node in trainer_nodes:
        for key, value in cfg.TRAINER[node].items():
            if "DEPTH" not in key or not isinstance(value, int):
                continue
            sides = [side for side in layers if side in key] or list(layers)  # MaPLe: both towers
            limits = [layers[side] for side in sides if layers[side] is not None]
            if limits and value > min(limits):
                caps.append((f"TRAINER.{node}.{key}", min(limits)))
    return caps


def backbone_opts(backbone, config_file):
    from engine import get_cfg_default
    from engine.config_errors import merge_config_file
    from engine.config_extension import extend_cfg
    from models.backbones import parse_backbone_name

    spec = parse_backbone_name(backbone)
    size = spec.model_cfg["vision_cfg"]["image_size"]
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    cfg = merge_config_file(extend_cfg(get_cfg_default()), config_file)
    with open(config_file, encoding="utf-8") as f:
        recipe = (yaml.safe_load(f) or {}).get("TRAINER") or {}
    nodes = [node for node, keys in recipe.items() if isinstance(keys, dict) and node in cfg.TRAINER]
    opts = [("MODEL.BACKBONE.NAME", backbone), ("INPUT.SIZE", f"({size}, {size})")]
    return opts + capped_depths(cfg, nodes, tower_layers(spec.model_cfg))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python3 scripts/backbone_opts.py BACKBONE TRAINER_CONFIG.yaml", file=sys.stderr)
        return 2
    from engine.user_errors import is_user_error

    try:
        opts = backbone_opts(*argv)
    except Exception as error:  # noqa: BLE001 - user errors become one line, bugs keep the traceback
        if not is_user_error(error):
            raise
        print(f"error: BACKBONE={argv[0]}: {error}", file=sys.stderr)
        return 2
    for key, value in opts:
        print(key)
        print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())

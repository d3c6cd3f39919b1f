"""Compare our CoOp/CoCoOp/KgCoOp/MaPLe/IVLP/VPT/PromptSRC with the authors' code, in fp32.

Both implementations get the same tiny CLIP (a seeded random open_clip model whose
widths the official code accepts), the same class names, the same prompt parameters and
the same images. Printed: whether they tokenize and initialise alike (VPT, whose text is
fixed: whether the class text features agree; KgCoOp: also its hand-crafted class
features), the largest logit and training-loss differences (KgCoOp's loss: CE + W times
its knowledge-guided term), and the largest difference of every prompt parameter after
one identical SGD step on that loss. PromptSRC instead runs the official
``PromptSRC.forward_backward`` itself for two epochs of one batch each (MAX_EPOCH 2, GPA
N(1, 1)) next to our ``training_step`` / ``loss_terms`` / ``finish_batch``: printed are
the total loss of each step (CE + the L1 and KL terms against the frozen CLIP), the
prompts after the first SGD step, and the prompts after the second, which both sides then
replace by their Gaussian aggregate. Exit status 1 when a difference exceeds --tolerance.

The official code is never copied here: point --official at a clone outside this repo
(CoOp and CoCoOp: github.com/KaiyangZhou/CoOp; KgCoOp: the KgCoOp/ folder of
github.com/htyao89/KgCoOp; MaPLe, IVLP and VPT:
github.com/muzairkhattak/multimodal-prompt-learning; PromptSRC:
github.com/muzairkhattak/PromptSRC). Its trainers import Dassl, so run
this with Dassl importable, e.g. a Dassl.pytorch checkout on PYTHONPATH:

    PYTHONPATH=PATH/TO/Dassl.pytorch python3 tools/compare_official.py coop --official PATH/TO/CoOp
    (cocoop: the same, with the CoOp repository; coop --all-coop-variants: every CoOp layout)
    PYTHONPATH=PATH/TO/Dassl.pytorch python3 tools/compare_official.py kgcoop \
        --official PATH/TO/KgCoOp-repository/KgCoOp
    PYTHONPATH=PATH/TO/Dassl.pytorch python3 tools/compare_official.py maple \
        --official PATH/TO/multimodal-prompt-learning
    (ivlp, vpt: the same, with the MaPLe repository)
    PYTHONPATH=PATH/TO/Dassl.pytorch python3 tools/compare_official.py promptsrc \
        --official PATH/TO/PromptSRC

Adjustments that make the official code run in fp32 on a CPU and a tiny model, each
stated in the output: (1) its CLIP is built with the class constructor, as its
``build_model`` derives the number of heads as width // 64 and we pass the same shapes
explicitly; (2) for MaPLe, IVLP, VPT and PromptSRC, whose prompt paths call ``.half()``
on tensors (MaPLe also on ``proj``) because they only run in fp16, those casts are made
no-ops while the official model is built and run, and the model is cast to fp32; (3) for
VPT, whose forward moves its fixed text features with ``.cuda()``, that call is a no-op;
(4) for KgCoOp, whose prompt learner loads a second CLIP (downloaded) for its
hand-crafted prompts and moves it and them with ``.cuda()``, that CLIP is a copy of the
shared tiny one and ``.cuda()`` a no-op; KgCoOp runs with DATASET.NAME
DescribableTextures, the one dataset whose hand-crafted prompt is KgCoOp's own rather
than CoOp's; (5) for PromptSRC, whose prompt learner loads its frozen CLIPs itself
(``load_clip_to_cpu(cfg, True)``, a download) and moves tensors and modules with
``.cuda()``, the loader returns an official CLIP without prompts holding the same tiny
weights, and ``.cuda()`` (tensor and module) is a no-op; its ``forward_backward`` runs on
a stand-in for its trainer that holds the model, an SGD optimizer over the same prompts,
the config and the Gaussian weights its ``build_model`` computes (with its
``get_gauss``).
"""
import argparse
import contextlib
import copy
import functools
import importlib.util
import os
import sys
import types

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Ours register into the bundled registries; the official trainers register into Dassl's
# (the names CoOp and MaPLe would clash in one registry).
os.environ.setdefault("RPP_ENGINE", "bundled")
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

CLASSNAMES = ["dog", "sea_lion", "Boeing 737-800", "forest", "red striped triangle"]
BACKBONE = "compare-vit"
# Widths: multiples of 64 (the official ViT derives heads as width // 64). MaPLe's
# official prompt learner hard-codes text width 512 and vision width 768.
# CoCoOp's meta-net is Linear(64, 64 // 16 = 4) -> ReLU -> Linear(4, 128).
SHAPES = {
    "coop": dict(embed_dim=64, vision_width=128, text_width=128, layers=3),
    "cocoop": dict(embed_dim=64, vision_width=128, text_width=128, layers=3),
    "kgcoop": dict(embed_dim=64, vision_width=128, text_width=128, layers=3),
    "maple": dict(embed_dim=64, vision_width=768, text_width=512, layers=4),
    "ivlp": dict(embed_dim=64, vision_width=128, text_width=128, layers=4),
    "vpt": dict(embed_dim=64, vision_width=128, text_width=128, layers=4),
    "promptsrc": dict(embed_dim=64, vision_width=128, text_width=128, layers=4),
}
OFFICIAL_TRAINER_FILES = {"coop": "coop.py", "cocoop": "cocoop.py", "kgcoop": "kgcoop.py",
                          "maple": "maple.py", "ivlp": "independentVL.py", "vpt": "vpt.py",
                          "promptsrc": "promptsrc.py"}
OFFICIAL_USES_HALF_CASTS = {"maple", "ivlp", "vpt", "promptsrc"}
OFFICIAL_USES_CUDA_CALLS = {"vpt", "kgcoop", "promptsrc"}
KGCOOP_DATASET = "DescribableTextures"  # KgCoOp's template differs from CoOp's here only
# Methods whose official code keeps (some) prompts in its CLIP's layers, named ``VPT*``.
OFFICIAL_PROMPTS_IN_CLIP = {"ivlp", "vpt", "promptsrc"}
# Methods whose official prompt learner builds IVLP prompts from these TRAINER nodes.
IVLP_NODES = {"ivlp": "IVLP", "promptsrc": "PROMPTSRC"}
IMAGE_SIZE, PATCH_SIZE, CONTEXT_LENGTH, VOCAB_SIZE = 32, 8, 77, 49408
SGD = dict(lr=0.0035, momentum=0.9, weight_decay=5e-4)


def register_tiny_backbone(shape):
    from models.backbones import TINY_BACKBONES

    TINY_BACKBONES[BACKBONE] = dict(
        embed_dim=shape["embed_dim"],
        quick_gelu=True,  # OpenAI's CLIP (and its vendored copies) use QuickGELU
        vision_cfg=dict(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, width=shape["vision_width"],
                        layers=shape["layers"], head_width=64),
        text_cfg=dict(context_length=CONTEXT_LENGTH, vocab_size=VOCAB_SIZE,
                      width=shape["text_width"], heads=shape["text_width"] // 64,
                      layers=shape["layers"]),
    )


@functools.lru_cache(maxsize=None)  # a second import would register the trainer twice in Dassl
def import_official(official_dir, trainer_file):
    """The official ``clip`` package (as ``clip``) and trainer module (under another name)."""
    if "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None:
        # Some vendored clip.py versions import pkg_resources (gone from current
        # setuptools) only for ``pkg_resources.packaging.version`` in a torch version check.
        import packaging
        import packaging.version  # noqa: F401  (makes packaging.version an attribute)

        stub = types.ModuleType("pkg_resources")
        stub.packaging = packaging
        sys.modules["pkg_resources"] = stub
    clip_dir = os.path.join(official_dir, "clip")
    spec = importlib.util.spec_from_file_location(
        "clip", os.path.join(clip_dir, "__init__.py"), submodule_search_locations=[clip_dir])
    clip_package = importlib.util.module_from_spec(spec)
    sys.modules["clip"] = clip_package
    spec.loader.exec_module(clip_package)
    # The trainer runs as a module of a package "official_trainers" (its own
    # __init__.py, which imports every trainer, is not run), so that its relative
    # imports (PromptSRC's ``.imagenet_templates``) find their files.
    if "official_trainers" not in sys.modules:
        package = types.ModuleType("official_trainers")
        package.__path__ = [os.path.join(official_dir, "trainers")]
        sys.modules["official_trainers"] = package
    module_name = "official_trainers." + os.path.splitext(trainer_file)[0]
    spec = importlib.util.spec_from_file_location(
        module_name, os.path.join(official_dir, "trainers", trainer_file))
    trainer_module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = trainer_module
    spec.loader.exec_module(trainer_module)
    import clip.model as official_model

    return official_model, trainer_module


COOP_VARIANTS = [  # (CTX_INIT, CSC, CLASS_TOKEN_POSITION): every combination CoOp offers
    (ctx_init, csc, position)
    for ctx_init in ("a photo of a", "")
    for csc in (False, True)
    for position in ("end", "middle", "front")
]


def build_cfg(method, coop_variant=COOP_VARIANTS[0]):
    from engine import get_cfg_default
    from engine.config_extension import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    cfg.MODEL.BACKBONE.NAME = BACKBONE
    cfg.INPUT.SIZE = (IMAGE_SIZE, IMAGE_SIZE)
    if method == "coop":
        opts = cfg.TRAINER.COOP
        opts.N_CTX = 4
        opts.CTX_INIT, opts.CSC, opts.CLASS_TOKEN_POSITION = coop_variant
    elif method == "cocoop":
        opts = cfg.TRAINER.COCOOP
        opts.N_CTX, opts.CTX_INIT = 4, "a photo of a"
    elif method == "kgcoop":  # the official recipe; its code reads TRAINER.COOP, ours KGCOOP
        cfg.DATASET.NAME = KGCOOP_DATASET
        cfg.TRAINER.COCOOP.PREC = "fp32"  # the official KgCoOp halves its unused meta-net on fp16
        for opts in (cfg.TRAINER.COOP, cfg.TRAINER.KGCOOP):
            opts.N_CTX, opts.CTX_INIT, opts.PREC, opts.W = 4, "a photo of a", "fp32", 8.0
    elif method == "maple":
        opts = cfg.TRAINER.MAPLE
        opts.N_CTX, opts.CTX_INIT, opts.PROMPT_DEPTH = 2, "a photo of a", 3
    elif method == "vpt":  # the official VPT's text is "a photo of a {class}." (our default)
        opts = cfg.TRAINER.VPT
        opts.N_CTX_VISION, opts.PROMPT_DEPTH_VISION, opts.CTX_INIT = 2, 3, "a photo of a"
    else:  # IVLP, PromptSRC
        opts = cfg.TRAINER[IVLP_NODES[method]]
        opts.N_CTX_TEXT, opts.N_CTX_VISION, opts.CTX_INIT = 2, 2, "a photo of a"
        opts.PROMPT_DEPTH_TEXT, opts.PROMPT_DEPTH_VISION = 3, 3
        if method == "promptsrc":  # two epochs of one step; GPA weights N(1, 1): 0.62, 0.38
            cfg.OPTIM.MAX_EPOCH = 2
            opts.GPA_MEAN, opts.GPA_STD = 1, 1
    opts.PREC = "fp32"
    return cfg


def official_clip(official_model, ours, shape, cfg, method, prompts=True):
    """The official CLIP holding our weights; ``prompts=False``: without prompts (as the
    official PromptSRC loads its frozen CLIP)."""
    args = [shape["embed_dim"], IMAGE_SIZE, shape["layers"], shape["vision_width"], PATCH_SIZE,
            CONTEXT_LENGTH, VOCAB_SIZE, shape["text_width"], shape["text_width"] // 64,
            shape["layers"]]
    # what the official trainers' load_clip_to_cpu pass
    if method == "maple":
        args.append({"trainer": "MaPLe", "vision_depth": 0, "language_depth": 0,
                     "vision_ctx": 0, "language_ctx": 0, "maple_length": cfg.TRAINER.MAPLE.N_CTX})
    elif method in IVLP_NODES and not prompts:
        args.append({"trainer": "IVLP", "vision_depth": 0, "language_depth": 0,
                     "vision_ctx": 0, "language_ctx": 0})
    elif method in IVLP_NODES:
        opts = cfg.TRAINER[IVLP_NODES[method]]
        args.append({"trainer": "IVLP", "vision_depth": opts.PROMPT_DEPTH_VISION,
                     "language_depth": opts.PROMPT_DEPTH_TEXT, "vision_ctx": opts.N_CTX_VISION,
                     "language_ctx": opts.N_CTX_TEXT})
    elif method == "vpt":
        opts = cfg.TRAINER.VPT
        args.append({"trainer": "VPT", "vision_depth": opts.PROMPT_DEPTH_VISION,
                     "vision_ctx": opts.N_CTX_VISION, "language_depth": 0, "language_ctx": 0})
    model = official_model.CLIP(*args)
    # Strict but for the prompts that the official IVLP/VPT blocks own (copied later).
    missing, unexpected = model.load_state_dict(ours.state_dict(), strict=False)
    if unexpected or [key for key in missing if "VPT" not in key]:
        raise SystemExit(f"CLIP state dicts differ: missing {missing}, unexpected {unexpected}")
    return model.float().eval()


@contextlib.contextmanager
def tensor_method_is_a_no_op(name):
    """Make ``Tensor.<name>()`` return the tensor itself (the official code's fp16-only
    ``.half()`` casts, or VPT's ``.cuda()`` on a CPU)."""
    original = getattr(torch.Tensor, name)
    setattr(torch.Tensor, name, lambda self, *args, **kwargs: self)
    try:
        yield
    finally:
        setattr(torch.Tensor, name, original)


@contextlib.contextmanager
def official_adjustments(method):
    """The no-op casts the official ``method`` needs while it is built and run."""
    with contextlib.ExitStack() as stack:
        if method in OFFICIAL_USES_HALF_CASTS:
            stack.enter_context(tensor_method_is_a_no_op("half"))
        if method in OFFICIAL_USES_CUDA_CALLS:
            stack.enter_context(tensor_method_is_a_no_op("cuda"))
            stack.enter_context(module_cuda_is_a_no_op())
        yield


@contextlib.contextmanager
def module_cuda_is_a_no_op():
    original = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = original


def our_prompt_parameters(model):
    return {f"prompt_learner.{name}": param for name, param in model.prompt_learner.named_parameters()}


def official_prompt_parameters(model, method):
    """What the official trainers train: the prompt learner, plus (IVLP, VPT, PromptSRC)
    every parameter named ``VPT*``, which their CLIP blocks own; KgCoOp's trains only
    ``ctx`` (its prompt learner also holds an unused meta-net and bias vectors)."""
    if method == "kgcoop":
        return {name: param for name, param in model.named_parameters() if "ctx" in name}
    return {name: param for name, param in model.named_parameters()
            if (name.startswith("prompt_learner.") or "VPT" in name)
            and "ZS_image_encoder" not in name}  # PromptSRC's frozen CLIP lives in its prompt learner


def official_name(method, ours):
    """The official name of our prompt parameter ``ours``. Ours keep every prompt in the
    prompt learner; the official IVLP and VPT keep the deeper ones (and the first vision
    one) in the CLIP layers that use them."""
    if method not in OFFICIAL_PROMPTS_IN_CLIP:
        return ours
    parts = ours.split(".")
    if parts[1] == "deep_text_prompts":  # the prompts of text layers 1, 2, ...
        return f"text_encoder.transformer.resblocks.{int(parts[2]) + 1}.VPT_shallow"
    if parts[1] == "deep_vision_prompts":
        return f"image_encoder.transformer.resblocks.{int(parts[2]) + 1}.VPT_shallow"
    if parts[1] == "vision_ctx":
        return "image_encoder.VPT"
    return ours


def max_diff(a, b):
    return (a.detach().float() - b.detach().float()).abs().max().item()


def sgd_step(params, training_loss):
    """One SGD step of ``params`` on ``training_loss()`` -> (logits, loss); returns both."""
    optimizer = torch.optim.SGD(list(params.values()), **SGD)
    optimizer.zero_grad()
    logits, loss = training_loss()
    loss.backward()
    optimizer.step()
    return logits, loss


def cross_entropy_loss(model, images, labels):
    logits = model(images)
    return logits, F.cross_entropy(logits, labels)


def our_kgcoop_loss(model, cfg, hand_crafted, images, labels):
    """Our KgCoOp training loss: CE + W * the knowledge-guided term on the features the
    logits came from (what KgCoOp.loss_terms adds to CoOp's)."""
    from trainers.kgcoop import knowledge_guided_term

    outputs = model(images, return_features=True)
    term = knowledge_guided_term(outputs.text_features, hand_crafted)
    return outputs.logits, F.cross_entropy(outputs.logits, labels) + cfg.TRAINER.KGCOOP.W * term


def official_kgcoop_loss(model, cfg, images, labels):
    """The official KgCoOp's: its forward returns (logits, 1 - mean cos), its trainer adds
    TRAINER.COOP.W times the latter to the CE."""
    logits, score = model(images)
    return logits, F.cross_entropy(logits, labels) + cfg.TRAINER.COOP.W * score


def compare_promptsrc_training(cfg, ours, theirs, ours_clip, official_trainer, our_params,
                               their_params, pairs, images, labels, casts, check):
    """Two epochs of one step each: our PromptSRC's training step, loss terms and
    epoch end (GPA) against the official ``PromptSRC.forward_backward``."""
    import collections

    import numpy as np

    from trainers.promptsrc import PromptSRC

    with torch.no_grad():  # logits in evaluation mode, before any step
        our_logits = ours(images)
        with casts():
            their_logits = theirs.eval()(images)
    check(f"logits {tuple(our_logits.shape)}", max_diff(our_logits, their_logits))

    # Ours: the trainer's own methods on an instance without a dataset or a loop.
    trainer = PromptSRC.__new__(PromptSRC)
    trainer.cfg, trainer.model, trainer.device = cfg, ours.train(), torch.device("cpu")
    trainer.dm = types.SimpleNamespace(dataset=types.SimpleNamespace(classnames=CLASSNAMES))
    trainer._models, trainer._optims, trainer._scheds = (collections.OrderedDict() for _ in range(3))
    trainer.max_epoch, trainer.num_batches, trainer.batch_idx = cfg.OPTIM.MAX_EPOCH, 1, 0
    trainer.build_extra_models(ours_clip)
    our_optim = torch.optim.SGD(list(our_params.values()), **SGD)

    # Theirs: forward_backward on a stand-in holding what its build_model sets up.
    official = official_trainer.PromptSRC
    opts = cfg.TRAINER.PROMPTSRC
    stand_in = types.SimpleNamespace(
        cfg=cfg, model=theirs.train(), optim=torch.optim.SGD(list(their_params.values()), **SGD),
        scaler=None, device=torch.device("cpu"), batch_idx=0, num_batches=1, step_counter=1,
        previous_model_gpa=None, update_lr=lambda: None)
    for name in ("parse_batch_train", "state_dict_weighting", "state_dict_add", "get_gauss"):
        setattr(stand_in, name, functools.partial(getattr(official, name), stand_in))
    gauss = stand_in.get_gauss(opts.GPA_MEAN, opts.GPA_STD)
    stand_in.gauss = np.array([gauss(a) for a in range(1, cfg.OPTIM.MAX_EPOCH + 1)])
    stand_in.gauss = stand_in.gauss / sum(stand_in.gauss)

    previous = {name: param.detach().clone() for name, param in our_params.items()}
    for epoch in range(cfg.OPTIM.MAX_EPOCH):
        trainer.epoch = epoch
        step = trainer.training_step(images, labels)
        terms = trainer.loss_terms(step)
        our_loss = sum(terms.values())
        our_optim.zero_grad()
        our_loss.backward()
        our_optim.step()
        trainer.finish_batch()  # the epoch's end: GPA (after the last epoch: its aggregate)
        with casts():
            their_loss = official.forward_backward(stand_in, {"img": images, "label": labels})["loss"]
        shown = ", ".join(f"{name} {value.item():.4g}" for name, value in terms.items())
        check(f"epoch {epoch + 1}: total loss ({shown})", abs(our_loss.item() - their_loss))
        last = epoch + 1 == cfg.OPTIM.MAX_EPOCH
        when = "after the last step and GPA" if last else f"after SGD step {epoch + 1}"
        for name, official_name_ in sorted(pairs.items()):
            moved = max_diff(our_params[name], previous[name])  # so a frozen prompt cannot pass
            label = f"{name} (official {official_name_})"
            check(f"{label} {when} (which moved it by up to {moved:.3g})",
                  max_diff(our_params[name], their_params[official_name_]) if moved > 0 else 1.0)
        previous = {name: param.detach().clone() for name, param in our_params.items()}


def compare(method, official_dir, tolerance, coop_variant=COOP_VARIANTS[0]):
    from models.clip_loader import load_clip

    shape = SHAPES[method]
    register_tiny_backbone(shape)
    official_model, official_trainer = import_official(official_dir, OFFICIAL_TRAINER_FILES[method])
    cfg = build_cfg(method, coop_variant)

    ours_clip = load_clip(BACKBONE, pretrained=False)
    theirs_clip = official_clip(official_model, ours_clip, shape, cfg, method)
    if method == "coop":
        from trainers.coop import CoOp as OurTrainer
    elif method == "cocoop":
        from trainers.cocoop import CoCoOp as OurTrainer
    elif method == "kgcoop":
        from trainers.kgcoop import KgCoOp as OurTrainer

        # its prompt learner loads CLIP again for the hand-crafted prompts: the same one
        official_trainer.load_clip_to_cpu = lambda cfg: copy.deepcopy(theirs_clip)
    elif method == "maple":
        from trainers.maple import MaPLe as OurTrainer
    elif method == "vpt":
        from trainers.vpt import VPT as OurTrainer
    elif method == "promptsrc":
        from trainers.promptsrc import PromptSRC as OurTrainer

        def frozen_official_clip(cfg, zero_shot_model=False):  # the official loader's stand-in
            assert zero_shot_model, "the official PromptSRC loads only its frozen CLIP here"
            return official_clip(official_model, ours_clip, shape, cfg, method, prompts=False)

        official_trainer.load_clip_to_cpu = frozen_official_clip
    else:
        from trainers.ivlp import IVLP as OurTrainer
    # Our trainers get the class names from ClipTrainer.classnames, which turns "_" into
    # spaces first (the official prompt learners do that inside).
    our_classnames = [name.replace("_", " ") for name in CLASSNAMES]
    torch.manual_seed(0)  # our random prompt initialisations (copied to theirs): fixed numbers
    ours = OurTrainer.build_prompted_model(cfg, ours_clip, our_classnames).float().eval()
    casts = functools.partial(official_adjustments, method)
    with casts():
        theirs = official_trainer.CustomCLIP(cfg, CLASSNAMES, theirs_clip).float().eval()
    our_params = our_prompt_parameters(ours)
    their_params = official_prompt_parameters(theirs, method)
    for model, trained in ((ours, our_params), (theirs, their_params)):  # as each trainer does
        for name, param in model.named_parameters():
            param.requires_grad_(name in trained)

    report, worst = [], 0.0

    def check(label, value, limit=tolerance):
        nonlocal worst
        worst = max(worst, value)
        report.append(f"{'ok  ' if value <= limit else 'FAIL'} {label}: max |diff| = {value:.3g}")

    if method == "vpt":  # fixed text: the official code encodes it once, at construction
        with torch.no_grad():
            their_text = F.normalize(theirs.embeddings.return_fixed_embeddings().float(), dim=-1)
            check('fixed class text features ("a photo of a {class}.")',
                  max_diff(ours.all_text_features(), their_text))
    else:
        same_tokens = torch.equal(ours.prompt_learner.tokenized_prompts.cpu(),
                                  theirs.prompt_learner.tokenized_prompts.cpu())
        check("tokenized class prompts (ours vs official clip.tokenize)",
              0.0 if same_tokens else 1.0)
    if method == "kgcoop":  # our trainer encodes them once per run, as this does
        our_hand_crafted = OurTrainer.hand_crafted_text_features(cfg, ours_clip, our_classnames)
        check(f'hand-crafted class text features ("{OurTrainer.hand_crafted_template(cfg)}")',
              max_diff(our_hand_crafted, F.normalize(theirs.ori_embedding.float(), dim=-1)))
    # Random initialisations differ (they are copied below); word initialisations must not.
    ctx_from_words = method != "vpt" and (method != "coop" or coop_variant[0])
    if ctx_from_words:
        check('initial ctx from "a photo of a"',
              max_diff(ours.prompt_learner.ctx, theirs.prompt_learner.ctx))

    # Copy every prompt parameter (random initialisations differ) from ours to theirs.
    pairs = {name: official_name(method, name) for name in our_params}
    if sorted(pairs.values()) != sorted(their_params):
        raise SystemExit(f"prompt parameters differ: ours {sorted(pairs.values())}, "
                         f"official {sorted(their_params)}")
    with torch.no_grad():
        for name, official in pairs.items():
            their_params[official].copy_(our_params[name])

    generator = torch.Generator().manual_seed(0)
    images = torch.randn(4, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    labels = torch.tensor([0, 1, 2, 4])
    if method == "promptsrc":
        compare_promptsrc_training(cfg, ours, theirs, ours_clip, official_trainer, our_params,
                                   their_params, pairs, images, labels, casts, check)
        return finish_report(method, cfg, official_dir, tolerance, shape, report, worst)
    before = {name: param.detach().clone() for name, param in our_params.items()}
    if method == "kgcoop":
        our_loss = functools.partial(our_kgcoop_loss, ours, cfg, our_hand_crafted, images, labels)
        their_loss = functools.partial(official_kgcoop_loss, theirs, cfg, images, labels)
    else:
        our_loss = functools.partial(cross_entropy_loss, ours, images, labels)
        their_loss = functools.partial(cross_entropy_loss, theirs, images, labels)
    our_logits, our_value = sgd_step(our_params, our_loss)
    with casts():
        their_logits, their_value = sgd_step(their_params, their_loss)
    check(f"logits {tuple(our_logits.shape)}", max_diff(our_logits, their_logits))
    check(f"training loss ({our_value.item():.6g})", max_diff(our_value, their_value))
    for name, official in sorted(pairs.items()):
        step = max_diff(our_params[name], before[name])  # so a zero gradient cannot pass
        label = name if official == name else f"{name} (official {official})"
        check(f"{label} after one SGD step (which moved it by up to {step:.3g})",
              max_diff(our_params[name], their_params[official]) if step > 0 else 1.0)

    variant = ""
    if method == "coop":
        variant = " [CTX_INIT {!r}, CSC {}, CLASS_TOKEN_POSITION {}]".format(*coop_variant)
    return finish_report(method, cfg, official_dir, tolerance, shape, report, worst, variant)


def finish_report(method, cfg, official_dir, tolerance, shape, report, worst, variant=""):
    print(f"== {method}{variant}: ours vs {official_dir} (fp32, tolerance {tolerance:g})")
    print("   CLIP: open_clip, seeded random, vision width {vision_width}, text width "
          "{text_width}, {layers} layers, {embed_dim}-d embedding; the official CLIP built by "
          "its constructor with the same shapes holds our weights".format(**shape))
    if method in OFFICIAL_USES_HALF_CASTS:
        print("   official model: .half() casts made no-ops and the model cast to fp32")
    if method in OFFICIAL_USES_CUDA_CALLS:
        print("   official model: .cuda() made a no-op (this runs on the CPU)")
    if method == "kgcoop":
        print("   official model: its second CLIP (hand-crafted prompts) is a copy of the shared "
              f"one; DATASET.NAME {KGCOOP_DATASET}, W {cfg.TRAINER.KGCOOP.W:g}")
    if method == "promptsrc":
        print("   official frozen CLIP: its load_clip_to_cpu(cfg, True) returns the official CLIP "
              "without prompts holding the same weights; its forward_backward runs on a stand-in "
              "trainer (model, SGD over the same prompts, cfg, Gaussian weights from its get_gauss)")
    print("\n".join("   " + line for line in report))
    return worst <= tolerance


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("method", choices=sorted(SHAPES))
    parser.add_argument("--official", required=True, help="a clone of the official repository")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    parser.add_argument("--all-coop-variants", action="store_true",
                        help="coop: every CTX_INIT / CSC / CLASS_TOKEN_POSITION combination")
    args = parser.parse_args(argv)
    official = os.path.abspath(args.official)
    if args.method == "coop" and args.all_coop_variants:
        results = [compare("coop", official, args.tolerance, variant) for variant in COOP_VARIANTS]
        print(f"== coop: {sum(results)} of {len(results)} variants agree")
        return 0 if all(results) else 1
    return 0 if compare(args.method, official, args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())

"""CoOp (Zhou et al., IJCV 2022): learned context vectors in front of each class name."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from engine import TRAINER_REGISTRY, build_lr_scheduler, build_optimizer, compute_accuracy
from engine.config_extension import add_node, config_extension
from models.class_prompts import ClassPromptAssembler
from models.prompt_init import init_context
from models.text_encoder import TextEncoder
from trainers.clip_trainer import ClipTrainer


@config_extension
def add_coop_keys(cfg):
    add_node(cfg, "TRAINER.COOP", {
        "N_CTX": 16,  # number of context vectors
        "CSC": False,  # class-specific context
        "CTX_INIT": "",  # initialisation words, e.g. "a photo of a"
        "PREC": "fp16",  # fp16 | fp32 | amp | bf16
        "CLASS_TOKEN_POSITION": "end",  # end | middle | front
    })


class CoOpPromptLearner(nn.Module):
    """The learned context (the only trainable tensor) and the per-class prompt layout."""

    def __init__(self, clip_model, classnames, n_ctx, ctx_init, csc, position):
        super().__init__()
        # As in CoOp, word initialisation gives one shared context whatever CSC says.
        vectors, prompt_prefix = init_context(
            clip_model, n_ctx, ctx_init, n_cls=len(classnames) if csc and not ctx_init else None
        )
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {vectors.shape[-2]}")
        self.ctx = nn.Parameter(vectors)
        self.assembler = ClassPromptAssembler(
            clip_model, classnames, prompt_prefix, vectors.shape[-2], position
        )

    @property
    def tokenized_prompts(self):
        return self.assembler.tokenized_prompts

    def forward(self):
        return self.assembler(self.ctx)


class PromptedCLIP(nn.Module):
    """Frozen CLIP + a prompt learner; logits = scale * cos(image, class prompt)."""

    def __init__(self, clip_model, prompt_learner):
        super().__init__()
        self.prompt_learner = prompt_learner
        self.image_encoder = clip_model.visual
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self._cached_text_features = None

    def text_features(self):
        # Under no_grad (evaluation) the prompts cannot change within a test run, so the
        # class features are computed once; ClipTrainer.test clears the cache per run.
        caching = not torch.is_grad_enabled()
        if caching and self._cached_text_features is not None:
            return self._cached_text_features
        prompts = self.prompt_learner()
        features = self.text_encoder(prompts, self.prompt_learner.tokenized_prompts)
        features = F.normalize(features.float(), dim=-1)
        if caching:
            self._cached_text_features = features
        return features

    def clear_text_feature_cache(self):
        self._cached_text_features = None

    def forward(self, image):
        image_features = F.normalize(self.image_encoder(image).float(), dim=-1)
        return self.logit_scale.exp().float() * image_features @ self.text_features().t()


@TRAINER_REGISTRY.register()
class CoOp(ClipTrainer):
    config_node = "COOP"

    def check_cfg(self, cfg):
        assert cfg.TRAINER.COOP.PREC in ["fp16", "fp32", "amp", "bf16"]

    def build_model(self):
        cfg = self.cfg
        opts = cfg.TRAINER.COOP
        clip_model = self.load_frozen_clip()
        print("Building custom CLIP")
        prompt_learner = CoOpPromptLearner(
            clip_model, self.classnames, opts.N_CTX, opts.CTX_INIT, opts.CSC,
            opts.CLASS_TOKEN_POSITION,
        ).to(self.device)
        self.model = PromptedCLIP(clip_model, prompt_learner)
        print("Turning off gradients in both the image and the text encoder")
        for name, param in self.model.named_parameters():
            param.requires_grad_(name.startswith("prompt_learner."))
        self.optim = build_optimizer(self.model.prompt_learner, cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        self.register_model("prompt_learner", self.model.prompt_learner, self.optim, self.sched)
        self.scaler = self.make_grad_scaler()

    def forward_backward(self, batch):
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            output = self.model(image)
        loss = F.cross_entropy(output.float(), label)
        self.step_with_scaler(loss, self.scaler)
        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        self.finish_batch()
        return summary

    def model_inference(self, image):
        with self.autocast():
            return self.model(image).float()

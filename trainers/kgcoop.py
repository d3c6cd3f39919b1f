"""KgCoOp (Yao et al., CVPR 2023): CoOp whose learned class text is kept near frozen CLIP's
hand-crafted class text.

Training loss = CE + W * (1 - mean over the step's classes of cos(t_c, h_c)), where t_c is
the learned prompt's class feature (the one the step's logits used: no second text pass)
and h_c the frozen CLIP's feature of the dataset's hand-crafted prompt ("a photo of a {},
a type of pet."; ``models.templates.KGCOOP_TEMPLATES``), both L2-normalised, as the
official code computes it. The h_c are encoded once per run, for the classes being
trained (the base classes in base-to-new). Evaluation is CoOp's: plain logits, the
hand-crafted features are not used (nor built in an eval-only run).

The official recipe (configs/trainers/KgCoOp): CoOp's keys, N_CTX 4 and CTX_INIT
"a photo of a" (the official code turns any true CTX_INIT into those words), plus ``W``,
8.0 in every official script (its code's default is 1.0). The official code keeps these
keys in TRAINER.COOP; ours are TRAINER.KGCOOP, so CoOp's and KgCoOp's runs do not share
a node.
"""
import torch.nn.functional as F

from engine import TRAINER_REGISTRY
from engine.user_errors import UserError
from models.templates import KGCOOP_TEMPLATES, template_for
from models.zero_shot import class_text_features
from trainers.coop import CoOp

# CosineSimilarity's eps in the official code (it renormalises the already unit features).
COSINE_EPS = 1e-7


def knowledge_guided_term(text_features, hand_crafted_features):
    """1 - mean_c cos(text_c, hand_crafted_c): the distance of the learned class text
    features [n, E] from the hand-crafted ones [n, E] (row c of each: one class)."""
    cosine = F.cosine_similarity(text_features, hand_crafted_features, dim=-1, eps=COSINE_EPS)
    return 1.0 - cosine.mean()


@TRAINER_REGISTRY.register()
class KgCoOp(CoOp):
    config_node = "KGCOOP"
    config_keys = {
        "W": 8.0,  # weight of the knowledge-guided term (official TRAINER.COOP.W; 8.0 in its scripts)
    }
    hand_crafted_features = None  # [C, E] frozen CLIP features of the hand-crafted prompts

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        weight = self.options(cfg).W
        if not weight >= 0:
            raise UserError(f"{self.config_path()}.W must be >= 0 (the weight of the "
                            f"knowledge-guided term), got {weight}")

    @classmethod
    def hand_crafted_template(cls, cfg):
        return template_for(cfg.DATASET.NAME, KGCOOP_TEMPLATES)

    @classmethod
    def hand_crafted_text_features(cls, cfg, clip_model, classnames):
        """Normalised frozen-CLIP features [C, E] of the dataset's hand-crafted class prompts.
        (The official code encodes them with a second, fp16 copy of CLIP; ours is the frozen
        CLIP the prompts are trained on, at the run's precision.)"""
        return class_text_features(clip_model, classnames, [cls.hand_crafted_template(cfg)])

    def build_extra_models(self, clip_model):
        super().build_extra_models(clip_model)
        if self.evaluating_only:  # the term only shapes training
            return
        self.hand_crafted_features = self.hand_crafted_text_features(
            self.cfg, clip_model, self.classnames).to(self.device)
        print(f'Knowledge-guided term: W {self.options(self.cfg).W}, hand-crafted prompts '
              f'"{self.hand_crafted_template(self.cfg)}" for {len(self.classnames)} classes')

    def loss_terms(self, step):
        terms = super().loss_terms(step)
        reference = self.hand_crafted_features
        if step.class_ids is not None:  # class sampling: the step's classes only
            reference = reference[step.class_ids]
        weight = float(self.options(self.cfg).W)
        terms["loss_kg"] = weight * knowledge_guided_term(step.text_features, reference)
        return terms

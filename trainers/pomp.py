"""POMP (Ren et al., NeurIPS 2023): one CoOp-style text prompt pre-trained on many classes.

The prompt is CoOp's ("X X X X {class name}.", generic context, random init); what makes
it POMP is the recipe: class sampling with local correction on ImageNet-21K
(``TRAINER.CLASS_SAMPLING``: K = 1000, log base 10 as the released code), K_TRANSFORMS
augmented views per image, SGD with a constant warm-up epoch and cosine decay, and the
best epoch picked on the 21K val split (configs/trainers/POMP/). The trained prompt is
then evaluated zero-shot on other datasets with ``--eval-only --model-dir``.
"""
from engine import TRAINER_REGISTRY
from trainers.coop import CoOp


@TRAINER_REGISTRY.register()
class POMP(CoOp):
    # CoOp's keys; POMP keeps their defaults (generic context, random init, class name at
    # the end) except the context length.
    config_node = "POMP"
    config_keys = {"N_CTX": 4}  # context vectors (released prompts: 4 and 16)

    def build_model(self):
        super().build_model()
        if self.class_sampler is None and not self.evaluating_only:
            print("Note: TRAINER.CLASS_SAMPLING.K is 0, so every step encodes all classes "
                  "(POMP's recipe samples K = 1000; see configs/trainers/POMP/)")

"""The training step every prompt-learning baseline shares: CE on prompted-CLIP logits.

A subclass only says how to build its prompted model (``build_prompted_model``); this
base freezes everything but ``model.prompt_learner``, builds the optimizer and the
scheduler for it, registers it as the one checkpointed module, and trains with
cross-entropy under the configured precision.
"""
import torch.nn.functional as F

from engine import build_lr_scheduler, build_optimizer, compute_accuracy
from models.precision import check_precision
from trainers.clip_trainer import ClipTrainer


class PromptTrainer(ClipTrainer):
    def check_cfg(self, cfg):
        check_precision(cfg.TRAINER[self.config_node].PREC)

    def build_prompted_model(self, clip_model):
        """A module with a ``prompt_learner`` attribute whose forward gives logits."""
        raise NotImplementedError

    def build_model(self):
        clip_model = self.load_frozen_clip()
        print(f"Building custom CLIP ({type(self).__name__})")
        self.model = self.build_prompted_model(clip_model).to(self.device)
        print("Turning off gradients in both the image and the text encoder")
        for name, param in self.model.named_parameters():
            param.requires_grad_(name.startswith("prompt_learner."))
        trainable = [name for name, p in self.model.named_parameters() if p.requires_grad]
        print(f"Parameters to be updated: {trainable}")
        self.optim = build_optimizer(self.model.prompt_learner, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
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

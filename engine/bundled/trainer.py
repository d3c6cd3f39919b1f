"""Dassl's trainer classes: TrainerBase, SimpleTrainer, TrainerX and build_trainer.

The control flow, hook order, checkpoint layout and log lines follow Dassl 0.6.3
so trainers and log parsers written for it work unchanged. Checkpoints
(``engine.bundled.checkpointing``) and the epoch loop (``engine.bundled.training_loop``)
live in mixins that ClipTrainer also puts in front of a real Dassl's classes. Deliberate
differences from Dassl: checkpoints are written atomically with an exact-resume state
and read with ``weights_only=True``; ``load_model`` copes with checkpoints that have no
``val_result`` (Dassl issue #56) and falls back to the last epoch without a model-best;
``before_train`` resumes only when ``cfg.RESUME`` is set (Dassl also resumes from a
non-empty OUTPUT_DIR silently); multi-process evaluation is sharded.
"""
import datetime
import time
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from engine.bundled.checkpointing import Checkpointing
from engine.bundled.data import DataManager
from engine.bundled.evaluation import build_evaluator
from engine.bundled.registry import TRAINER_REGISTRY, check_availability
from engine.bundled.training_loop import TrainingLoop, begin_training
from engine.distributed import gather_predictions, get_world_size, is_distributed, is_main_process


def build_trainer(cfg):
    available = TRAINER_REGISTRY.registered_names()
    check_availability(cfg.TRAINER.NAME, available)
    if cfg.VERBOSE:
        print(f"Loading trainer: {cfg.TRAINER.NAME}")
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)


class TrainerBase(Checkpointing):
    """Model/optimizer/scheduler bookkeeping and the epoch loop skeleton; checkpoints come
    from ``Checkpointing``."""

    def __init__(self):
        self._models = OrderedDict()
        self._optims = OrderedDict()
        self._scheds = OrderedDict()
        self._writer = None

    def register_model(self, name="model", model=None, optim=None, sched=None):
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None:
            raise AttributeError("Cannot assign optim before super().__init__() call")
        if self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign sched before super().__init__() call")
        assert name not in self._models, "Found duplicate model names"
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names=None):
        names_real = list(self._models.keys())
        if names is None:
            return names_real
        if isinstance(names, str):
            names = [names]
        for name in names:
            assert name in names_real, f"Unknown model name {name!r}; registered: {names_real}"
        return names

    def set_model_mode(self, mode="train", names=None):
        for name in self.get_model_names(names):
            if mode == "train":
                self._models[name].train()
            elif mode in ("test", "eval"):
                self._models[name].eval()
            else:
                raise KeyError(mode)

    def update_lr(self, names=None):
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def detect_anomaly(self, loss):
        if not torch.isfinite(loss).all():
            raise FloatingPointError("Loss is infinite or NaN!")

    def init_writer(self, log_dir):
        if not is_main_process():  # tensorboard events come from rank 0 only
            return
        if self.__dict__.get("_writer") is None:
            from torch.utils.tensorboard import SummaryWriter

            print(f"Initialize tensorboard (log_dir={log_dir})")
            self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self):
        if self._writer is not None:
            self._writer.close()

    def write_scalar(self, tag, scalar_value, global_step=None):
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    def train(self, start_epoch, max_epoch):
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        self.before_train()
        for self.epoch in range(self.start_epoch, self.max_epoch):
            self.before_epoch()
            self.run_epoch()
            self.after_epoch()
        self.after_train()

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def run_epoch(self):
        raise NotImplementedError

    def test(self):
        raise NotImplementedError

    def parse_batch_train(self, batch):
        raise NotImplementedError

    def parse_batch_test(self, batch):
        raise NotImplementedError

    def forward_backward(self, batch):
        raise NotImplementedError

    def model_inference(self, input):
        raise NotImplementedError

    def model_zero_grad(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss):
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names=None):
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(self, loss, names=None):
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)


class SimpleTrainer(TrainerBase):
    """Builds data, model and evaluator from the config; evaluation and checkpoint policy."""

    def __init__(self, cfg):
        super().__init__()
        self.check_cfg(cfg)
        use_cuda = torch.cuda.is_available() and cfg.USE_CUDA
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg
        self.build_data_loader()
        self.build_model()
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -np.inf

    def check_cfg(self, cfg):
        """Hook for trainers to validate ``cfg`` (called before ``self.cfg`` exists)."""

    def build_data_loader(self):
        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = dm.train_loader_u
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm

    def build_model(self):
        raise NotImplementedError(
            f"{type(self).__name__} must override build_model(): the bundled engine has no "
            "generic backbone+classifier model; CLIP trainers build their own."
        )

    def train(self):
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self):
        begin_training(self)

    def after_train(self):
        print("Finish training")
        do_test = not self.cfg.TEST.NO_TEST
        if do_test:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()
        elapsed = round(time.time() - self.time_start)
        print(f"Elapsed: {datetime.timedelta(seconds=elapsed)}")
        self.close_writer()

    def after_epoch(self):
        last_epoch = (self.epoch + 1) == self.max_epoch
        do_test = not self.cfg.TEST.NO_TEST
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        meet_checkpoint_freq = (self.epoch + 1) % freq == 0 if freq > 0 else False

        if do_test and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            if curr_result > self.best_result:
                self.best_result = curr_result
                self.save_model(
                    self.epoch, self.output_dir, val_result=curr_result,
                    model_name="model-best.pth.tar",
                )
        if meet_checkpoint_freq or last_epoch:
            self.save_model(self.epoch, self.output_dir)

    @torch.no_grad()
    def test(self, split=None):
        self.set_model_mode("eval")
        self.evaluator.reset()
        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader
        print(f"Evaluate on the *{split}* set")
        if is_distributed():
            self._evaluate_sharded(data_loader)
        else:
            for batch in tqdm(data_loader):
                input, label = self.parse_batch_test(batch)
                output = self.model_inference(input)
                self.evaluator.process(output, label)
        results = self.evaluator.evaluate()
        for k, v in results.items():
            self.write_scalar(f"{split}/{k}", v, self.epoch)
        return list(results.values())[0]

    def _evaluate_sharded(self, data_loader):
        """Each rank predicts its shard; the evaluator sees every image once, in order.

        Only the predicted classes travel between the ranks (one integer per image: the
        full [N, C] scores would be tens of GB with 21K classes), and the evaluator gets
        them as one-hot scores, whose argmax is all it reads. All ranks evaluate the same
        gathered set, so they return the same result (trainers compare it, e.g. for
        best-val checkpoints, and must agree).
        """
        indices, predictions, labels = [], [], []
        for batch in tqdm(data_loader, disable=not is_main_process()):
            input, label = self.parse_batch_test(batch)
            predictions.append(self.model_inference(input).max(1)[1].detach().cpu())  # as the evaluator
            labels.append(label.detach().cpu())
            indices.append(torch.as_tensor(batch["index"]).cpu())
        empty = torch.empty(0, dtype=torch.long)
        local = ((torch.cat(indices), torch.cat(predictions), torch.cat(labels)) if indices
                 else (empty, empty, empty))
        all_indices, all_predictions, all_labels = gather_predictions(*local)
        print(f"Gathered {len(all_indices):,} predictions from {get_world_size()} processes")
        if not len(all_indices):
            return
        width = int(all_predictions.max()) + 1
        chunk = max(1, int(self.cfg.DATALOADER.TEST.BATCH_SIZE))
        for start in range(0, len(all_indices), chunk):
            scores = F.one_hot(all_predictions[start:start + chunk], width).float()
            self.evaluator.process(scores, all_labels[start:start + chunk])

    def model_inference(self, input):
        return self.model(input)

    def parse_batch_test(self, batch):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    def get_current_lr(self, names=None):
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]


class TrainerX(TrainingLoop, SimpleTrainer):
    """Training on labelled data only: the epoch loop comes from ``TrainingLoop``."""

    def parse_batch_train(self, batch):
        return (
            batch["img"].to(self.device),
            batch["label"].to(self.device),
            batch["domain"].to(self.device),
        )

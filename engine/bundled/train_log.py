"""Dassl's per-batch training log line and TensorBoard scalars, in one place.

Printed by the one epoch loop (``engine.bundled.training_loop``), on either engine, in
Dassl's exact words, so the line parsers read stays the same.
"""
import datetime


def log_training_step(trainer, losses, batch_time, data_time):
    """Print the log line every TRAIN.PRINT_FREQ batches and write the train scalars."""
    print_freq = trainer.cfg.TRAIN.PRINT_FREQ
    if (trainer.batch_idx + 1) % print_freq == 0 or trainer.num_batches < print_freq:
        batches_left = (trainer.num_batches - trainer.batch_idx - 1) + (
            trainer.max_epoch - trainer.epoch - 1
        ) * trainer.num_batches
        eta = datetime.timedelta(seconds=int(batch_time.avg * batches_left))
        print(" ".join([
            f"epoch [{trainer.epoch + 1}/{trainer.max_epoch}]",
            f"batch [{trainer.batch_idx + 1}/{trainer.num_batches}]",
            f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
            f"data {data_time.val:.3f} ({data_time.avg:.3f})",
            f"{losses}",
            f"lr {trainer.get_current_lr():.4e}",
            f"eta {eta}",
        ]))
    n_iter = trainer.epoch * trainer.num_batches + trainer.batch_idx
    for name, meter in losses.meters.items():
        trainer.write_scalar("train/" + name, meter.avg, n_iter)
    trainer.write_scalar("train/lr", trainer.get_current_lr(), n_iter)

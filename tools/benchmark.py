"""Speed and memory of prompt learning, measured in one run on whatever device is present.

Sections (``--sections``, all by default):

* ``train``   training time per image and peak memory of CoOp, MaPLe, POMP and RPP at the
              same backbone, batch and number of classes (ratios to CoOp);
* ``eval``    evaluation images/s on ``--eval-classes`` classes with the text features
              cached for the test run (PromptedCLIP) vs recomputed for every batch, as the
              official CoOp/MaPLe code does (ratio cached / per-batch);
* ``classes`` peak memory of one training step vs the number of classes, with class
              sampling on (``TRAINER.CLASS_SAMPLING.K``) and off; a size that would not fit
              (memory, or on the CPU ``--max-step-seconds``) is estimated and skipped;
* ``data``    data-loader images/s over a generated image folder with the configured
              workers, beside the model's training and evaluation images/s.

Every trainer is built through the normal config path (``engine.build_trainer``) on a
synthetic dataset with the requested number of classes ("class 0", "class 1", ...); a
trainer that is not registered is skipped with a note. Model steps get synthetic image
tensors already on the device, so the model sections measure the model alone. Each
training measurement runs in a fresh process (``--no-isolate``: all in this one). Memory
is ``torch.cuda.max_memory_allocated`` on CUDA and the peak resident set size on the CPU
(Linux: VmHWM, reset after the trainer is built and freed heap is returned to the OS),
both for the first step of a fresh trainer (that step allocates the optimizer state
too); times come from warm steps after ``--warmup``.

    python tools/benchmark.py --output bench.json                  # ViT-B/16, random weights
    python tools/benchmark.py --backbone tiny-vit --output bench.json   # quick smoke run
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

SECTIONS = ("train", "eval", "classes", "data")
TRAINERS = ("CoOp", "MaPLe", "POMP", "RPP")
SAMPLING_TRAINERS = ("POMP", "RPP")
SYNTHETIC_DATASET = "BenchmarkSyntheticClasses"
MB = 2**20


# ------------------------------------------------------------------ measuring


def resolve_device(requested):
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")
    return requested


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def reset_peak_resident():
    """Reset the kernel's peak-RSS counter (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_resident_mb():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024


class PeakMemory:
    """Peak memory (MB) while the block runs: ``peak_mb`` in all, ``step_mb`` above the start."""

    def __init__(self, device):
        self.device = device
        self.peak_mb = self.step_mb = float("nan")

    def __enter__(self):
        synchronize(self.device)
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.start_mb = torch.cuda.memory_allocated() / MB
        else:
            self.start_mb = resident_mb()
            self.exact = reset_peak_resident()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        if self.device == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated() / MB
        elif self.exact:
            self.peak_mb = peak_resident_mb()
        else:  # no resettable counter: the end state is a lower bound
            self.peak_mb = max(resident_mb(), self.start_mb)
        self.step_mb = max(0.0, self.peak_mb - self.start_mb)
        return False


def available_memory_mb(device):
    """Memory a measurement may still use (free device memory / available RAM)."""
    if device == "cuda":
        free, _ = torch.cuda.mem_get_info()
        return free / MB + torch.cuda.memory_allocated() / MB
    with open("/proc/meminfo") as f:
        available_kb = int(re.search(r"MemAvailable:\s+(\d+)", f.read()).group(1))
    return available_kb / 1024 + resident_mb()


def timed(device, fn, repeats):
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return time.perf_counter() - start


# ------------------------------------------------------------------ building trainers


class SyntheticClasses:
    """Which classes and images the synthetic dataset holds (set before each build)."""

    num_classes = 10
    image_dir = ""


def write_images(folder, count, size, fmt="PNG"):
    """``count`` random-noise RGB images of ``size`` x ``size`` pixels; their paths."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    paths = []
    for i in range(count):
        pixels = torch.randint(0, 256, (size, size, 3), generator=generator, dtype=torch.uint8)
        path = os.path.join(folder, f"{i:05d}.{fmt.lower()}")
        Image.fromarray(pixels.numpy()).save(path, format=fmt)
        paths.append(path)
    return paths


def register_synthetic_dataset():
    from engine import DATASET_REGISTRY, DatasetBase, Datum

    if SYNTHETIC_DATASET in DATASET_REGISTRY.registered_names():
        return

    class BenchmarkSyntheticClasses(DatasetBase):
        """``num_classes`` classes named "class <i>", one train image each (the images
        repeat), a test set of the first images; enough for a trainer to build."""

        def __init__(self, cfg):
            images = sorted(os.path.join(SyntheticClasses.image_dir, name)
                            for name in os.listdir(SyntheticClasses.image_dir))
            count = SyntheticClasses.num_classes
            train = [Datum(impath=images[i % len(images)], label=i, classname=f"class {i}")
                     for i in range(count)]
            super().__init__(train_x=train, val=None, test=train[: len(images)])

    DATASET_REGISTRY.register(BenchmarkSyntheticClasses)


def prepare_synthetic_classes(work_dir):
    SyntheticClasses.image_dir = os.path.join(work_dir, "class_images")
    register_synthetic_dataset()


def registered_trainers():
    import trainers  # noqa: F401  (trainers register on import)
    from engine import TRAINER_REGISTRY

    return set(TRAINER_REGISTRY.registered_names())


def image_size(backbone):
    from models.backbones import parse_backbone_name

    size = parse_backbone_name(backbone).model_cfg["vision_cfg"]["image_size"]
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def backbone_layers(backbone):
    from models.backbones import parse_backbone_name

    model_cfg = parse_backbone_name(backbone).model_cfg
    return min(model_cfg["text_cfg"]["layers"], model_cfg["vision_cfg"]["layers"])


def build_cfg(args, trainer_name, num_classes, sampling_k=0):
    from engine import TRAINER_REGISTRY, get_cfg_default
    from engine.config_extension import extend_cfg

    cfg = extend_cfg(get_cfg_default())
    size = image_size(args.backbone)
    cfg.TRAINER.NAME = trainer_name
    cfg.DATASET.NAME = SYNTHETIC_DATASET
    cfg.DATASET.ROOT = args.work_dir
    cfg.OUTPUT_DIR = os.path.join(args.work_dir, "output")
    cfg.SEED = 1
    cfg.VERBOSE = False
    cfg.USE_CUDA = args.device == "cuda"
    cfg.MODEL.BACKBONE.NAME = args.backbone
    cfg.MODEL.BACKBONE.PRETRAINED = args.pretrained
    cfg.INPUT.SIZE = (size, size)
    cfg.INPUT.TRANSFORMS = ("random_resized_crop", "random_flip", "normalize")
    cfg.DATALOADER.NUM_WORKERS = 0  # the model sections feed tensors directly
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = args.batch_size
    cfg.DATALOADER.TEST.BATCH_SIZE = args.eval_batch_size
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.LR = 0.002
    cfg.OPTIM.MAX_EPOCH = 1
    node = TRAINER_REGISTRY.get(trainer_name).config_node
    if node and node in cfg.TRAINER and "PREC" in cfg.TRAINER[node]:
        cfg.TRAINER[node].PREC = args.prec
    if node and node in cfg.TRAINER:  # method defaults are for ViT-B/16's 12 layers
        layers = backbone_layers(args.backbone)
        for key, value in cfg.TRAINER[node].items():
            if "DEPTH" in key and isinstance(value, int):
                cfg.TRAINER[node][key] = min(value, layers)
    if "CLASS_SAMPLING" in cfg.TRAINER:
        cfg.TRAINER.CLASS_SAMPLING.K = min(sampling_k, num_classes) if sampling_k else 0
    cfg.freeze()
    return cfg


def build_trainer_quietly(args, trainer_name, num_classes, sampling_k=0):
    """A trainer built by ``engine.build_trainer`` on ``num_classes`` synthetic classes."""
    from engine import build_trainer, set_random_seed

    SyntheticClasses.num_classes = num_classes
    cfg = build_cfg(args, trainer_name, num_classes, sampling_k)
    set_random_seed(cfg.SEED)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer = build_trainer(cfg)
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 10**9  # no LR step
    trainer.set_model_mode("train")
    return trainer


def release(trainer):
    del trainer
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synthetic_batch(args, num_classes, batch_size):
    size = image_size(args.backbone)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, size, size, generator=generator)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    return {"img": images.to(args.device), "label": labels.to(args.device),
            "domain": torch.zeros_like(labels).to(args.device),
            "index": torch.arange(batch_size)}


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a new Python process: memory freed by an earlier measurement
    (kept by the CPU allocator or CUDA's cache) cannot hide the growth of this one."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def release_freed_heap():
    """Hand freed heap memory back to the OS (glibc), so the RSS is the live set."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure_training_step(args, trainer_name, num_classes, sampling_k=0, timed_steps=None):
    """Memory of a fresh trainer's first step, then time per image over warm steps."""
    if args.isolate:
        child_args = argparse.Namespace(**dict(vars(args), isolate=False))
        return in_fresh_process(measure_training_step, child_args, trainer_name, num_classes,
                                sampling_k, timed_steps)
    prepare_synthetic_classes(args.work_dir)
    trainer = build_trainer_quietly(args, trainer_name, num_classes, sampling_k)
    batch = synthetic_batch(args, num_classes, args.batch_size)
    release_freed_heap()
    with PeakMemory(args.device) as memory:
        first_start = time.perf_counter()
        trainer.forward_backward(batch)
        synchronize(args.device)
        first_step_s = time.perf_counter() - first_start
    steps = args.steps if timed_steps is None else timed_steps
    if steps > 0:
        timed(args.device, lambda: trainer.forward_backward(batch), args.warmup)
        seconds = timed(args.device, lambda: trainer.forward_backward(batch), steps)
        per_image = seconds / (steps * args.batch_size)
    else:
        per_image = first_step_s / args.batch_size
    release(trainer)
    return {"seconds_per_image": per_image, "images_per_s": 1.0 / per_image,
            "first_step_s": first_step_s, "peak_mb": memory.peak_mb,
            "step_mb": memory.step_mb}


# ------------------------------------------------------------------ sections


def train_section(args):
    available = registered_trainers()
    results, notes = {}, []
    for name in args.trainers:
        if name not in available:
            notes.append(f"{name}: skipped, trainer not registered")
            print(f"  {name}: skipped (trainer not registered)")
            continue
        # POMP and RPP train with their recipe's class sampling; CoOp and MaPLe encode all classes
        k = args.train_sampling_k if name in SAMPLING_TRAINERS else 0
        results[name] = measure_training_step(args, name, args.train_classes, k)
        results[name]["sampling_k"] = min(k, args.train_classes) if k else 0
        print(f"  {name}: {results[name]['seconds_per_image'] * 1000:.2f} ms/image, "
              f"peak {results[name]['peak_mb']:.0f} MB")
    baseline = "CoOp" if "CoOp" in results else next(iter(results), None)
    for result in results.values():
        result["time_ratio"] = result["seconds_per_image"] / results[baseline]["seconds_per_image"]
        result["memory_ratio"] = result["peak_mb"] / results[baseline]["peak_mb"]
    return {"baseline": baseline, "num_classes": args.train_classes, "trainers": results,
            "notes": notes}


def eval_section(args):
    trainer = build_trainer_quietly(args, "CoOp", args.eval_classes)
    trainer.set_model_mode("eval")
    images = synthetic_batch(args, args.eval_classes, args.eval_batch_size)["img"]

    def per_batch():  # what the official code does: class text features every batch
        trainer.clear_text_feature_cache()
        trainer.model_inference(images)

    with torch.no_grad():
        trainer.clear_text_feature_cache()
        trainer.model_inference(images)  # warm-up; fills the cache
        cached_s = timed(args.device, lambda: trainer.model_inference(images), args.eval_batches)
        per_batch_s = timed(args.device, per_batch, args.eval_batches)
    trainer.clear_text_feature_cache()
    release(trainer)
    count = args.eval_batches * args.eval_batch_size
    cached, uncached = count / cached_s, count / per_batch_s
    return {"baseline": "per_batch", "num_classes": args.eval_classes,
            "cached_images_per_s": cached, "per_batch_images_per_s": uncached,
            "speedup": cached / uncached}


def classes_section(args):
    available = registered_trainers()
    name = args.classes_trainer
    if name not in available:
        return {"notes": [f"{name}: skipped, trainer not registered"]}
    budget_mb = available_memory_mb(args.device) * 0.8
    sampled, full = {}, {}
    for count in args.class_counts:
        k = min(args.sampling_k, count)
        sampled[count] = measure_training_step(args, name, count, k, timed_steps=0)
        print(f"  {count} classes, sampling K={k}: peak {sampled[count]['peak_mb']:.0f} MB")
    last_full = None
    for count in args.class_counts:
        estimate = estimate_without_sampling(sampled[count], min(args.sampling_k, count), count,
                                             last_full)
        too_big = estimate["peak_mb"] > budget_mb
        too_slow = estimate["first_step_s"] > args.max_step_seconds
        if too_big or too_slow:
            limit = "memory" if too_big else "time"
            full[count] = {
                "skipped": f"would need ~{estimate['peak_mb'] / 1024:.1f} GB and "
                           f"~{estimate['first_step_s']:.0f} s per step (over the {limit} "
                           f"budget of {budget_mb / 1024:.1f} GB / {args.max_step_seconds:g} s)",
                "estimated_peak_mb": estimate["peak_mb"],
            }
            print(f"  {count} classes, no sampling: {full[count]['skipped']}")
            continue
        full[count] = last_full = measure_training_step(args, name, count, 0, timed_steps=0)
        last_full = dict(last_full, num_classes=count)
        print(f"  {count} classes, no sampling: peak {full[count]['peak_mb']:.0f} MB")
    smallest = args.class_counts[0]
    for table in (sampled, full):
        for result in table.values():
            if "peak_mb" in result:
                result["memory_ratio"] = result["peak_mb"] / sampled[smallest]["peak_mb"]
    return {"baseline": f"sampling on, {smallest} classes", "trainer": name,
            "sampling_k": args.sampling_k, "budget_mb": budget_mb,
            "sampling_on": {str(k): v for k, v in sampled.items()},
            "sampling_off": {str(k): v for k, v in full.items()}}


def estimate_without_sampling(sampled, k, count, last_full):
    """Peak memory and step time without sampling, from what was measured.

    The text side (per-step memory and time above the fixed model) grows with the number
    of classes encoded: K with sampling, all of them without. From a smaller measured
    run without sampling when there is one, else from the sampled run at this size.
    """
    if last_full is not None:
        scale = count / last_full["num_classes"]
        base = last_full
    else:
        scale = count / max(k, 1)
        base = sampled
    fixed_mb = base["peak_mb"] - base["step_mb"]
    return {"peak_mb": fixed_mb + base["step_mb"] * scale,
            "first_step_s": base["first_step_s"] * scale}


def data_section(args, model_rates):
    from engine.bundled.data import Datum
    from engine.bundled.data.data_manager import build_data_loader
    from engine.bundled.data.transforms import build_transform

    folder = os.path.join(args.work_dir, "loader_images")
    paths = write_images(folder, args.data_images, args.data_image_size, fmt="JPEG")
    items = [Datum(impath=path, label=i % 10, classname=f"class {i % 10}")
             for i, path in enumerate(paths)]
    cfg = build_cfg(args, "CoOp", 10).clone()
    cfg.defrost()
    cfg.DATALOADER.NUM_WORKERS = args.workers
    cfg.freeze()
    with contextlib.redirect_stdout(io.StringIO()):
        transform = build_transform(cfg, is_train=True)
    loader = build_data_loader(cfg, sampler_type="RandomSampler", data_source=items,
                               batch_size=args.batch_size, tfm=transform, is_train=True)
    for _ in loader:  # warm-up pass: starts the (persistent) workers
        pass
    start = time.perf_counter()
    seen = 0
    for _ in range(args.data_epochs):
        for batch in loader:
            seen += len(batch["label"])
    loader_rate = seen / (time.perf_counter() - start)
    result = {"workers": args.workers, "persistent_workers": bool(loader.persistent_workers),
              "pin_memory": bool(loader.pin_memory), "images": args.data_images,
              "loader_images_per_s": loader_rate, "model_images_per_s": model_rates}
    result["loader_to_model"] = {name: loader_rate / rate for name, rate in model_rates.items()}
    return result


# ------------------------------------------------------------------ command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--backbone", default="ViT-B/16")
    parser.add_argument("--pretrained", action="store_true",
                        help="load the backbone's weights (default: random weights; speed "
                             "and memory do not depend on them)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--prec", default=None, help="PREC for every trainer (default: fp16 "
                        "on CUDA, fp32 on the CPU)")
    parser.add_argument("--trainers", nargs="+", default=list(TRAINERS))
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch (default: 32 on CUDA, 4 on the CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps after the first (memory) step, before timing "
                             "(default: 2 on CUDA, 0 on the CPU)")
    parser.add_argument("--train-classes", type=int, default=None,
                        help="classes in the train section (default: 1000 on CUDA, 10 on the "
                             "CPU, where CoOp-style text backward would dominate)")
    parser.add_argument("--eval-classes", type=int, default=None,
                        help="classes in the eval section (default: 1000 on CUDA, 100 on the CPU)")
    parser.add_argument("--eval-batch-size", type=int, default=None)
    parser.add_argument("--eval-batches", type=int, default=None)
    parser.add_argument("--classes-trainer", default="CoOp")
    parser.add_argument("--class-counts", type=int, nargs="+", default=[1000, 10000, 21000])
    parser.add_argument("--sampling-k", type=int, default=None,
                        help="TRAINER.CLASS_SAMPLING.K (default: 1000 on CUDA, 10 on the CPU)")
    parser.add_argument("--train-sampling-k", type=int, default=100,
                        help="K of POMP and RPP in the train section (default 100, POMP's "
                             "ImageNet-1K setting; CoOp and MaPLe encode every class)")
    parser.add_argument("--max-step-seconds", type=float, default=None,
                        help="skip (and estimate) a classes-section step predicted to take "
                             "longer (default: none on CUDA, 60 on the CPU)")
    parser.add_argument("--workers", type=int, default=None,
                        help="data-loader workers (default: min(8, CPU cores))")
    parser.add_argument("--data-images", type=int, default=None)
    parser.add_argument("--data-image-size", type=int, default=320)
    parser.add_argument("--data-epochs", type=int, default=1)
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--output", default="", help="write the results as JSON here")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="measure every training run in this process (faster, but memory "
                             "freed by earlier runs can hide the growth of later ones)")
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device)
    on_cuda = args.device == "cuda"
    defaults = {
        "prec": "fp16" if on_cuda else "fp32", "batch_size": 32 if on_cuda else 4,
        "steps": 10 if on_cuda else 2, "warmup": 2 if on_cuda else 0,
        "train_classes": 1000 if on_cuda else 10,
        "eval_classes": 1000 if on_cuda else 100, "eval_batch_size": 100 if on_cuda else 8,
        "eval_batches": 10 if on_cuda else 2, "sampling_k": 1000 if on_cuda else 10,
        "max_step_seconds": float("inf") if on_cuda else 60.0,
        "workers": min(8, os.cpu_count() or 1), "data_images": 512 if on_cuda else 64,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.class_counts = sorted(args.class_counts)
    return args


def print_summary(results):
    print("\n== ratios ==")
    train = results.get("train")
    if train and train["trainers"]:
        print(f"training time per image and peak memory (relative to {train['baseline']}, "
              f"{train['num_classes']} classes):")
        for name, r in train["trainers"].items():
            print(f"  {name:6s} time x{r['time_ratio']:.2f}  memory x{r['memory_ratio']:.2f}  "
                  f"({r['seconds_per_image'] * 1000:.2f} ms/image, {r['peak_mb']:.0f} MB)")
        for note in train["notes"]:
            print(f"  note: {note}")
    ev = results.get("eval")
    if ev:
        print(f"evaluation on {ev['num_classes']} classes: cached text features "
              f"x{ev['speedup']:.2f} the images/s of per-batch recomputation "
              f"({ev['cached_images_per_s']:.1f} vs {ev['per_batch_images_per_s']:.1f} images/s)")
    classes = results.get("classes")
    if classes and "sampling_on" in classes:
        print(f"peak memory of one training step vs classes ({classes['trainer']}, relative "
              f"to {classes['baseline']}):")
        for count in classes["sampling_on"]:
            on, off = classes["sampling_on"][count], classes["sampling_off"][count]
            off_text = (f"x{off['memory_ratio']:.2f} ({off['peak_mb']:.0f} MB)" if "peak_mb" in off
                        else off["skipped"])
            print(f"  {count:>6s} classes: sampling on x{on['memory_ratio']:.2f} "
                  f"({on['peak_mb']:.0f} MB), off {off_text}")
    elif classes:
        for note in classes.get("notes", []):
            print(f"  note: {note}")
    data = results.get("data")
    if data:
        ratios = ", ".join(f"x{v:.2f} of {k}" for k, v in data["loader_to_model"].items())
        print(f"data loader ({data['workers']} workers): {data['loader_images_per_s']:.1f} "
              f"images/s = {ratios or 'no model rate measured'} (above 1: loading keeps up)")


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="rpp-bench-") as scratch:
        args.work_dir = args.work_dir or scratch
        write_images(os.path.join(args.work_dir, "class_images"), 16, 64)
        prepare_synthetic_classes(args.work_dir)
        results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                   "backbone": args.backbone, "batch_size": args.batch_size,
                   "precision": args.prec, "torch": torch.__version__,
                   "settings": {k: (None if v == float("inf") else v)
                                for k, v in vars(args).items()
                                if k not in ("work_dir", "output")}}
        model_rates = {}
        if "train" in args.sections:
            print(f"[train] {args.backbone}, batch {args.batch_size}, {args.device}")
            results["train"] = train_section(args)
            for name, r in results["train"]["trainers"].items():
                model_rates[f"{name} training"] = r["images_per_s"]
        if "eval" in args.sections:
            print(f"[eval] {args.eval_classes} classes")
            results["eval"] = eval_section(args)
            model_rates["evaluation (cached)"] = results["eval"]["cached_images_per_s"]
        if "classes" in args.sections:
            print(f"[classes] {args.class_counts}, K={args.sampling_k}")
            results["classes"] = classes_section(args)
        if "data" in args.sections:
            print(f"[data] {args.data_images} images, {args.workers} workers")
            results["data"] = data_section(args, model_rates)
    print_summary(results)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2, default=float)
        print(f"\nResults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

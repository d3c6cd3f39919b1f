"""Speed and memory of prompt learning, measured in one run on whatever device is present.

Sections (``--sections``, all by default):

* ``train``   time per image (median and spread of warm steps) and peak memory of CoOp,
              MaPLe, POMP and RPP at the same backbone, batch and number of classes;
* ``compare`` steps timed in alternation in one process, so a busy machine slows both
              sides alike: CoOp as it runs vs the official code's stand-in (all 77 text
              tokens, the blocks' own ``nn.MultiheadAttention``), and RPP vs MaPLe at
              RPP's prompt length, depth and class sampling;
* ``eval``    evaluation on ``--eval-classes`` classes with the class text features
              cached for the test run vs recomputed for every batch as the official
              CoOp/MaPLe code does (the official stand-in again);
* ``classes`` peak memory and warm step time vs the number of classes, class sampling
              (``TRAINER.CLASS_SAMPLING.K``) on and off; a size that would not fit
              (memory, or on the CPU ``--max-step-seconds``) is estimated and skipped;
* ``recipe``  POMP and RPP at their ImageNet-21K recipe's K (1,000), views (4) and batch
              (32), with ``MODEL.TEXT_ENCODER.GRAD_CHECKPOINTING`` off and on; on the CPU
              at ``--recipe-batch``/``--recipe-k`` with the step split into its text part
              (timed alone) and its image part, each scaled to the recipe;
* ``data``    data-loader images/s over a generated JPEG folder with the configured
              workers and the recipe's views.

``projection`` (printed when ``recipe`` ran) turns the recipe step time and the loader
throughput into the wall time of the full recipe: 10,450 classes x 16 shots, batch 32,
4 views, 5 epochs.

Every trainer is built through the normal config path (``engine.build_trainer``) on a
synthetic dataset with the requested number of classes, named after the ImageNet classes
(so class prompts have real token lengths); a trainer that is not registered is skipped
with a note. Model steps get synthetic image tensors already on the device, so the model
sections measure the model alone. Each training measurement runs in a fresh process
(``--no-isolate``: all in this one). Memory is ``torch.cuda.max_memory_allocated`` on
CUDA and the peak resident set size on the CPU (Linux: VmHWM, reset after the trainer is
built and freed heap is returned to the OS), both for the first step of a fresh trainer
(that step allocates the optimizer state too). Times are the median of ``--repeats``
warm steps after ``--warmup``; the first (memory) step is never timed.

    python tools/benchmark.py --output bench.json                  # ViT-B/16, random weights
    python tools/benchmark.py --backbone tiny-vit --output bench.json   # quick smoke run
"""
import argparse
import contextlib
import io
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

SECTIONS = ("train", "compare", "eval", "classes", "recipe", "data")
TRAINERS = ("CoOp", "MaPLe", "POMP", "RPP")
SAMPLING_TRAINERS = ("POMP", "RPP")
RECIPE_TRAINERS = ("POMP", "RPP")
SYNTHETIC_DATASET = "BenchmarkSyntheticClasses"
CHECKPOINTING_KEY = "MODEL.TEXT_ENCODER.GRAD_CHECKPOINTING"
MB = 2**20
# POMP's / RPP's ImageNet-21K pre-training (configs/trainers/{POMP,RPP}/vit_b16_*.yaml)
RECIPE = {"classes": 10450, "shots": 16, "batch": 32, "views": 4, "epochs": 5, "k": 1000}
TARGETS = {"official_train": 2.5, "official_eval": 3.0, "rpp_over_maple": 1.25}


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


def timed_once(device, fn):
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def summary_of(samples):
    """Median, extremes and spread ((max - min) / median) of repeated timings in seconds."""
    median = statistics.median(samples)
    return {"median_s": median, "min_s": min(samples), "max_s": max(samples),
            "spread": (max(samples) - min(samples)) / median if median > 0 else 0.0,
            "repeats": len(samples), "samples_s": list(samples)}


def repeated(device, fn, warmup, repeats):
    """``fn`` ``warmup`` times untimed, then ``repeats`` timed runs: their summary."""
    for _ in range(warmup):
        fn()
    return summary_of([timed_once(device, fn) for _ in range(max(1, repeats))])


def alternated(device, fns, warmup, repeats):
    """Named functions run in turn (a, b, a, b, ...) so a change of machine load hits all
    alike; their summaries and, per round, each one's time over the first one's."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    samples = {name: [] for name in names}
    for _ in range(max(1, repeats)):
        for name in names:
            samples[name].append(timed_once(device, fns[name]))
    first = samples[names[0]]
    result = {name: summary_of(values) for name, values in samples.items()}
    for name in names[1:]:
        rounds = [b / a for a, b in zip(first, samples[name])]
        result[name]["ratio_to_" + names[0]] = statistics.median(rounds)
        result[name]["ratio_rounds"] = rounds
    return result


@contextlib.contextmanager
def official_stand_in():
    """What the official CoOp/MaPLe code computes: all 77 text tokens, every frozen block
    through its own ``nn.MultiheadAttention``."""
    from models.prompted_attention import fused_attention
    from models.text_encoder import full_context

    with full_context(), fused_attention(False):
        yield


# ------------------------------------------------------------------ building trainers


class SyntheticClasses:
    """Which classes and images the synthetic dataset holds (set before each build)."""

    num_classes = 10
    image_dir = ""


def synthetic_classnames(count):
    """``count`` class names: the ImageNet-1K names in turn (real token lengths)."""
    from open_clip import IMAGENET_CLASSNAMES

    return [IMAGENET_CLASSNAMES[i % len(IMAGENET_CLASSNAMES)] for i in range(count)]


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
        """``num_classes`` classes named after the ImageNet classes, one train image each
        (the images repeat), a test set of the first images; enough for a trainer to build."""

        def __init__(self, cfg):
            images = sorted(os.path.join(SyntheticClasses.image_dir, name)
                            for name in os.listdir(SyntheticClasses.image_dir))
            names = synthetic_classnames(SyntheticClasses.num_classes)
            train = [Datum(impath=images[i % len(images)], label=i, classname=name)
                     for i, name in enumerate(names)]
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


def build_cfg(args, trainer_name, num_classes, sampling_k=0, overrides=()):
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
    if overrides:
        cfg.merge_from_list(list(overrides))
    if node and node in cfg.TRAINER:  # method defaults are for ViT-B/16's 12 layers
        layers = backbone_layers(args.backbone)
        for key, value in cfg.TRAINER[node].items():
            if "DEPTH" in key and isinstance(value, int):
                cfg.TRAINER[node][key] = min(value, layers)
    if "CLASS_SAMPLING" in cfg.TRAINER:
        cfg.TRAINER.CLASS_SAMPLING.K = min(sampling_k, num_classes) if sampling_k else 0
    cfg.freeze()
    return cfg


def build_trainer_quietly(args, trainer_name, num_classes, sampling_k=0, overrides=()):
    """A trainer built by ``engine.build_trainer`` on ``num_classes`` synthetic classes."""
    from engine import build_trainer, set_random_seed

    SyntheticClasses.num_classes = num_classes
    cfg = build_cfg(args, trainer_name, num_classes, sampling_k, overrides)
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


def synthetic_batch(args, num_classes, batch_size, views=1):
    """A training batch on the device; ``views`` > 1 gives the list of augmented views
    that ``DATALOADER.K_TRANSFORMS`` produces."""
    size = image_size(args.backbone)
    generator = torch.Generator().manual_seed(0)
    images = [torch.randn(batch_size, 3, size, size, generator=generator).to(args.device)
              for _ in range(views)]
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator)
    return {"img": images[0] if views == 1 else images, "label": labels.to(args.device),
            "domain": torch.zeros_like(labels).to(args.device),
            "index": torch.arange(batch_size)}


def in_fresh_process(fn, *args):
    """``fn(*args)`` in a new Python process: memory freed by an earlier measurement
    (kept by the CPU allocator or CUDA's cache) cannot hide the growth of this one."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def isolated(fn):
    """Run ``fn(args, ...)`` in a fresh process when ``args.isolate``."""
    def wrapper(args, *rest):
        if args.isolate:
            child_args = argparse.Namespace(**dict(vars(args), isolate=False))
            return in_fresh_process(wrapper, child_args, *rest)
        prepare_synthetic_classes(args.work_dir)
        return fn(args, *rest)

    wrapper.__name__ = wrapper.__qualname__ = fn.__name__ + "_isolated"
    globals()[wrapper.__name__] = wrapper  # picklable by name for the spawned process
    return wrapper


def release_freed_heap():
    """Hand freed heap memory back to the OS (glibc), so the RSS is the live set."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def text_part(trainer, batch):
    """One forward + backward of the text side alone, over the classes the step encodes."""
    image, label = trainer.parse_batch_train(batch)
    sampler = trainer.class_sampler
    class_ids = sampler.sample(label).class_ids if sampler is not None else None

    def run():
        with trainer.autocast():
            features = trainer.model.encode_class_prompts(class_ids)
        features.float().square().sum().backward()
        trainer.model.zero_grad(set_to_none=True)

    return run


def measure_step(args, spec):
    """Memory of a fresh trainer's first step, then warm step times (median of repeats).

    ``spec``: trainer, classes, k (class sampling, 0: off), views, batch, overrides
    (config KEY VALUE list), repeats (0: memory and first step only).
    """
    trainer = build_trainer_quietly(args, spec["trainer"], spec["classes"], spec["k"],
                                    tuple(spec.get("overrides", ())))
    batch = synthetic_batch(args, spec["classes"], spec["batch"], spec["views"])
    images = spec["batch"] * spec["views"]
    release_freed_heap()
    with PeakMemory(args.device) as memory:
        first_step_s = timed_once(args.device, lambda: trainer.forward_backward(batch))
    result = {"first_step_s": first_step_s, "peak_mb": memory.peak_mb, "step_mb": memory.step_mb,
              "images_per_step": images}
    repeats = spec.get("repeats", args.repeats)
    if repeats > 0:
        step = repeated(args.device, lambda: trainer.forward_backward(batch), args.warmup, repeats)
    else:  # memory only
        step = summary_of([first_step_s])
        step["first_step_only"] = True
    result["step"] = step
    result["seconds_per_image"] = step["median_s"] / images
    result["images_per_s"] = images / step["median_s"]
    release(trainer)
    return result


measure_step_isolated = isolated(measure_step)


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
        k = min(args.train_sampling_k, args.train_classes) if name in SAMPLING_TRAINERS else 0
        spec = {"trainer": name, "classes": args.train_classes, "k": k, "views": 1,
                "batch": args.batch_size}
        results[name] = dict(measure_step_isolated(args, spec), sampling_k=k)
        args.memo[spec_key(spec)] = results[name]
        print(f"  {name}: {describe_time(results[name])}, peak {results[name]['peak_mb']:.0f} MB")
    baseline = "CoOp" if "CoOp" in results else next(iter(results), None)
    for result in results.values():
        result["time_ratio"] = result["seconds_per_image"] / results[baseline]["seconds_per_image"]
        result["memory_ratio"] = result["peak_mb"] / results[baseline]["peak_mb"]
    return {"baseline": baseline, "num_classes": args.train_classes, "trainers": results,
            "notes": notes}


def spec_key(spec):
    return (spec["trainer"], spec["classes"], spec["k"], spec["views"], spec["batch"],
            tuple(spec.get("overrides", ())))


def describe_time(result):
    step = result["step"]
    if step.get("first_step_only"):
        return f"{result['seconds_per_image'] * 1000:.1f} ms/image (first step only)"
    return (f"{result['seconds_per_image'] * 1000:.1f} ms/image (median of {step['repeats']}, "
            f"spread {step['spread'] * 100:.0f}%)")


def maple_like_rpp(args):
    """MaPLe overrides giving RPP's prompt length and depth, or (None, why not)."""
    rpp = build_cfg(args, "RPP", 2).TRAINER.RPP
    if rpp.N_CTX_TEXT != rpp.N_CTX_VISION or rpp.PROMPT_DEPTH_TEXT != rpp.PROMPT_DEPTH_VISION:
        return None, "RPP's text and vision prompts differ in length or depth; MaPLe ties them"
    return ("TRAINER.MAPLE.N_CTX", int(rpp.N_CTX_TEXT),
            "TRAINER.MAPLE.PROMPT_DEPTH", int(rpp.PROMPT_DEPTH_TEXT)), ""


@isolated
def compare_section_run(args):
    available = registered_trainers()
    result = {"notes": []}
    coop_classes = args.compare_classes
    if "CoOp" in available:
        trainer = build_trainer_quietly(args, "CoOp", coop_classes)
        batch = synthetic_batch(args, coop_classes, args.batch_size)
        trainer.forward_backward(batch)  # first step: allocations, not timed

        def official():
            with official_stand_in():
                trainer.forward_backward(batch)

        times = alternated(args.device, {"ours": lambda: trainer.forward_backward(batch),
                                         "official_stand_in": official},
                           args.warmup, args.compare_repeats)
        result["official_coop"] = {
            "num_classes": coop_classes, "batch": args.batch_size, **times,
            "speedup": times["official_stand_in"]["ratio_to_ours"]}
        release(trainer)
    else:
        result["notes"].append("CoOp: not registered, no official comparison")
    if {"RPP", "MaPLe"} <= available:
        overrides, why_not = maple_like_rpp(args)
        if overrides is None:
            result["notes"].append(why_not)
            return result
        k = min(args.train_sampling_k, coop_classes)
        maple = build_trainer_quietly(args, "MaPLe", coop_classes, k, overrides)
        rpp = build_trainer_quietly(args, "RPP", coop_classes, k)
        batch = synthetic_batch(args, coop_classes, args.batch_size)
        fns = {"MaPLe": lambda: maple.forward_backward(batch),
               "RPP": lambda: rpp.forward_backward(batch)}
        for step in fns.values():
            step()  # first steps, not timed
        times = alternated(args.device, fns, args.warmup, args.compare_repeats)
        result["rpp_vs_maple"] = {
            "num_classes": coop_classes, "sampling_k": k, "batch": args.batch_size,
            "maple_overrides": list(overrides), "rpp_kd": bool(rpp.cfg.TRAINER.RPP.KD), **times,
            "ratio": times["RPP"]["ratio_to_MaPLe"]}
        release(maple)
        release(rpp)
    else:
        result["notes"].append("RPP or MaPLe not registered: no RPP / MaPLe ratio")
    return result


def compare_section(args):
    result = compare_section_run(args)
    coop = result.get("official_coop")
    if coop:
        print(f"  CoOp, {coop['num_classes']} classes: {coop['ours']['median_s']:.2f} s/step, "
              f"official stand-in {coop['official_stand_in']['median_s']:.2f} s/step "
              f"(x{coop['speedup']:.2f})")
    pair = result.get("rpp_vs_maple")
    if pair:
        print(f"  RPP {pair['RPP']['median_s']:.2f} s/step vs MaPLe {pair['MaPLe']['median_s']:.2f} "
              f"s/step (x{pair['ratio']:.2f})")
    return result


@isolated
def eval_section_run(args):
    trainer = build_trainer_quietly(args, "CoOp", args.eval_classes)
    trainer.set_model_mode("eval")
    images = synthetic_batch(args, args.eval_classes, args.eval_batch_size)["img"]
    count = args.eval_batch_size

    def cached():
        trainer.model_inference(images)

    def per_batch():  # what the official code does: every class text feature, every batch
        trainer.clear_text_feature_cache()
        trainer.model_inference(images)

    def official_per_batch():
        with official_stand_in():
            per_batch()

    with torch.no_grad():
        cached()  # warm-up of the image side
        trainer.clear_text_feature_cache()
        fill = repeated(args.device, lambda: (trainer.clear_text_feature_cache(),
                                              trainer.model.all_text_features()), 0, 1)
        trainer.clear_text_feature_cache()
        cached()  # fills the cache
        cached_times = repeated(args.device, cached, 1, args.eval_batches)
        official = repeated(args.device, official_per_batch, 0, args.eval_official_batches)
        ours_per_batch = (repeated(args.device, per_batch, 0, args.eval_official_batches)
                          if args.eval_ours_per_batch else None)
    trainer.clear_text_feature_cache()
    release(trainer)
    result = {"baseline": "official per-batch stand-in", "num_classes": args.eval_classes,
              "batch": count, "cache_fill": fill, "cached": cached_times,
              "official_per_batch": official,
              "cached_images_per_s": count / cached_times["median_s"],
              "per_batch_images_per_s": count / official["median_s"]}
    result["speedup"] = result["cached_images_per_s"] / result["per_batch_images_per_s"]
    if ours_per_batch is not None:
        result["ours_per_batch"] = ours_per_batch
        result["ours_per_batch_images_per_s"] = count / ours_per_batch["median_s"]
    return result


def eval_section(args):
    result = eval_section_run(args)
    print(f"  cached {result['cached_images_per_s']:.1f} images/s, official per-batch "
          f"{result['per_batch_images_per_s']:.2f} images/s, cache fill "
          f"{result['cache_fill']['median_s']:.1f} s")
    return result


def classes_section(args):
    available = registered_trainers()
    name = args.classes_trainer
    if name not in available:
        return {"notes": [f"{name}: skipped, trainer not registered"]}
    budget_mb = available_memory_mb(args.device) * 0.8

    def measure(count, k):
        spec = {"trainer": name, "classes": count, "k": k, "views": 1, "batch": args.batch_size,
                "repeats": args.classes_repeats}
        key = spec_key(spec)
        if key not in args.memo:  # the same run as the train section's measures once
            args.memo[key] = measure_step_isolated(args, spec)
        return args.memo[key]

    sampled, full = {}, {}
    for count in args.class_counts:
        k = min(args.sampling_k, count)
        sampled[count] = measure(count, k)
        print(f"  {count} classes, sampling K={k}: peak {sampled[count]['peak_mb']:.0f} MB, "
              f"{describe_time(sampled[count])}")
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
        full[count] = measure(count, 0)
        last_full = dict(full[count], num_classes=count)
        print(f"  {count} classes, no sampling: peak {full[count]['peak_mb']:.0f} MB, "
              f"{describe_time(full[count])}")
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


@isolated
def recipe_run(args, name, text_split):
    """One trainer at the recipe's (or the CPU's) size: memory of a first step with text
    checkpointing off, then on; warm steps of both in alternation; with ``text_split``
    the text side alone, both ways."""
    trainer = build_trainer_quietly(args, name, args.recipe_classes, args.recipe_k)
    batch = synthetic_batch(args, args.recipe_classes, args.recipe_batch, args.recipe_views)
    transformer = trainer.model.text_encoder.transformer  # open_clip's switch, as the config sets it
    images = args.recipe_batch * args.recipe_views
    settings = {"checkpointing_off": False, "checkpointing_on": True}

    def step_with(checkpointing, fn):
        def run():
            transformer.grad_checkpointing = checkpointing
            fn()
        return run

    results = {}
    for label, checkpointing in settings.items():
        release_freed_heap()
        with PeakMemory(args.device) as memory:
            first = timed_once(args.device, step_with(checkpointing, lambda: trainer.forward_backward(batch)))
        results[label] = {"first_step_s": first, "peak_mb": memory.peak_mb,
                          "step_mb": memory.step_mb, "images_per_step": images}
    times = alternated(args.device, {label: step_with(flag, lambda: trainer.forward_backward(batch))
                                     for label, flag in settings.items()},
                       args.warmup, args.recipe_repeats)
    for label in settings:
        results[label]["step"] = times[label]
        results[label]["seconds_per_image"] = times[label]["median_s"] / images
    if text_split and trainer.model.prompt_learner.learns_text:
        run_text = text_part(trainer, batch)
        for label, checkpointing in settings.items():
            release_freed_heap()
            with PeakMemory(args.device) as text_memory:
                step_with(checkpointing, run_text)()
            text = repeated(args.device, step_with(checkpointing, run_text), 0, args.recipe_repeats)
            text["step_mb"] = text_memory.step_mb
            text["classes_encoded"] = int(trainer.class_sampler.k if trainer.class_sampler
                                          else args.recipe_classes)
            results[label]["text"] = text
    transformer.grad_checkpointing = False
    release(trainer)
    return results


def recipe_section(args):
    available = registered_trainers()
    at_recipe = (args.recipe_batch, args.recipe_views, args.recipe_k) == (
        RECIPE["batch"], RECIPE["views"], RECIPE["k"])
    results, notes = {}, []
    for name in RECIPE_TRAINERS:
        if name not in available:
            notes.append(f"{name}: skipped, trainer not registered")
            continue
        results[name] = recipe_run(args, name, not at_recipe)
        for label, measured in results[name].items():
            measured["recipe"] = scale_to_recipe(measured, at_recipe)
            print(f"  {name}, text {label.replace('_', ' ')}: {measured['step']['median_s']:.2f} "
                  f"s/step at {args.recipe_batch}x{args.recipe_views} images, K={args.recipe_k} "
                  f"(spread {measured['step']['spread'] * 100:.0f}%), peak {measured['peak_mb']:.0f} "
                  f"MB; recipe step {'measured' if at_recipe else 'estimated'} "
                  f"{measured['recipe']['step_s']:.2f} s, peak {measured['recipe']['peak_mb']:.0f} MB")
    return {"recipe": dict(RECIPE), "measured_at": {
        "batch": args.recipe_batch, "views": args.recipe_views, "k": args.recipe_k,
        "classes": args.recipe_classes}, "at_recipe_size": at_recipe,
        "trainers": results, "notes": notes}


def scale_to_recipe(measured, at_recipe):
    """The recipe's step time and peak memory: as measured at the recipe's size, else the
    text part scaled by K and the rest by the images per step (linear in each)."""
    if at_recipe or "text" not in measured:
        return {"step_s": measured["step"]["median_s"], "peak_mb": measured["peak_mb"],
                "estimated": not at_recipe}
    image_scale = RECIPE["batch"] * RECIPE["views"] / measured["images_per_step"]
    text_scale = RECIPE["k"] / max(1, measured["text"]["classes_encoded"])
    text_s = min(measured["text"]["median_s"], measured["step"]["median_s"])
    text_mb = min(measured["text"]["step_mb"], measured["step_mb"])
    fixed_mb = measured["peak_mb"] - measured["step_mb"]
    return {"step_s": (measured["step"]["median_s"] - text_s) * image_scale + text_s * text_scale,
            "peak_mb": fixed_mb + (measured["step_mb"] - text_mb) * image_scale + text_mb * text_scale,
            "text_step_s": text_s * text_scale, "estimated": True}


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
    cfg.DATALOADER.K_TRANSFORMS = args.data_views
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
    result = {"workers": args.workers, "views": args.data_views,
              "persistent_workers": bool(loader.persistent_workers),
              "pin_memory": bool(loader.pin_memory), "images": args.data_images,
              "loader_images_per_s": loader_rate,
              "loader_views_per_s": loader_rate * args.data_views,
              "model_images_per_s": model_rates}
    # the model consumes views: each loaded image gives data_views of them
    result["loader_to_model"] = {name: loader_rate * args.data_views / rate
                                 for name, rate in model_rates.items()}
    return result


def projection(recipe, data):
    """Wall time of the full recipe per trainer and checkpointing setting."""
    images = RECIPE["classes"] * RECIPE["shots"]
    steps_per_epoch = images // RECIPE["batch"]  # the train loader drops the last partial batch
    steps = steps_per_epoch * RECIPE["epochs"]
    loader_step_s = None
    if data and data["views"] == RECIPE["views"]:
        loader_step_s = RECIPE["batch"] / data["loader_images_per_s"]
    overlapped = bool(data and data["workers"] > 0)
    result = {"steps": steps, "steps_per_epoch": steps_per_epoch,
              "loader_step_s": loader_step_s, "loader_overlaps_model": overlapped,
              "note": "training steps only (no per-epoch evaluation); "
                      + ("loader measured" if loader_step_s else "loader not measured "
                         "with the recipe's views: model time only"),
              "trainers": {}}
    for name, settings in recipe["trainers"].items():
        result["trainers"][name] = {}
        for label, measured in settings.items():
            model_s = measured["recipe"]["step_s"]
            if loader_step_s is None:
                step_s = model_s
            elif overlapped:
                step_s = max(model_s, loader_step_s)
            else:
                step_s = model_s + loader_step_s
            result["trainers"][name][label] = {
                "model_step_s": model_s, "step_s": step_s, "hours": steps * step_s / 3600,
                "bound_by": ("loader" if loader_step_s and loader_step_s > model_s else "model"),
                "peak_mb": measured["recipe"]["peak_mb"],
                "estimated": measured["recipe"]["estimated"]}
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
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed warm steps per measurement: the median and spread are "
                             "reported (default: 10 on CUDA, 3 on the CPU)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed steps after the first (memory) step, before timing "
                             "(default: 3 on CUDA, 1 on the CPU)")
    parser.add_argument("--train-classes", type=int, default=None,
                        help="classes in the train section (default: 1000 on CUDA, 10 on the "
                             "CPU, where the text side of 100 classes would take most of the run)")
    parser.add_argument("--train-sampling-k", type=int, default=100,
                        help="K of POMP and RPP in the train section (default 100, POMP's "
                             "ImageNet-1K setting; CoOp and MaPLe encode every class)")
    parser.add_argument("--compare-classes", type=int, default=None,
                        help="classes of the compare section (default: 1000 on CUDA, 100 on "
                             "the CPU)")
    parser.add_argument("--compare-repeats", type=int, default=None,
                        help="alternating rounds in the compare section (default: --repeats)")
    parser.add_argument("--eval-classes", type=int, default=1000)
    parser.add_argument("--eval-batch-size", type=int, default=None)
    parser.add_argument("--eval-batches", type=int, default=None,
                        help="timed cached batches (default: 10 on CUDA, 3 on the CPU)")
    parser.add_argument("--eval-official-batches", type=int, default=None,
                        help="timed per-batch recomputations (default: 5 on CUDA, 1 on the CPU)")
    parser.add_argument("--eval-ours-per-batch", action=argparse.BooleanOptionalAction,
                        default=None, help="also time per-batch recomputation on our text "
                        "path (default: on CUDA only)")
    parser.add_argument("--classes-trainer", default="CoOp")
    parser.add_argument("--class-counts", type=int, nargs="+", default=[1000, 10000, 21000])
    parser.add_argument("--sampling-k", type=int, default=None,
                        help="TRAINER.CLASS_SAMPLING.K of the classes section (default: 1000 "
                             "on CUDA, 10 on the CPU)")
    parser.add_argument("--classes-repeats", type=int, default=None,
                        help="timed warm steps per classes-section size (default: --repeats "
                             "on CUDA, 1 on the CPU)")
    parser.add_argument("--max-step-seconds", type=float, default=None,
                        help="skip (and estimate) a classes-section step predicted to take "
                             "longer (default: none on CUDA, 60 on the CPU)")
    parser.add_argument("--recipe-classes", type=int, default=RECIPE["classes"])
    parser.add_argument("--recipe-batch", type=int, default=None,
                        help=f"recipe section batch (default: {RECIPE['batch']} on CUDA, 2 on "
                             "the CPU; other than the recipe's, the step is scaled)")
    parser.add_argument("--recipe-views", type=int, default=RECIPE["views"])
    parser.add_argument("--recipe-k", type=int, default=None,
                        help=f"recipe section K (default: {RECIPE['k']} on CUDA, 100 on the CPU)")
    parser.add_argument("--recipe-repeats", type=int, default=None,
                        help="timed warm steps per recipe measurement (default: --repeats on "
                             "CUDA, 2 on the CPU)")
    parser.add_argument("--workers", type=int, default=None,
                        help="data-loader workers (default: min(8, CPU cores))")
    parser.add_argument("--data-images", type=int, default=None)
    parser.add_argument("--data-image-size", type=int, default=320)
    parser.add_argument("--data-views", type=int, default=RECIPE["views"],
                        help="augmented views per loaded image (DATALOADER.K_TRANSFORMS)")
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
        "repeats": 10 if on_cuda else 3, "warmup": 3 if on_cuda else 0,
        "train_classes": 1000 if on_cuda else 10, "compare_classes": 1000 if on_cuda else 100,
        "eval_batch_size": 100 if on_cuda else 8, "eval_batches": 10 if on_cuda else 3,
        "eval_official_batches": 5 if on_cuda else 1, "eval_ours_per_batch": on_cuda,
        "sampling_k": 1000 if on_cuda else 10,
        "max_step_seconds": float("inf") if on_cuda else 60.0,
        "recipe_batch": RECIPE["batch"] if on_cuda else 1,
        "recipe_k": RECIPE["k"] if on_cuda else 100,
        "workers": min(8, os.cpu_count() or 1), "data_images": 512 if on_cuda else 32,
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    derived = {"compare_repeats": args.repeats,
               "classes_repeats": args.repeats if on_cuda else 1,
               "recipe_repeats": args.repeats if on_cuda else 1}
    for key, value in derived.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.class_counts = sorted(args.class_counts)
    args.memo = {}
    return args


def target_text(value, target, at_least=True):
    met = value >= target if at_least else value <= target
    return f"target {'>=' if at_least else '<='} {target:g}: {'met' if met else 'NOT met'}"


def print_summary(results):
    print("\n== ratios ==")
    train = results.get("train")
    if train and train["trainers"]:
        print(f"training time per image and peak memory (relative to {train['baseline']}, "
              f"{train['num_classes']} classes):")
        for name, r in train["trainers"].items():
            k = f", K={r['sampling_k']}" if r.get("sampling_k") else ""
            print(f"  {name:6s} time x{r['time_ratio']:.2f}  memory x{r['memory_ratio']:.2f}  "
                  f"({describe_time(r)}, {r['peak_mb']:.0f} MB{k})")
        for note in train["notes"]:
            print(f"  note: {note}")
    compare = results.get("compare")
    if compare:
        coop = compare.get("official_coop")
        if coop:
            print(f"CoOp training step, {coop['num_classes']} classes, batch {coop['batch']}: "
                  f"x{coop['speedup']:.2f} faster than the official stand-in (77 tokens, "
                  f"nn.MultiheadAttention; median of {coop['ours']['repeats']} alternating "
                  f"rounds) [{target_text(coop['speedup'], TARGETS['official_train'])}]")
        pair = compare.get("rpp_vs_maple")
        if pair:
            print(f"RPP / MaPLe step time at the same prompt length and depth "
                  f"({' '.join(map(str, pair['maple_overrides']))}, K={pair['sampling_k']}, "
                  f"RPP KD {'on' if pair['rpp_kd'] else 'off'}): x{pair['ratio']:.2f} "
                  f"[{target_text(pair['ratio'], TARGETS['rpp_over_maple'], at_least=False)}]")
        for note in compare.get("notes", []):
            print(f"  note: {note}")
    ev = results.get("eval")
    if ev:
        print(f"evaluation on {ev['num_classes']} classes, batch {ev['batch']}: cached text "
              f"features x{ev['speedup']:.2f} the images/s of the official per-batch "
              f"recomputation ({ev['cached_images_per_s']:.1f} vs "
              f"{ev['per_batch_images_per_s']:.2f} images/s; the cache fills once per test "
              f"run in {ev['cache_fill']['median_s']:.1f} s) "
              f"[{target_text(ev['speedup'], TARGETS['official_eval'])}]")
        if "ours_per_batch_images_per_s" in ev:
            print(f"  per-batch recomputation on our text path: "
                  f"{ev['ours_per_batch_images_per_s']:.2f} images/s")
    classes = results.get("classes")
    if classes and "sampling_on" in classes:
        print(f"peak memory of one training step vs classes ({classes['trainer']}, relative "
              f"to {classes['baseline']}):")
        for count in classes["sampling_on"]:
            on, off = classes["sampling_on"][count], classes["sampling_off"][count]
            off_text = (f"x{off['memory_ratio']:.2f} ({off['peak_mb']:.0f} MB, "
                        f"{describe_time(off)})" if "peak_mb" in off else off["skipped"])
            print(f"  {count:>6s} classes: sampling on x{on['memory_ratio']:.2f} "
                  f"({on['peak_mb']:.0f} MB, {describe_time(on)}), off {off_text}")
    elif classes:
        for note in classes.get("notes", []):
            print(f"  note: {note}")
    recipe = results.get("recipe")
    if recipe:
        where = "measured" if recipe["at_recipe_size"] else "estimated from the measured size"
        print(f"ImageNet-21K recipe step (batch {RECIPE['batch']} x {RECIPE['views']} views, "
              f"K={RECIPE['k']}; {where}):")
        for name, settings in recipe["trainers"].items():
            off, on = settings["checkpointing_off"]["recipe"], settings["checkpointing_on"]["recipe"]
            print(f"  {name:4s} text checkpointing off: {off['step_s']:.2f} s/step, peak "
                  f"{off['peak_mb'] / 1024:.1f} GB; on: {on['step_s']:.2f} s/step, peak "
                  f"{on['peak_mb'] / 1024:.1f} GB")
    proj = results.get("projection")
    if proj:
        print(f"projected wall time of the recipe ({proj['steps']} steps; {proj['note']}):")
        for name, settings in proj["trainers"].items():
            parts = [f"checkpointing {label.split('_')[1]} {p['hours']:.1f} h ({p['bound_by']}-bound)"
                     for label, p in settings.items()]
            print(f"  {name:4s} " + ", ".join(parts))
    data = results.get("data")
    if data:
        ratios = ", ".join(f"x{v:.2f} of {k}" for k, v in data["loader_to_model"].items())
        print(f"data loader ({data['workers']} workers, {data['views']} views per image): "
              f"{data['loader_images_per_s']:.1f} images/s = {data['loader_views_per_s']:.1f} "
              f"views/s = {ratios or 'no model rate measured'} (above 1: loading keeps up)")


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rpp-bench-") as scratch:
        args.work_dir = args.work_dir or scratch
        write_images(os.path.join(args.work_dir, "class_images"), 16, 64)
        prepare_synthetic_classes(args.work_dir)
        results = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
                   "cpu_threads": torch.get_num_threads(),
                   "backbone": args.backbone, "batch_size": args.batch_size,
                   "precision": args.prec, "torch": torch.__version__,
                   "settings": {k: (None if v == float("inf") else v)
                                for k, v in vars(args).items()
                                if k not in ("work_dir", "output", "memo")}}
        model_rates = {}
        if "train" in args.sections:
            print(f"[train] {args.backbone}, batch {args.batch_size}, {args.train_classes} "
                  f"classes, {args.device}")
            results["train"] = train_section(args)
            for name, r in results["train"]["trainers"].items():
                model_rates[f"{name} training"] = r["images_per_s"]
        if "compare" in args.sections:
            print(f"[compare] {args.compare_classes} classes: CoOp vs the official stand-in, "
                  f"RPP vs MaPLe")
            results["compare"] = compare_section(args)
        if "eval" in args.sections:
            print(f"[eval] {args.eval_classes} classes, batch {args.eval_batch_size}")
            results["eval"] = eval_section(args)
            model_rates["evaluation (cached)"] = results["eval"]["cached_images_per_s"]
        if "classes" in args.sections:
            print(f"[classes] {args.class_counts}, K={args.sampling_k}")
            results["classes"] = classes_section(args)
        if "recipe" in args.sections:
            print(f"[recipe] POMP and RPP, batch {args.recipe_batch} x {args.recipe_views} views, "
                  f"K={args.recipe_k}, {args.recipe_classes} classes")
            results["recipe"] = recipe_section(args)
        if "data" in args.sections:
            print(f"[data] {args.data_images} images, {args.workers} workers, "
                  f"{args.data_views} views")
            results["data"] = data_section(args, model_rates)
        if "recipe" in results:
            results["projection"] = projection(results["recipe"], results.get("data"))
    results["wall_s"] = time.perf_counter() - started
    print_summary(results)
    print(f"\n(benchmark wall time {results['wall_s'] / 60:.1f} min)")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(results, f, indent=2, default=float)
        print(f"\nResults written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

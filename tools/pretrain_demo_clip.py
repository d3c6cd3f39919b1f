"""Pre-train the shipped demo CLIP (backbone ``demo-clip``) on captions of the demo world.

    python3 tools/pretrain_demo_clip.py            # writes models/weights/demo_clip.safetensors

The images are rendered in memory from their own seed stream, never from the Demo
dataset's, and show only ``pretraining_compositions()``: the Demo dataset's new classes
are held out, so zero-shot accuracy on them tests whether the model composes words it
has seen ("red", "checkered", "cross") into a class it has not.

Reproducible on a CPU: seeded, one fixed thread count (CPU kernels then give the same
results run to run; ``torch.use_deterministic_algorithms`` is left off because its
embedding backward triples the step time here). The
contrastive loss scores every image against the captions of all pre-training
compositions (the full caption set fits in one batch), plus one caption per colour,
texture and shape so that single words get grounded too.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from datasets.demo_images import DEMO_SEED, render_composition  # noqa: E402
from datasets.demo_world import (  # noqa: E402
    COLOURS, SHAPES, TEXTURES, demo_compositions, held_out_compositions, pretraining_compositions,
)
from models.backbones import build_clip_architecture, parse_backbone_name  # noqa: E402

BACKBONE = "demo-clip"
PRETRAIN_STREAM = 1_000_003  # image seeds [stream, composition, index]; the dataset uses DEMO_SEED
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # what the trainer configs normalise with
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEMPLATES = (
    "a photo of a {}.",
    "a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a drawing of a {}.",
    "a small {}.",
    "a large {}.",
    "a photo of the {}.",
)
ATTRIBUTE_CAPTIONS = {  # one caption per word, the word alone as the content
    "colour": [f"a photo of something {c}." for c in COLOURS],
    "texture": [f"a photo of something {t}." for t in TEXTURES],
    "shape": [f"a photo of a {s}." for s in SHAPES],
}
# Captions are at most 13 tokens; the causal mask makes the first tokens' outputs
# independent of the rest, so encoding a 16-token window gives exactly the 77-token result.
TOKEN_WINDOW = 16


def render_pool(compositions, per_composition, stream):
    """uint8 images [N, 3, 32, 32] and their composition indices [N]."""
    images, labels = [], []
    for label, composition in enumerate(compositions):
        for index in range(per_composition):
            images.append(render_composition(composition, [stream, label, index]))
            labels.append(label)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return pixels, torch.tensor(labels)


def normalise(pixels):
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def random_resized_crop(images, generator):
    """Batch version of the trainers' augmentation (crop of 50-100% of the area, flip)."""
    n = images.shape[0]
    scale = torch.sqrt(torch.empty(n).uniform_(0.5, 1.0, generator=generator))
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (1 - scale)[:, None]
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def tokenize(texts):
    import open_clip

    tokens = open_clip.tokenize(list(texts))
    assert int((tokens != 0).sum(dim=1).max()) <= TOKEN_WINDOW, "a caption is longer than TOKEN_WINDOW"
    return tokens


def encode_text(model, tokens):
    """CLIP.encode_text on the first TOKEN_WINDOW tokens (same result, 5x less work)."""
    tokens = tokens[:, :TOKEN_WINDOW]
    x = model.token_embedding(tokens) + model.positional_embedding[:TOKEN_WINDOW]
    x = model.transformer(x, attn_mask=model.attn_mask[:TOKEN_WINDOW, :TOKEN_WINDOW])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]  # the end-of-text token
    return F.normalize(x @ model.text_projection, dim=-1)


def caption_tokens(compositions):
    """Token ids [templates, compositions, 77] of every caption."""
    return torch.stack([tokenize([t.format(c.name) for c in compositions]) for t in TEMPLATES])


def contrastive_loss(model, images, labels, composition_tokens, attribute_tokens, attribute_labels):
    image_features = F.normalize(model.encode_image(images), dim=-1)
    scale = model.logit_scale.exp().clamp(max=100)
    text_features = encode_text(model, composition_tokens)
    loss = F.cross_entropy(scale * image_features @ text_features.t(), labels)
    for kind, tokens in attribute_tokens.items():
        logits = scale * image_features @ encode_text(model, tokens).t()
        loss = loss + F.cross_entropy(logits, attribute_labels[kind]) / len(attribute_tokens)
    return loss


@torch.no_grad()
def zero_shot_accuracy(model, compositions, pixels, labels, template="a photo of a {}."):
    model.eval()
    text_features = encode_text(model, tokenize([template.format(c.name) for c in compositions]))
    correct = 0
    for start in range(0, len(pixels), 500):
        image_features = F.normalize(model.encode_image(normalise(pixels[start:start + 500])), dim=-1)
        correct += int(((image_features @ text_features.t()).argmax(dim=1) == labels[start:start + 500]).sum())
    model.train()
    return correct / len(pixels)


def demo_test_images(compositions, per_class=20):
    """The Demo dataset's test pictures for these classes (same seeds as datasets/demo.py)
    as pre-training draws them: without the dataset's per-class shade, so they measure
    what pre-training taught, not the downstream shift."""
    from datasets.demo import IMAGES_PER_SPLIT

    first_test_index = sum(count for name, count in IMAGES_PER_SPLIT if name != "test")
    all_classes = demo_compositions()
    images, labels = [], []
    for label, composition in enumerate(compositions):
        class_index = all_classes.index(composition)
        for index in range(first_test_index, first_test_index + per_class):
            images.append(render_composition(composition, [DEMO_SEED, class_index, index]))
            labels.append(label)
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def make_optimizer(model, lr):
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "embedding" in n]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def save_fp16(model, path):
    """fp16 safetensors without metadata: safetensors writes metadata in hash order, so
    leaving it out is what makes two runs' files byte-identical."""
    from safetensors.torch import save_file

    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    save_file(state, tmp)
    os.replace(tmp, path)


def pretrain(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    spec = parse_backbone_name(BACKBONE)
    model = build_clip_architecture(spec, seed=args.seed).train()

    compositions = pretraining_compositions()
    started = time.time()
    pixels, labels = render_pool(compositions, args.images_per_composition, PRETRAIN_STREAM)
    print(f"rendered {len(pixels)} pre-training images of {len(compositions)} compositions "
          f"in {time.time() - started:.0f}s", flush=True)
    held_out = held_out_compositions()
    seen_demo = [c for c in demo_compositions() if c not in set(held_out)]
    held_out_pixels, held_out_labels = demo_test_images(held_out)
    seen_pixels, seen_labels = demo_test_images(seen_demo)

    composition_tokens = caption_tokens(compositions)
    attribute_tokens = {kind: tokenize(texts) for kind, texts in ATTRIBUTE_CAPTIONS.items()}
    colour_of = torch.tensor([COLOURS.index(c.colour) for c in compositions])
    texture_of = torch.tensor([TEXTURES.index(c.texture) for c in compositions])
    shape_of = torch.tensor([SHAPES.index(c.shape) for c in compositions])

    optimizer = make_optimizer(model, args.lr)
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        batch = torch.randint(len(pixels), (args.batch_size,), generator=generator)
        template = int(torch.randint(len(TEMPLATES), (1,), generator=generator))
        batch_labels = labels[batch]
        images = random_resized_crop(normalise(pixels[batch]), generator)
        attribute_labels = {"colour": colour_of[batch_labels], "texture": texture_of[batch_labels],
                            "shape": shape_of[batch_labels]}
        loss = contrastive_loss(model, images, batch_labels, composition_tokens[template],
                                attribute_tokens, attribute_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            held = zero_shot_accuracy(model, held_out, held_out_pixels, held_out_labels)
            seen = zero_shot_accuracy(model, seen_demo, seen_pixels, seen_labels)
            print(f"step {step + 1}/{args.steps} loss {loss.item():.3f} "
                  f"zero-shot base {100 * seen:.1f}% held-out {100 * held:.1f}% "
                  f"({time.time() - started:.0f}s)", flush=True)

    held = zero_shot_accuracy(model, held_out, held_out_pixels, held_out_labels)
    seen = zero_shot_accuracy(model, seen_demo, seen_pixels, seen_labels)
    save_fp16(model, args.out)
    print(f"zero-shot on the unshaded Demo test renders: base {100 * seen:.1f}%, held-out (new) {100 * held:.1f}% "
          f"(chance {100 / len(held_out):.1f}%); wrote {args.out} in {time.time() - started:.0f}s")


def parse_args(argv=None):
    default_out = parse_backbone_name(BACKBONE).shipped_weights
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=default_out, help="weights file to write (safetensors, fp16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--images-per-composition", type=int, default=200)
    parser.add_argument("--log-every", type=int, default=50)
    return parser.parse_args(argv)


if __name__ == "__main__":
    pretrain(parse_args())

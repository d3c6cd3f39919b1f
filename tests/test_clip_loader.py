"""models/backbones.py and models/clip_loader.py: names, weight resolution, file formats, tiny CLIPs."""
import os
import pickle
import re
import warnings
from typing import Tuple

import pytest
import torch
from yacs.config import CfgNode as CN

from models import (
    COOP_BACKBONES,
    UnknownBackboneError,
    WeightsFileError,
    WeightsMismatchError,
    WeightsNotFoundError,
    input_resolution,
    load_clip,
    load_clip_from_cfg,
    parse_backbone_name,
    resolve_weights,
    tokenize,
)
from models.backbones import build_clip_architecture
from open_clip.transformer import QuickGELU

VIT_B16_HF_REPO = "timm/vit_base_patch16_clip_224.openai"
OTHER_SEED = 123  # weights different from the seeded default, so a test can tell which were loaded


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty, isolated OpenAI and Hugging Face caches; no downloads."""
    clip_dir, hf_dir = tmp_path / "clip", tmp_path / "hf"
    clip_dir.mkdir()
    hf_dir.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_dir))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("CLIP_CACHE_DIR", raising=False)
    return clip_dir, hf_dir


def tiny_state_dict(name="tiny-vit", seed=OTHER_SEED):
    return build_clip_architecture(parse_backbone_name(name), seed=seed).state_dict()


def save_state_dict(path, name="tiny-vit"):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_state_dict(name), path)
    return str(path)


def put_in_hf_cache(hf_dir, repo_id, filename, revision="0123abcd"):
    """Lay a file out the way huggingface_hub caches it: refs/main -> snapshots/<revision>/<file>."""
    repo_dir = hf_dir / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(revision)
    return save_state_dict(repo_dir / "snapshots" / revision / filename)


def same_weights(model_a, state_b):
    state_a = model_a.state_dict()
    return set(state_a) == set(state_b) and all(torch.equal(state_a[k], state_b[k]) for k in state_a)


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "coop_name, cache_file",
    [
        ("RN50", "RN50.pt"),
        ("RN101", "RN101.pt"),
        ("RN50x4", "RN50x4.pt"),
        ("RN50x16", "RN50x16.pt"),
        ("RN50x64", "RN50x64.pt"),
        ("ViT-B/32", "ViT-B-32.pt"),
        ("ViT-B/16", "ViT-B-16.pt"),
        ("ViT-L/14", "ViT-L-14.pt"),
        ("ViT-L/14@336px", "ViT-L-14-336px.pt"),
    ],
)
def test_coop_names_mean_openai_weights_with_quickgelu(coop_name, cache_file):
    spec = parse_backbone_name(coop_name)
    assert spec.name == coop_name and coop_name in COOP_BACKBONES
    assert spec.pretrained_tag == "openai"
    assert spec.model_cfg["quick_gelu"] is True  # OpenAI trained with QuickGELU
    assert os.path.basename(spec.pretrained_cfg["url"]) == cache_file


@pytest.mark.parametrize("coop_name", list(COOP_BACKBONES))
def test_coop_architecture_is_what_openai_files_imply(coop_name):
    """open_clip infers OpenAI models' architecture from their state dicts; ours must agree,
    head counts included (a state dict's shapes do not show them). Built on the meta device: instant."""
    from open_clip.model import CLIP, build_model_from_openai_state_dict

    with torch.device("meta"):
        ours = CLIP(**parse_backbone_name(coop_name).model_cfg)
        implied = build_model_from_openai_state_dict(ours.state_dict(), cast_dtype=None)

    def layout(model):
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        heads = [m.num_heads for m in model.modules() if hasattr(m, "num_heads")]
        return shapes, heads

    assert layout(ours) == layout(implied)


def test_open_clip_names_and_tags():
    plain = parse_backbone_name("ViT-B-16")
    assert (plain.arch, plain.pretrained_tag, plain.model_cfg["quick_gelu"]) == ("ViT-B-16", "openai", True)
    laion = parse_backbone_name("ViT-B-16:laion2b_s34b_b88k")
    assert (laion.arch, laion.pretrained_tag) == ("ViT-B-16", "laion2b_s34b_b88k")
    assert not laion.model_cfg.get("quick_gelu")  # trained with GELU
    assert parse_backbone_name("vit-b/16").name == "ViT-B/16"  # case-insensitive
    assert parse_backbone_name("ViT-H-14").pretrained_tag is None  # no OpenAI weights for this one


def test_vit_b16_architecture_dims_without_building():
    cfg = parse_backbone_name("ViT-B/16").model_cfg
    assert cfg["embed_dim"] == 512
    vision = cfg["vision_cfg"]
    assert (vision["width"], vision["patch_size"], vision["image_size"]) == (768, 16, 224)
    assert (cfg["text_cfg"]["width"], cfg["text_cfg"]["layers"], cfg["text_cfg"]["context_length"]) == (512, 12, 77)


def test_unknown_name_lists_valid_names_closest_first():
    with pytest.raises(UnknownBackboneError) as info:
        parse_backbone_name("ViT-B/17")
    message = str(info.value)
    assert "'ViT-B/17'" in message
    for name in ("ViT-B/16", "RN50", "tiny-vit", "ViT-B-16"):
        assert name in message
    assert message.index("ViT-B/16") < message.index("RN50")


def test_unknown_tag_lists_the_architectures_tags():
    with pytest.raises(UnknownBackboneError, match="ViT-B-16:laion2b_s34b_b88k"):
        parse_backbone_name("ViT-B-16:laion2b")


# --------------------------------------------------------------------------- resolution


def test_resolution_order_explicit_then_openai_cache_then_open_clip_cache(caches, tmp_path):
    clip_dir, hf_dir = caches
    explicit = save_state_dict(tmp_path / "mine" / "weights.pt")
    in_clip_cache = save_state_dict(clip_dir / "ViT-B-16.pt")
    in_hf_cache = put_in_hf_cache(hf_dir, VIT_B16_HF_REPO, "open_clip_model.safetensors")

    assert resolve_weights("ViT-B/16", explicit, cache_dir=clip_dir) == explicit
    assert resolve_weights("ViT-B/16", "", cache_dir=clip_dir) == in_clip_cache
    os.remove(in_clip_cache)
    assert resolve_weights("ViT-B/16", "", cache_dir=clip_dir) == in_hf_cache


def test_open_clip_cache_lookup_uses_the_tags_repo(caches):
    _, hf_dir = caches
    in_hf_cache = put_in_hf_cache(hf_dir, "laion/CLIP-ViT-B-16-laion2B-s34B-b88K", "open_clip_pytorch_model.bin")
    assert resolve_weights("ViT-B-16:laion2b_s34b_b88k") == in_hf_cache


def test_clip_cache_dir_env_override(caches, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    in_env_dir = save_state_dict(elsewhere / "RN50.pt")
    monkeypatch.setenv("CLIP_CACHE_DIR", str(elsewhere))
    assert resolve_weights("RN50") == in_env_dir


def test_offline_error_lists_every_path_tried_in_order(caches):
    clip_dir, hf_dir = caches
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights("ViT-B/16", "", cache_dir=clip_dir)
    error = info.value
    assert isinstance(error, FileNotFoundError)
    message = str(error)
    places = [
        str(clip_dir / "ViT-B-16.pt"),
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "download through open_clip",
    ]
    positions = [message.index(place) for place in places]
    assert positions == sorted(positions)
    assert str(hf_dir) in message
    assert len(error.tried) == 4
    assert "HF_HUB_OFFLINE" in error.tried[-1][1]
    assert "https://openaipublic.azureedge.net/clip/models/" in message
    assert "MODEL.BACKBONE.PATH" in message


def test_load_clip_fails_fast_when_offline_with_nothing_cached(caches):
    clip_dir, _ = caches
    with pytest.raises(WeightsNotFoundError, match="RN50.pt"):
        load_clip("RN50", cache_dir=clip_dir)


def test_missing_explicit_path_is_reported_not_skipped(caches, tmp_path):
    clip_dir, _ = caches
    save_state_dict(clip_dir / "ViT-B-16.pt")  # must not be used instead of the wrong explicit path
    missing = tmp_path / "typo.pt"
    with pytest.raises(WeightsNotFoundError, match="typo.pt"):
        resolve_weights("ViT-B/16", str(missing), cache_dir=clip_dir)


# --------------------------------------------------------------------------- file formats


def _write_plain(path, state):
    torch.save(state, path)


def _write_open_clip_checkpoint(path, state):
    # what open_clip's training script saves (DDP-wrapped: 'module.' prefixes)
    torch.save({"epoch": 3, "name": "run", "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)


def _write_safetensors(path, state):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path))


def _write_openai_style_archive(path, state, half=False):
    """What OpenAI ships: a traced CLIP (fp16 weights) with scalars such as input_resolution beside them."""
    model = build_clip_architecture(parse_backbone_name("tiny-vit"))
    model.load_state_dict(state)
    model.register_buffer("input_resolution", torch.tensor(32))
    if half:
        model.half()
    inputs = {"encode_text": (tokenize(["a photo"]),),
              "encode_image": (torch.zeros(1, 3, 32, 32, dtype=torch.half if half else torch.float),)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace_module(model.eval(), inputs, check_trace=False), str(path))
    return {**model.state_dict(), **dict(model.named_buffers())}  # TorchScript keeps the causal attn_mask too


def _as_bytes(tensor):
    return tensor.detach().contiguous().reshape(-1).view(torch.uint8)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_as_bytes(a), _as_bytes(b))


@pytest.mark.parametrize(
    "writer, filename",
    [
        (_write_plain, "plain.pt"),
        (_write_open_clip_checkpoint, "epoch_3.pt"),
        (_write_safetensors, "model.safetensors"),
        (_write_openai_style_archive, "ViT-tiny.pt"),
    ],
)
def test_explicit_file_formats_load_exactly(tmp_path, writer, filename):
    state = tiny_state_dict("tiny-vit")
    path = tmp_path / filename
    writer(path, state)
    model = load_clip("tiny-vit", weights_path=str(path))
    assert same_weights(model, state)


def test_fp16_files_load_as_fp32(tmp_path):
    """OpenAI's files hold fp16 weights; the loader always returns an fp32 model."""
    half = {k: v.half() if v.is_floating_point() else v for k, v in tiny_state_dict().items()}
    path = tmp_path / "half.pt"
    torch.save(half, path)
    model = load_clip("tiny-vit", weights_path=str(path))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert same_weights(model, {k: v.float() if v.is_floating_point() else v for k, v in half.items()})


@pytest.mark.filterwarnings("ignore:'torch.load' received a zip file")
def test_torchscript_archive_is_refused_by_weights_only_torch_load(tmp_path):
    """The fact behind the loader's torch.jit.load branch (torch 2.x)."""
    path = tmp_path / "archive.pt"
    _write_openai_style_archive(path, tiny_state_dict())
    with pytest.raises(RuntimeError, match="TorchScript"):
        torch.load(path, weights_only=True)


def test_mismatched_file_names_file_and_backbone(tmp_path):
    path = save_state_dict(tmp_path / "rn_weights.pt", name="tiny-rn")
    with pytest.raises(WeightsMismatchError) as info:
        load_clip("tiny-vit", weights_path=path)
    assert path in str(info.value) and "'tiny-vit'" in str(info.value)


class NotATensor:
    pass


def test_file_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {"x": NotATensor()}}, path)
    with pytest.raises(WeightsFileError, match="unsafe.pt"):
        load_clip("tiny-vit", weights_path=str(path))


# --------------------------------------------------------------------------- TorchScript archives, never run


@pytest.mark.parametrize("half", [False, True], ids=["fp32", "fp16"])
def test_openai_style_archive_tensors_are_read_bit_exactly(tmp_path, half):
    from models.torchscript_weights import read_torchscript_state_dict

    path = tmp_path / "ViT-tiny.pt"
    saved = _write_openai_style_archive(path, tiny_state_dict(), half=half)
    read = read_torchscript_state_dict(path)
    assert set(read) == set(saved)
    assert all(same_bits(read[key], saved[key]) for key in saved)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(str(path)).state_dict()  # safe here: the test built this archive
    assert list(read) == list(scripted)  # the order ScriptModule.state_dict() gives
    model = load_clip("tiny-vit", weights_path=str(path))
    expected = {k: v.float() if v.is_floating_point() else v for k, v in saved.items()}
    assert same_weights(model, {k: expected[k] for k in model.state_dict()})


def test_archive_views_keep_their_offset_stride_and_shared_storage(tmp_path):
    from models.torchscript_weights import read_torchscript_state_dict

    module = torch.nn.Linear(4, 6)
    module.register_buffer("rows", module.weight.detach()[2:5])  # offset 8 into the weight's storage
    module.register_buffer("transposed", module.weight.detach().t())
    path = tmp_path / "views.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(module, torch.zeros(1, 4)), str(path))
    read = read_torchscript_state_dict(path)
    expected = {**module.state_dict(), "rows": module.weight[2:5], "transposed": module.weight.t()}
    assert set(read) == set(expected) and all(same_bits(read[k], expected[k]) for k in expected)
    assert read["transposed"].stride() == (1, 4)
    assert read["rows"].untyped_storage().data_ptr() == read["weight"].untyped_storage().data_ptr()


class FileCreatingPayload(torch.nn.Module):
    """A module whose TorchScript __setstate__ creates the file named in its state (torch.from_file, shared)."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.weight = torch.nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.marker, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.training = state[2]
        # the result is used, so TorchScript keeps the call that creates the file
        self.weight = state[1] + torch.from_file(state[0], shared=True, size=1).sum() * 0


def _write_crafted_archive(path, marker):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(FileCreatingPayload(str(marker))), str(path))


def test_crafted_archive_is_refused_in_one_line_and_runs_nothing(tmp_path):
    path, marker = tmp_path / "crafted.pt", tmp_path / "created-on-load"
    _write_crafted_archive(path, marker)
    with pytest.raises(WeightsFileError) as info:
        load_clip("tiny-vit", weights_path=str(path))
    message = str(info.value)
    assert "\n" not in message and str(path) in message and "__setstate__" in message
    assert not marker.exists()
    with warnings.catch_warnings():  # what the loader used to do: the archive's code runs
        warnings.simplefilter("ignore")
        torch.jit.load(str(path))
    assert marker.exists(), "the payload must really create its file, or the test above proves nothing"


def test_custom_state_is_refused_even_when_the_code_check_misses_it(tmp_path, monkeypatch):
    """Second line of defence: an object saved through __getstate__ is never handed to any code."""
    import models.torchscript_weights as torchscript_weights

    path, marker = tmp_path / "crafted.pt", tmp_path / "created-on-load"
    _write_crafted_archive(path, marker)
    monkeypatch.setattr(torchscript_weights, "_DEFINES_SETSTATE", re.compile("(?!)"))  # matches nothing
    with pytest.raises(torchscript_weights.UnsafeArchiveError, match="custom __getstate__"):
        torchscript_weights.read_torchscript_state_dict(path)
    assert not marker.exists()


class _MakesFolder:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.mkdir, (self.target,)


def test_archive_naming_other_python_globals_is_refused(tmp_path):
    import zipfile

    good, bad, marker = tmp_path / "good.pt", tmp_path / "bad.pt", tmp_path / "made-by-unpickling"
    _write_openai_style_archive(good, tiny_state_dict())
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_MakesFolder(str(marker)), protocol=2)
            target.writestr(item, data)
    with pytest.raises(WeightsFileError, match="refers to (posix|os|nt).mkdir"):
        load_clip("tiny-vit", weights_path=str(bad))
    assert not marker.exists()


def test_crafted_archive_in_openai_cache_stops_train_py_with_one_line(
        demo_data_root, tmp_path, capsys, monkeypatch, restore_stdout):
    from conftest import DEMO_DATASET_CONFIG, TINY_COOP_CONFIG
    from engine.launch import main

    clip_dir, marker = tmp_path / "clip", tmp_path / "created-on-load"
    clip_dir.mkdir()
    _write_crafted_archive(clip_dir / "RN50.pt", marker)  # where OpenAI's RN50 download goes
    monkeypatch.setenv("CLIP_CACHE_DIR", str(clip_dir))
    code = main(["--root", demo_data_root, "--trainer", "ZeroshotCLIP", "--eval-only",
                 "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG,
                 "--output-dir", str(tmp_path / "out"), "MODEL.BACKBONE.NAME", "RN50",
                 "MODEL.BACKBONE.PRETRAINED", "True", "INPUT.SIZE", "(224, 224)"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "RN50.pt" in err and "__setstate__" in err
    assert not marker.exists()


# --------------------------------------------------------------------------- built models


def test_pretrained_false_builds_real_architecture_without_files(caches):
    clip_dir, _ = caches
    model = load_clip("RN50", pretrained=False, cache_dir=clip_dir)  # ~1.5 s of random init
    assert model.text_projection.shape == (512, 1024)
    assert input_resolution(model) == 224
    assert isinstance(model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-rn"])
def test_tiny_clip_forward_shapes(name):
    model = load_clip(name)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert input_resolution(model) == 32
    with torch.no_grad():
        image_features = model.encode_image(torch.randn(2, 3, 32, 32))
        text_features = model.encode_text(tokenize(["a photo of a cat.", "a dog"]))
    assert image_features.shape == (2, 40) and text_features.shape == (2, 40)


def test_tiny_widths_differ_and_model_is_small():
    model = load_clip("tiny-vit")
    vision_width = model.visual.conv1.out_channels
    text_width = model.ln_final.weight.shape[0]
    assert (vision_width, text_width, model.text_projection.shape[1]) == (48, 32, 40)
    assert isinstance(model.transformer.resblocks[0].mlp.gelu, QuickGELU)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 2_000_000  # < 8 MB in fp32; the 49408-token embedding is most of it


@pytest.mark.parametrize("name", ["tiny-vit", "tiny-rn"])
def test_tiny_weights_are_deterministic_and_leave_global_rng_alone(name):
    torch.manual_seed(7)
    rng_before = torch.get_rng_state()
    first = load_clip(name)
    assert torch.equal(torch.get_rng_state(), rng_before)
    second = load_clip(name)
    assert same_weights(first, second.state_dict())


def test_load_clip_from_cfg_reads_name_path_and_pretrained(tmp_path):
    path = save_state_dict(tmp_path / "w.pt")
    cfg = CN({"MODEL": {"BACKBONE": {"NAME": "tiny-vit", "PATH": path, "PRETRAINED": True}}})
    assert same_weights(load_clip_from_cfg(cfg), tiny_state_dict())
    cfg.MODEL.BACKBONE.PATH = ""
    assert same_weights(load_clip_from_cfg(cfg), load_clip("tiny-vit").state_dict())


def test_tokenize_uses_clip_bpe_offline():
    tokens = tokenize(["a photo of a cat.", "hi"], context_length=77)
    assert tokens.dtype == torch.long and tokens.shape == (2, 77)
    assert tokens[0, 0].item() == 49406  # <start_of_text>
    assert tokens[0].max().item() == 49407  # <end_of_text> is the largest id: argmax finds it
    assert torch.equal(tokenize("hi"), tokens[1:])

"""The one CLIP loader of the toolbox: backbone name -> frozen fp32 ``open_clip.model.CLIP``.

Weights are looked for in this order (``resolve_weights``):

  (a) an explicit file (``MODEL.BACKBONE.PATH`` / ``weights_path``);
  (a') for a backbone shipped with the repo (``demo-clip``), its file under ``models/weights/``
      and nothing else;
  (b) OpenAI's own cache, ``~/.cache/clip/<url basename>`` (e.g. ``ViT-B-16.pt``,
      ``ViT-L-14-336px.pt``); the folder is the ``cache_dir`` argument, else the
      ``CLIP_CACHE_DIR`` environment variable, else ``~/.cache/clip``;
  (c) open_clip's cache, i.e. the Hugging Face hub cache (``HF_HUB_CACHE``, else
      ``$HF_HOME/hub``, else huggingface_hub's default), looked up without network;
  (d) a download through open_clip, unless ``HF_HUB_OFFLINE`` is set or the host
      cannot be reached.

Nothing found -> one ``WeightsNotFoundError`` listing every place tried, in order.
``pretrained=False`` skips (b)-(d) and keeps the seeded random initialisation
(the tiny backbones have no published weights, so they always do that unless
given a file).

Files are read without unpickling arbitrary objects or running any code: safetensors,
state dicts and open_clip checkpoints through ``torch.load(weights_only=True)``, and
TorchScript archives (OpenAI's ``.pt`` files) through ``models.torchscript_weights``,
which reads their tensors out of the zip (``torch.jit.load`` would run the archive's
``__setstate__`` code, and ``torch.load(weights_only=True)`` refuses such archives).
"""
import os
import pickle
import socket
from dataclasses import asdict
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import urlparse

import open_clip
import torch
from open_clip.model import CLIP
from open_clip.transform import PreprocessCfg, merge_preprocess_dict

from engine.user_errors import user_error

from .backbones import BackboneSpec, build_clip_architecture, parse_backbone_name
from .encoder_options import apply_encoder_options
from .state_dict_check import state_dict_problems
from .torchscript_weights import UnsafeArchiveError, is_torchscript_archive, read_torchscript_state_dict

CLIP_CACHE_ENV = "CLIP_CACHE_DIR"
DEFAULT_CLIP_CACHE = "~/.cache/clip"
HF_ENDPOINT_DEFAULT = "https://huggingface.co"
# open_clip's file names on the hub: it prefers the safetensors file when both exist
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
# Scalars OpenAI's TorchScript archives keep next to the weights; not CLIP parameters.
OPENAI_ARCHIVE_EXTRAS = ("input_resolution", "context_length", "vocab_size")
DOWNLOAD_PROBE_TIMEOUT_S = 3.0


@user_error  # train.py prints it without a traceback and exits with status 2
class WeightsNotFoundError(FileNotFoundError):
    """No weights file for the backbone; ``tried`` lists (place, outcome) in search order."""

    def __init__(self, message: str, tried: Optional[List[Tuple[str, str]]] = None):
        super().__init__(message)
        self.tried = list(tried or [])


@user_error  # train.py prints it without a traceback and exits with status 2
class WeightsFileError(RuntimeError):
    """A weights file exists but cannot be read safely as a dict of tensors."""


class WeightsMismatchError(WeightsFileError):
    """A weights file was read but its keys or shapes do not fit the backbone."""


# --------------------------------------------------------------------------- where to look


def clip_cache_dir(cache_dir=None) -> Path:
    """OpenAI's download folder: argument, else $CLIP_CACHE_DIR, else ~/.cache/clip."""
    chosen = cache_dir or os.environ.get(CLIP_CACHE_ENV) or DEFAULT_CLIP_CACHE
    return Path(os.path.expanduser(str(chosen)))


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time.

    huggingface_hub reads these variables once, at import; reading them here
    lets a test (or a late ``os.environ`` change) redirect the lookup.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.path.expanduser(os.environ["HF_HUB_CACHE"]))
    if os.environ.get("HF_HOME"):
        return Path(os.path.expanduser(os.environ["HF_HOME"])) / "hub"
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:
        return Path(os.path.expanduser("~/.cache/huggingface/hub"))


def _hf_offline() -> bool:
    """HF_HUB_OFFLINE now (the environment) or when huggingface_hub was imported (its constant)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except ImportError:
        return False


def _hf_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", HF_ENDPOINT_DEFAULT).rstrip("/")


def _hf_repo_and_files(pretrained_cfg: dict) -> Tuple[str, List[str]]:
    """Repo id and file names open_clip would fetch for this tag ('' if it has no hub copy)."""
    hf_hub = pretrained_cfg.get("hf_hub", "")
    if not hf_hub:
        return "", []
    # open_clip's convention: 'org/repo/' means the default file, 'org/repo/file' that file
    repo_id, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return repo_id, [HF_SAFE_WEIGHTS_NAME, filename]
    if filename.endswith((".bin", ".pth")):
        return repo_id, [filename[:-4] + ".safetensors", filename]
    return repo_id, [filename]


def _hf_cached_file(repo_id: str, filename: str, hf_dir: Path) -> Tuple[Optional[str], str]:
    """(path if cached, the path that was checked) without touching the network."""
    repo_dir = hf_dir / ("models--" + repo_id.replace("/", "--"))
    ref_file = repo_dir / "refs" / "main"
    revision = ref_file.read_text().strip() if ref_file.is_file() else "<main>"
    checked = str(repo_dir / "snapshots" / revision / filename)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None, checked
    found = try_to_load_from_cache(repo_id, filename, cache_dir=str(hf_dir))
    return (found if isinstance(found, str) and os.path.isfile(found) else None), checked


def _reachable(host: str, port: int = 443) -> Tuple[bool, str]:
    """Quick connectivity probe.

    Offline, huggingface_hub retries each file for ~25 s before giving up; a
    3 s probe first keeps an offline run's error immediate.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True, ""  # a proxy may reach what a direct connection cannot: let the download try
    try:
        socket.create_connection((host, port), timeout=DOWNLOAD_PROBE_TIMEOUT_S).close()
        return True, ""
    except OSError as err:
        return False, f"cannot reach {host} ({err})"


def _download(spec: BackboneSpec, clip_dir: Path, hf_dir: Path) -> Tuple[Optional[str], str, str]:
    """Try open_clip's downloader: (path or None, what was tried, outcome)."""
    pretrained_cfg = spec.pretrained_cfg
    repo_id, files = _hf_repo_and_files(pretrained_cfg)
    url = pretrained_cfg.get("url", "")
    use_hub = bool(repo_id) and open_clip.pretrained.has_hf_hub()
    if use_hub:
        target = f"{_hf_endpoint()}/{repo_id} ({' or '.join(files)}) into {hf_dir}"
    elif url:
        target = f"{url} into {clip_dir}"
    else:
        return None, "download", "no download source known to open_clip"
    if _hf_offline():
        return None, target, "skipped: HF_HUB_OFFLINE is set"
    ok, why = _reachable(urlparse(_hf_endpoint() if use_hub else url).hostname or "")
    if not ok:
        return None, target, f"skipped: {why}"
    try:
        if use_hub:
            path = open_clip.pretrained.download_pretrained_from_hf(repo_id, filename=files[-1], cache_dir=str(hf_dir))
        else:
            path = open_clip.pretrained.download_pretrained_from_url(url, cache_dir=str(clip_dir))
    except Exception as err:  # any network / hub failure just ends the search
        return None, target, f"failed: {type(err).__name__}: {err}"
    return path, target, "downloaded"


def _how_to_get(spec: BackboneSpec, clip_dir: Path) -> List[str]:
    pretrained_cfg = spec.pretrained_cfg
    url = pretrained_cfg.get("url", "")
    repo_id, files = _hf_repo_and_files(pretrained_cfg)
    steps = []
    if url:
        steps.append(
            f"download {url} to {clip_dir / os.path.basename(url)} "
            f"(${CLIP_CACHE_ENV} or the cache_dir argument changes the folder)"
        )
    if repo_id:
        steps.append(f"download {_hf_endpoint()}/{repo_id}/resolve/main/{files[0]} and point MODEL.BACKBONE.PATH at it")
    steps.append("set MODEL.BACKBONE.PATH (weights_path=) to a local CLIP weights file")
    steps.append("set MODEL.BACKBONE.PRETRAINED False for random weights (benchmarks only)")
    return steps


def _not_found(spec: BackboneSpec, tried: List[Tuple[str, str]], clip_dir: Path, reason="") -> WeightsNotFoundError:
    described = f"{spec.name!r} (open_clip {spec.arch!r}, pretrained tag {spec.pretrained_tag!r})"
    lines = [f"No CLIP weights found for backbone {described}.{(' ' + reason) if reason else ''}"]
    if tried:
        lines.append("Tried, in order:")
        lines += [f"  {i}. {place} -- {outcome}" for i, (place, outcome) in enumerate(tried, 1)]
    lines.append("To fix, do one of:")
    lines += [f"  - {step}" for step in _how_to_get(spec, clip_dir)]
    return WeightsNotFoundError("\n".join(lines), tried)


def _resolve(spec: BackboneSpec, explicit_path="", cache_dir=None) -> str:
    clip_dir = clip_cache_dir(cache_dir)
    if explicit_path:
        # An explicit path that is wrong is a typo to report, not a reason to load other weights.
        path = Path(os.path.expanduser(str(explicit_path)))
        if path.is_file():
            return str(path)
        tried = [(f"MODEL.BACKBONE.PATH {path}", "not found")]
        raise _not_found(spec, tried, clip_dir, "The explicit weights path does not exist.")
    if spec.shipped_weights:
        # The repo's own file is the only source: no cache or hub holds these weights.
        if os.path.isfile(spec.shipped_weights):
            return spec.shipped_weights
        tried = [(f"weights shipped with the repo {spec.shipped_weights}", "not found")]
        raise _not_found(spec, tried, clip_dir, "Restore the file from git, or re-create it with "
                                                "python3 tools/pretrain_demo_clip.py.")
    if spec.is_tiny:
        raise _not_found(spec, [], clip_dir, "Tiny backbones have no published weights (load_clip seeds them).")
    if spec.pretrained_tag is None:
        raise _not_found(
            spec, [], clip_dir,
            f"No pretrained tag chosen: name one as '{spec.arch}:<tag>' from "
            f"{open_clip.list_pretrained_tags_by_model(spec.arch)}.",
        )

    tried = []
    url = spec.pretrained_cfg.get("url", "")
    if url:  # open_clip and OpenAI's clip both download to <cache>/<url basename>
        candidate = clip_dir / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
        tried.append((f"OpenAI CLIP cache {candidate}", "not found"))

    hf_dir = hf_cache_dir()
    repo_id, files = _hf_repo_and_files(spec.pretrained_cfg)
    for filename in files:
        found, checked = _hf_cached_file(repo_id, filename, hf_dir)
        if found:
            return found
        tried.append((f"open_clip (Hugging Face) cache {checked}", "not found"))

    downloaded, target, outcome = _download(spec, clip_dir, hf_dir)
    if downloaded:
        return downloaded
    tried.append((f"download through open_clip: {target}", outcome))
    raise _not_found(spec, tried, clip_dir)


def resolve_weights(backbone_name, explicit_path="", cache_dir=None) -> str:
    """Path of the weights file for ``backbone_name``; raises WeightsNotFoundError.

    See the module docstring for the search order. ``cache_dir`` replaces OpenAI's
    ``~/.cache/clip`` (default: $CLIP_CACHE_DIR, else ~/.cache/clip).
    """
    return _resolve(parse_backbone_name(backbone_name), explicit_path, cache_dir)


# --------------------------------------------------------------------------- reading files


def _is_safetensors(path: str) -> bool:
    if path.endswith(".safetensors"):
        return True
    # safetensors layout: 8-byte little-endian header length, then a JSON header
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < os.path.getsize(path)


def _read_raw(path: str):
    if _is_safetensors(path):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    if is_torchscript_archive(path):
        return read_torchscript_state_dict(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def read_state_dict(path: str, backbone_name: str = "") -> dict:
    """A CLIP state dict from a safetensors file, a state dict, an open_clip checkpoint or a TorchScript archive."""
    for_backbone = f" for backbone {backbone_name!r}" if backbone_name else ""
    try:
        obj = _read_raw(str(path))
    except UnsafeArchiveError as err:
        raise WeightsFileError(
            f"{path}{for_backbone}: refused: {err}. TorchScript archives are read without running any of "
            f"their code; use OpenAI's original file, or re-save the weights as a plain state dict."
        ) from err
    except pickle.UnpicklingError as err:
        raise WeightsFileError(
            f"{path}{for_backbone}: refused to load, the file holds pickled Python objects other than "
            f"tensors (only weights_only loading is allowed). Re-save it as a plain state dict. ({err})"
        ) from err
    except Exception as err:
        raise WeightsFileError(
            f"{path}{for_backbone}: cannot be read as CLIP weights ({type(err).__name__}: {err})"
        ) from err

    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # open_clip training checkpoint {epoch, name, state_dict, optimizer}
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(f"{path}{for_backbone}: expected a dict of tensors, got {type(obj).__name__}")
    state = dict(obj)
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}  # saved from DataParallel/DDP
    for key in OPENAI_ARCHIVE_EXTRAS:
        state.pop(key, None)
    return state


def load_state_dict_strict(model: CLIP, state: dict, path: str, backbone_name: str):
    """Copy ``state`` into ``model``; any missing/unexpected key or shape difference is one clear error."""
    expected = model.state_dict()
    # Non-persistent buffers (the causal attn_mask) are rebuilt by the architecture;
    # TorchScript exports still save them, so they are ignored rather than unexpected.
    derived = {name for name, _ in model.named_buffers()} - set(expected)
    state = {k: v for k, v in state.items() if k not in derived}
    # BatchNorm's step counter is irrelevant in eval mode and absent from some exports
    problems = state_dict_problems(
        expected, state, optional=lambda key: key.endswith("num_batches_tracked")
    )
    if problems:
        raise WeightsMismatchError(
            f"Weights file {path} does not match backbone {backbone_name!r}: {'; '.join(problems)}. "
            f"Check MODEL.BACKBONE.NAME against the file (or MODEL.BACKBONE.PATH)."
        )
    model.load_state_dict(state, strict=False)  # strictness checked above, with a better message


# --------------------------------------------------------------------------- building models


def _attach_preprocess_cfg(model: CLIP, spec: BackboneSpec):
    # What open_clip's create_model records (mean/std/interpolation), for code that builds transforms.
    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), spec.pretrained_cfg)
    cfg["size"] = model.visual.image_size
    open_clip.set_model_preprocess_cfg(model, cfg)


def _freeze(model: CLIP) -> CLIP:
    model.float().eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _weights_source(spec: BackboneSpec, weights_path, pretrained, cache_dir) -> Optional[str]:
    """The file to load, or None to keep the seeded random initialisation."""
    if weights_path:
        return _resolve(spec, weights_path, cache_dir)
    if not pretrained or spec.is_tiny:
        return None
    return _resolve(spec, "", cache_dir)


def _load(backbone_name, weights_path="", pretrained=True, device="cpu", cache_dir=None) -> Tuple[CLIP, Optional[str]]:
    spec = parse_backbone_name(backbone_name)
    path = _weights_source(spec, weights_path, pretrained, cache_dir)  # before building: fail fast
    state = read_state_dict(path, spec.name) if path is not None else None
    model = build_clip_architecture(spec)
    if state is not None:
        load_state_dict_strict(model, state, path, spec.name)
    _attach_preprocess_cfg(model, spec)
    return _freeze(model.to(device)), path


def load_clip(backbone_name, weights_path="", pretrained=True, device="cpu", cache_dir=None) -> CLIP:
    """A frozen (eval, requires_grad False) fp32 ``open_clip.model.CLIP`` for ``backbone_name``.

    ``weights_path`` is loaded whenever given. Otherwise ``pretrained=True`` searches
    the caches (see ``resolve_weights``) and ``pretrained=False`` keeps the seeded
    random initialisation of the real architecture. Tiny backbones are seeded
    unless given a file.
    """
    return _load(backbone_name, weights_path, pretrained, device, cache_dir)[0]


def load_clip_from_cfg(cfg, device="cpu") -> CLIP:
    """``load_clip`` driven by cfg.MODEL.BACKBONE.NAME / PATH / PRETRAINED, with the
    encoders' execution options of ``cfg.MODEL.TEXT_ENCODER`` (``models.encoder_options``)."""
    backbone = cfg.MODEL.BACKBONE
    name = backbone.NAME
    model, path = _load(
        name,
        weights_path=backbone.get("PATH", "") or "",
        pretrained=bool(backbone.get("PRETRAINED", True)),
        device=device,
    )
    print(f"Loading CLIP (backbone: {name}) from {path or 'seeded random initialisation'}")
    return apply_encoder_options(model, cfg)


def tokenize(texts, context_length=77) -> torch.LongTensor:
    """CLIP BPE token ids [N, context_length] (open_clip's bundled vocabulary; works offline)."""
    if isinstance(texts, str):
        texts = [texts]
    return open_clip.tokenize(list(texts), context_length=context_length)


def input_resolution(clip_model) -> int:
    """Side length in pixels of the images ``clip_model.visual`` expects."""
    size = clip_model.visual.image_size
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"non-square CLIP input size {tuple(size)}")
        size = size[0]
    return int(size)

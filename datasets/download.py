"""Download datasets into the layout the dataset classes read (used by tools/download_datasets.py).

Sources come from the catalog: the hosts CoOp's DATASETS.md points to (Google Drive via
``gdown``, official web sites) and, where a host is dead or incomplete, the prepared zips
on the Hugging Face mirror. Before downloading anything the needed hosts are probed, so
an offline machine fails at once with the list of URLs to fetch by hand.
"""
import json
import os
import shutil
import socket
import tarfile
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

from datasets.catalog import CATALOG, HF_MIRROR, HF_MIRROR_URL, IMAGENET_CLASSNAMES
from datasets.errors import DatasetError
from datasets.pipeline import require_layout

MIN_ARCHIVE_FRACTION = 0.2  # catalog sizes are approximate; error pages are far smaller
# Datasets whose official sources do not cover the images (licence or no direct link).
MANUAL_IMAGES = {"ImageNet", "ImageNetSketch", "ImageNet21K"}
IMAGENET_VARIANTS = ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")


class DownloadError(RuntimeError):
    pass


def source_url(source):
    if source.kind == "gdrive":
        return f"https://drive.google.com/file/d/{source.url}/view"
    if source.kind == "hf":
        return f"{HF_MIRROR_URL}/resolve/main/{source.url}"
    return source.url


def choose_sources(info, preference="auto"):
    """The Sources to fetch for ``info``: "official", "mirror" or "auto" (official unless dead).

    Datasets the mirror lacks (ImageNet, ImageNet-21K) always use their official small files.
    """
    official_ok = all(s.alive for s in info.official) and info.name not in MANUAL_IMAGES
    use_official = preference == "official" or (preference == "auto" and official_ok)
    return list(info.official if use_official or not info.mirror else info.mirror)


def destination(root, info, source):
    """(folder to place the file in, folder to unpack it into or None)."""
    dataset_dir = os.path.join(root, info.folder)
    if source.kind == "hf":
        return root, root  # the mirror's zips hold the dataset folder itself
    if source.unpack_to is None:
        return dataset_dir, None
    if source.unpack_to == "":
        return dataset_dir, root
    return dataset_dir, os.path.normpath(os.path.join(dataset_dir, source.unpack_to))


def is_archive(filename):
    return filename.endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def manual_instructions(root, infos, preference="auto"):
    """Lines telling a user which URL to fetch by hand and where each file goes."""
    lines = []
    for info in infos:
        lines.append(f"{info.name} (see DATASETS.md, section \"{info.section}\"):")
        if info.name in MANUAL_IMAGES:
            lines.append("  images: obtain by hand as DATASETS.md describes (licence / no direct link)")
        for source in choose_sources(info, preference):
            place, unpack = destination(root, info, source)
            action = f"unpack into {unpack}" if unpack and is_archive(source.filename) else f"put in {place}"
            lines.append(f"  {source_url(source)}\n    -> {source.filename}: {action}")
    return lines


def host_of(source):
    return urllib.parse.urlparse(source_url(source)).hostname


def can_reach(host, timeout=3.0):
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def looks_like_html(path):
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def verify_download(path, source, expected_bytes=None):
    """Reject truncated files, error pages and archives far smaller than the real ones.

    The exact size is checked when the server announced it; otherwise archives must be
    at least MIN_ARCHIVE_FRACTION of the catalog's (approximate) size and JSON must parse.
    """
    size = os.path.getsize(path)
    hint = f"Fetch {source_url(source)} by hand into {os.path.dirname(path)}."
    if expected_bytes is not None and size != expected_bytes:
        raise DownloadError(f"{path}: {size:,} bytes, the server announced {expected_bytes:,}. {hint}")
    if size == 0 or looks_like_html(path):
        raise DownloadError(f"{path} is empty or an HTML page (quota or login notice?). {hint}")
    if is_archive(source.filename) and size < source.approx_bytes * MIN_ARCHIVE_FRACTION:
        raise DownloadError(f"{path}: {size:,} bytes, expected about {source.approx_bytes:,}. {hint}")
    if source.filename.endswith(".json"):
        try:
            with open(path, "r", encoding="utf-8") as f:
                json.load(f)
        except ValueError as exc:
            raise DownloadError(f"{path} is not valid JSON ({exc}). {hint}") from exc
    return size


class Fetchers:
    """Network access, one method per source kind (tests substitute a fake)."""

    def fetch(self, source, dest_dir):
        os.makedirs(dest_dir, exist_ok=True)
        path = os.path.join(dest_dir, source.filename)
        expected = getattr(self, f"fetch_{source.kind}")(source, path)
        verify_download(path, source, expected)
        return path

    def fetch_http(self, source, path):
        tmp = path + ".part"
        with urllib.request.urlopen(source.url, timeout=60) as response, open(tmp, "wb") as f:
            length = response.headers.get("Content-Length")
            shutil.copyfileobj(response, f, length=1 << 20)
        os.replace(tmp, path)
        return int(length) if length else None

    def fetch_gdrive(self, source, path):
        try:
            import gdown
        except ImportError:
            raise DownloadError(
                f"Google Drive files need gdown (pip install gdown), or fetch {source_url(source)} "
                f"by hand into {path}"
            ) from None
        if gdown.download(id=source.url, output=path, quiet=False) is None:
            raise DownloadError(f"gdown could not fetch {source_url(source)}; fetch it by hand into {path}")
        return None

    def fetch_hf(self, source, path):
        try:
            from huggingface_hub import hf_hub_download
        except ImportError:
            raise DownloadError(
                f"the mirror needs huggingface_hub (pip install huggingface_hub), or fetch "
                f"{source_url(source)} by hand into {path}"
            ) from None
        got = hf_hub_download(HF_MIRROR, source.url, local_dir=os.path.dirname(path))
        if os.path.abspath(got) != os.path.abspath(path):
            shutil.move(got, path)
        return None


def _safe_members(names, target):
    target = os.path.realpath(target)
    for name in names:
        dest = os.path.realpath(os.path.join(target, name))
        if dest != target and not dest.startswith(target + os.sep):
            raise DownloadError(f"archive member {name!r} would be written outside {target}")


def unpack(archive, target):
    """Extract a zip / tar(.gz) into ``target``, refusing members that escape it."""
    os.makedirs(target, exist_ok=True)
    if archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            _safe_members(zf.namelist(), target)
            zf.extractall(target)
    else:
        with tarfile.open(archive) as tf:
            _safe_members(tf.getnames(), target)
            tf.extractall(target, filter="data")


def move_fgvc_data(root):
    """fgvc-aircraft-2013b.tar.gz unpacks to fgvc-aircraft-2013b/data; CoOp wants $DATA/fgvc_aircraft."""
    src = os.path.join(root, "fgvc-aircraft-2013b", "data")
    dst = os.path.join(root, "fgvc_aircraft")
    if os.path.isdir(src) and not os.path.exists(dst):
        shutil.move(src, dst)
        shutil.rmtree(os.path.join(root, "fgvc-aircraft-2013b"), ignore_errors=True)


def ensure_variant_classnames(root, info, fetchers):
    """ImageNet variants read ImageNet's classnames.txt: copy it, or fetch it."""
    dest = os.path.join(root, info.folder, "classnames.txt")
    if os.path.isfile(dest):
        return
    imagenet_copy = os.path.join(root, CATALOG["ImageNet"].folder, "classnames.txt")
    if os.path.isfile(imagenet_copy):
        shutil.copyfile(imagenet_copy, dest)
    else:
        fetchers.fetch(IMAGENET_CLASSNAMES, os.path.dirname(dest))


def download_dataset(root, info, fetchers, preference="auto", keep_archives=False, log=print):
    for source in choose_sources(info, preference):
        place, target = destination(root, info, source)
        log(f"[{info.name}] fetching {source_url(source)}")
        path = fetchers.fetch(source, place)
        if target and is_archive(source.filename):
            log(f"[{info.name}] unpacking {source.filename} into {target}")
            unpack(path, target)
            if not keep_archives:
                os.remove(path)
    if info.name == "FGVCAircraft":
        move_fgvc_data(root)
    if info.name in IMAGENET_VARIANTS:
        ensure_variant_classnames(root, info, fetchers)


def download(root, names, fetchers=None, preference="auto", keep_archives=False, reach=can_reach, log=print):
    """Fetch and unpack each dataset in ``names``; returns ``{name: layout problem}`` (empty = done).

    Raises DownloadError at once, before any download, when a needed host is unreachable.
    """
    root = os.path.abspath(os.path.expanduser(root))
    infos = [CATALOG[n] for n in names]
    hosts = sorted({host_of(s) for info in infos for s in choose_sources(info, preference)})
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:  # probe in parallel: fail fast
        unreachable = [h for h, ok in zip(hosts, pool.map(reach, hosts)) if not ok]
    if unreachable:
        raise DownloadError(
            f"cannot reach {', '.join(unreachable)} (offline?). Fetch these by hand:\n"
            + "\n".join(manual_instructions(root, infos, preference))
        )
    fetchers = fetchers or Fetchers()
    os.makedirs(root, exist_ok=True)
    problems = {}
    for info in infos:
        download_dataset(root, info, fetchers, preference, keep_archives, log)
        try:
            require_layout(info, os.path.join(root, info.folder))
        except DatasetError as exc:
            problems[info.name] = str(exc)
    return problems

"""Find image files that cannot be decoded, before a training run trips over them."""
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from engine.bundled.data.image_decoding import open_rgb


def image_problem(path):
    """None if ``path`` decodes to an RGB image the way training reads it, else a one-line reason."""
    try:
        with Image.open(path) as img:
            img.verify()  # structure and checksums; does not decode pixels
        open_rgb(path)  # truncated data and unusable value ranges only show up when decoding
    except Exception as exc:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        return f"{type(exc).__name__}: {exc}"
    return None


def find_bad_images(paths, workers=8, progress=False):
    """``[(path, reason)]`` for every unreadable file among ``paths`` (sorted, de-duplicated)."""
    paths = sorted(set(paths))
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(image_problem, paths, chunksize=64)
        if progress:
            from tqdm import tqdm

            results = tqdm(results, total=len(paths), unit="img")
        return [(p, reason) for p, reason in zip(paths, results) if reason]

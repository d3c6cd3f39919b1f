"""tools/check_dataset.py, tools/scan_images.py and tools/download_datasets.py (no network)."""
import io
import json
import os
import tarfile
import zipfile

import pytest
from PIL import Image

from datasets.catalog import CATALOG
from datasets.download import DownloadError, unpack, verify_download
from datasets.image_check import find_bad_images, image_problem
from tests.fixtures.fake_datasets import make_fake_dataset
from tools import check_dataset, download_datasets, scan_images

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corrupt(path, truncate=False):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2] if truncate else b"this is not an image")


# --- check_dataset -------------------------------------------------------------------------

def test_check_dataset_reports_classes_and_split_sizes(tmp_path, capsys):
    make_fake_dataset(tmp_path, "oxford_pets")
    config = os.path.join(REPO, "configs", "datasets", "oxford_pets.yaml")
    assert check_dataset.main(["--root", str(tmp_path), "--dataset-config-file", config]) == 0
    out = capsys.readouterr().out
    assert "classes: 5 (abyssinian, american_bulldog" in out
    assert "train: 20 images" in out and "val:   10 images" in out and "test:  15 images" in out
    assert "OK" in out


def test_check_dataset_reports_missing_files_and_layout(tmp_path, capsys):
    make_fake_dataset(tmp_path, "dtd")
    os.remove(tmp_path / "dtd" / "images" / "banded" / "banded_0001.jpg")
    code = check_dataset.main(["--root", str(tmp_path), "--dataset", "dtd,eurosat"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISSING 1 train files" in out and "banded_0001.jpg" in out
    assert "EuroSAT" in out and "MISSING image folder" in out and "Extract `EuroSAT.zip`" in out


def test_check_dataset_scans_images_on_request(tmp_path, capsys):
    make_fake_dataset(tmp_path, "eurosat")
    corrupt(str(tmp_path / "eurosat" / "2750" / "Forest" / "Forest_2.jpg"))
    assert check_dataset.main(["--root", str(tmp_path), "--dataset", "eurosat"]) == 0
    assert check_dataset.main(["--root", str(tmp_path), "--dataset", "eurosat", "--scan-images"]) == 1
    assert "unreadable images: 1" in capsys.readouterr().out


def test_check_dataset_passes_config_overrides(tmp_path, capsys):
    make_fake_dataset(tmp_path, "imagenet21k")
    args = ["--root", str(tmp_path), "--dataset", "imagenet21k", "DATASET.IN21K_CLASS_SET", "all"]
    assert check_dataset.main(args) == 0
    assert "classes: 7" in capsys.readouterr().out


def test_check_dataset_reports_an_empty_class_folder(tmp_path, capsys):
    fake = make_fake_dataset(tmp_path, "imagenet")
    empty = tmp_path / "imagenet" / "images" / "train" / "n01443537"
    for image in os.listdir(empty):
        os.remove(empty / image)
    assert check_dataset.main(["--root", str(tmp_path), "--dataset", "imagenet"]) == 1
    out = capsys.readouterr().out
    assert f"ERROR: ImageNet: 1 of {len(fake.classnames)} class folders are empty (the first: {empty})" in out


def test_check_dataset_rejects_unknown_dataset(tmp_path):
    with pytest.raises(SystemExit):
        check_dataset.main(["--root", str(tmp_path), "--dataset", "mnist"])


# --- scan_images ---------------------------------------------------------------------------

def test_scan_lists_every_bad_file(tmp_path, capsys):
    make_fake_dataset(tmp_path, "food101")
    images = tmp_path / "food-101" / "images"
    corrupt(str(images / "apple_pie" / "100000.jpg"))
    os.remove(images / "baklava" / "100037.jpg")
    report = tmp_path / "bad.txt"
    code = scan_images.main(["--root", str(tmp_path), "--dataset", "food101", "--output", str(report)])
    lines = report.read_text().splitlines()
    assert code == 1 and len(lines) == 2
    assert lines[0].startswith(str(images / "apple_pie" / "100000.jpg") + "\t")
    assert lines[1] == f"{images / 'baklava' / '100037.jpg'}\tmissing"
    assert "2 bad of 45" in capsys.readouterr().err


def test_scan_of_clean_dataset_passes(tmp_path):
    make_fake_dataset(tmp_path, "caltech101")
    assert scan_images.main(["--root", str(tmp_path), "--dataset", "caltech101"]) == 0


def test_truncated_image_is_caught(tmp_path):
    path = str(tmp_path / "big.jpg")
    Image.effect_noise((256, 256), 50).convert("RGB").save(path, quality=95)
    assert image_problem(path) is None
    corrupt(path, truncate=True)
    assert image_problem(path) is not None
    assert [p for p, _ in find_bad_images([path, path])] == [path]


# --- download_datasets (no network) -----------------------------------------------------

class RecordingFetchers:
    """Stands in for the network: writes prepared bytes instead of downloading."""

    def __init__(self, payloads):
        self.payloads, self.calls = payloads, []

    def fetch(self, source, dest_dir):
        self.calls.append(source.filename)
        os.makedirs(dest_dir, exist_ok=True)
        path = os.path.join(dest_dir, source.filename)
        open(path, "wb").write(self.payloads[source.filename])
        verify_download(path, source)
        return path


class NoNetwork:
    def fetch(self, source, dest_dir):
        raise AssertionError("tried to download although offline")


def pack_folder(folder, arcname, fmt):
    buffer = io.BytesIO()
    if fmt == "zip":
        with zipfile.ZipFile(buffer, "w") as zf:
            for dirpath, _, files in os.walk(folder):
                for f in files:
                    full = os.path.join(dirpath, f)
                    zf.write(full, os.path.join(arcname, os.path.relpath(full, folder)))
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
            tf.add(folder, arcname=arcname)
    return buffer.getvalue()


def test_offline_fails_at_once_with_urls(tmp_path, capsys):
    code = download_datasets.main(
        ["--root", str(tmp_path), "dtd", "caltech101"], fetchers=NoNetwork(), reach=lambda host: False
    )
    err = capsys.readouterr().err
    assert code == 2 and "offline" in err
    assert "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz" in err
    assert "https://drive.google.com/file/d/1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x/view" in err
    assert "huggingface.co/zhengli97/prompt_learning_dataset" in err  # Caltech's link is dead
    assert not os.listdir(tmp_path)


def test_print_urls_needs_no_network(tmp_path, capsys):
    assert download_datasets.main(["--root", str(tmp_path), "imagenet", "--print-urls"], fetchers=NoNetwork()) == 0
    out = capsys.readouterr().out
    assert "obtain by hand" in out and "1-61f_ol79pViBFDG_IDlUQSwoLcn2XXF" in out


def test_mirror_zip_is_unpacked_into_the_expected_layout(tmp_path, monkeypatch):
    make_fake_dataset(tmp_path / "staging", "caltech101")
    payload = pack_folder(str(tmp_path / "staging" / "caltech-101"), "caltech-101", "zip")
    fetchers = RecordingFetchers({"caltech-101.zip": payload})
    monkeypatch.setattr("datasets.download.MIN_ARCHIVE_FRACTION", 0)
    root = tmp_path / "data"
    assert download_datasets.main(["--root", str(root), "caltech101"], fetchers=fetchers, reach=lambda h: True) == 0
    assert fetchers.calls == ["caltech-101.zip"]
    assert (root / "caltech-101" / "split_zhou_Caltech101.json").is_file()
    assert not (root / "caltech-101.zip").exists()
    assert check_dataset.main(["--root", str(root), "--dataset", "caltech101"]) == 0


def test_official_archives_and_split_file_land_in_place(tmp_path, monkeypatch):
    make_fake_dataset(tmp_path / "staging", "dtd")
    staged = tmp_path / "staging" / "dtd"
    split = (staged / "split_zhou_DescribableTextures.json").read_bytes()
    os.remove(staged / "split_zhou_DescribableTextures.json")
    fetchers = RecordingFetchers({
        "dtd-r1.0.1.tar.gz": pack_folder(str(staged), "dtd", "tar"),
        "split_zhou_DescribableTextures.json": split,
    })
    monkeypatch.setattr("datasets.download.MIN_ARCHIVE_FRACTION", 0)
    root = tmp_path / "data"
    assert download_datasets.main(["--root", str(root), "dtd"], fetchers=fetchers, reach=lambda h: True) == 0
    assert check_dataset.main(["--root", str(root), "--dataset", "dtd"]) == 0


def test_incomplete_download_is_reported(tmp_path, monkeypatch, capsys):
    fetchers = RecordingFetchers({"eurosat.zip": pack_folder(str(tmp_path), "eurosat", "zip")})
    monkeypatch.setattr("datasets.download.MIN_ARCHIVE_FRACTION", 0)
    code = download_datasets.main(["--root", str(tmp_path / "data"), "eurosat"], fetchers=fetchers,
                                  reach=lambda h: True)
    assert code == 1 and "still incomplete" in capsys.readouterr().err


def test_downloads_are_verified(tmp_path):
    source = CATALOG["DescribableTextures"].official[0]
    page = tmp_path / source.filename
    page.write_bytes(b"<!DOCTYPE html><html>Google Drive quota exceeded</html>")
    with pytest.raises(DownloadError, match="HTML page"):
        verify_download(str(page), source)
    page.write_bytes(b"\x1f\x8b" + b"0" * 1000)
    with pytest.raises(DownloadError, match="expected about"):
        verify_download(str(page), source)
    with pytest.raises(DownloadError, match="announced"):
        verify_download(str(page), source, expected_bytes=5)
    split = CATALOG["DescribableTextures"].official[1]
    bad_json = tmp_path / split.filename
    bad_json.write_text("{oops")
    with pytest.raises(DownloadError, match="not valid JSON"):
        verify_download(str(bad_json), split)
    bad_json.write_text(json.dumps({"train": [], "val": [], "test": []}))
    assert verify_download(str(bad_json), split) > 0


def test_unpack_refuses_paths_outside_the_target(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(DownloadError, match="outside"):
        unpack(str(archive), str(tmp_path / "target"))
    assert not (tmp_path / "escaped.txt").exists()

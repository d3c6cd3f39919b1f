"""Shared test setup: offline, bundled engine unless asked otherwise, tiny CLIP configs."""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

TINY_COOP_CONFIG = os.path.join(REPO_ROOT, "configs", "trainers", "CoOp", "tiny_vit.yaml")
DEMO_DATASET_CONFIG = os.path.join(REPO_ROOT, "configs", "datasets", "demo.yaml")


@pytest.fixture(scope="session")
def demo_data_root(tmp_path_factory):
    """A data root holding the generated demo dataset (generated once per session)."""
    from datasets.demo import generate_demo_dataset

    root = tmp_path_factory.mktemp("data")
    generate_demo_dataset(str(root))
    return str(root)


@pytest.fixture
def make_cfg(demo_data_root, tmp_path):
    """Build a frozen config the way train.py does: make_cfg(trainer, *opts)."""
    from engine.launch import build_arg_parser, setup_cfg

    def build(trainer="CoOp", *opts, config_file=TINY_COOP_CONFIG, output_dir=None):
        argv = [
            "--root", demo_data_root,
            "--trainer", trainer,
            "--dataset-config-file", DEMO_DATASET_CONFIG,
            "--config-file", config_file,
            "--output-dir", output_dir or str(tmp_path / "output"),
            "--seed", "1",
            *[str(o) for o in opts],
        ]
        return setup_cfg(build_arg_parser().parse_args(argv))

    return build


@pytest.fixture
def restore_stdout():
    """setup_logger replaces sys.stdout with a tee; close it and put the original back."""
    from engine.bundled.utils.logger import Logger

    yield
    while isinstance(sys.stdout, Logger):  # close() hands back the stream it wrapped
        sys.stdout.close()


@pytest.fixture(scope="session")
def trained_run(demo_data_root, tmp_path_factory):
    """A finished one-epoch CoOp run folder (tests/fixtures/one_epoch_run.py), trained once
    per session: copy it before changing it."""
    from tests.fixtures.one_epoch_run import train_one_epoch

    return train_one_epoch(demo_data_root, tmp_path_factory.mktemp("trained") / "run")

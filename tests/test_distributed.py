"""Multi-process runs on the CPU (gloo): sharded evaluation, DDP training, rank-0 output."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from conftest import DEMO_DATASET_CONFIG, REPO_ROOT, TINY_COOP_CONFIG
from engine.run_record import TRAIN_RECORD

RESULT_LINE = re.compile(r"^\* (total|correct|accuracy|error|macro_f1): .*$", re.M)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- helpers, no processes


def test_shards_cover_an_uneven_set_once_without_padding():
    from engine.distributed import shard_indices

    shards = [shard_indices(9, rank, 2) for rank in range(2)]
    assert shards == [[0, 2, 4, 6, 8], [1, 3, 5, 7]]
    assert sorted(shards[0] + shards[1]) == list(range(9))
    assert shard_indices(2, 2, 3) == []  # more ranks than images: an empty shard


def test_merge_orders_by_index_and_drops_duplicates():
    from engine.distributed import merge_predictions

    rank0 = (torch.tensor([0, 2, 4]), torch.tensor([[0.0], [2.0], [4.0]]), torch.tensor([0, 2, 4]))
    rank1 = (torch.tensor([1, 3, 4]), torch.tensor([[1.0], [3.0], [4.0]]), torch.tensor([1, 3, 4]))
    empty = (torch.empty(0, dtype=torch.long), torch.empty(0), torch.empty(0, dtype=torch.long))
    indices, outputs, labels = merge_predictions([rank0, rank1, empty])
    assert indices.tolist() == [0, 1, 2, 3, 4]
    assert outputs[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert labels.tolist() == [0, 1, 2, 3, 4]


def test_sharded_evaluation_gathers_predicted_classes_and_gives_the_same_result(
        make_cfg, monkeypatch, capsys, restore_stdout):
    import engine.bundled.trainer as bundled_trainer
    from engine import build_trainer

    trainer = build_trainer(make_cfg("ZeroshotCLIP", "DATALOADER.TEST.BATCH_SIZE", 7))
    trainer.test()
    plain = capsys.readouterr().out
    gathered = []
    real_gather = bundled_trainer.gather_predictions

    def recording_gather(indices, outputs, labels):
        gathered.append(outputs)
        return real_gather(indices, outputs, labels)

    # the sharded path, as one rank of one: its shard is the whole test set
    monkeypatch.setattr(bundled_trainer, "is_distributed", lambda: True)
    monkeypatch.setattr(bundled_trainer, "gather_predictions", recording_gather)
    trainer.test()
    sharded = capsys.readouterr().out
    assert "Gathered" in sharded
    assert len(gathered) == 1 and gathered[0].dim() == 1  # one class index per image
    assert len(gathered[0]) == len(trainer.dm.dataset.test) > 7
    result = sharded[sharded.index("=> result"):]
    assert result == plain[plain.index("=> result"):]


def test_single_process_helpers_are_no_ops():
    from engine import distributed

    assert not distributed.is_distributed()
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert distributed.is_main_process()
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]
    assert distributed.all_ranks_agree(True) and not distributed.all_ranks_agree(False)
    assert distributed.wrap_in_ddp(torch.nn.Linear(2, 2)) is None


def test_a_real_dassl_backend_is_refused_with_one_clear_line(monkeypatch):
    from engine.distributed import DistributedSetupError, init_from_env
    from engine.user_errors import is_user_error

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(DistributedSetupError, match="needs the bundled engine") as info:
        init_from_env(use_cuda=False, backend_name="dassl")
    assert is_user_error(info.value)


def test_an_unreachable_master_is_one_clear_line(monkeypatch):
    from engine.distributed import DistributedSetupError, init_from_env

    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("engine.distributed.INIT_TIMEOUT",
                        __import__("datetime").timedelta(seconds=2))
    with pytest.raises(DistributedSetupError, match="Cannot start the gloo process group"):
        init_from_env(use_cuda=False)


# ---------------------------------------------------------------- 2 gloo processes


def _two_rank_worker(rank, world_size, port, data_root, output_dir, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from engine import build_trainer, distributed, set_random_seed
    from engine.launch import build_arg_parser, setup_cfg

    distributed.init_from_env(use_cuda=False)
    try:
        # An uneven split: 9 predictions over 2 ranks come back once each, in order.
        mine = torch.tensor(distributed.shard_indices(9), dtype=torch.long)
        logits = torch.stack([mine.float(), -mine.float()], dim=1)  # row i holds i
        indices, outputs, labels = distributed.gather_predictions(mine, logits, mine % 2)
        gathered = (len(mine), indices.tolist(), outputs[:, 0].tolist(), labels.tolist())

        # DDP: each rank backpropagates half of one batch; the averaged prompt gradient
        # must equal the single-process gradient of the whole batch.
        cfg = setup_cfg(build_arg_parser().parse_args([
            "--root", data_root, "--trainer", "CoOp", "--seed", "1", "--output-dir", output_dir,
            "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG,
            "DATASET.NUM_SHOTS", "1", "VERBOSE", "False", "USE_CUDA", "False",
        ]))
        set_random_seed(1)
        trainer = build_trainer(cfg)
        generator = torch.Generator().manual_seed(0)
        images = torch.randn(4, 3, 32, 32, generator=generator)
        targets = torch.tensor([0, 1, 2, 3])
        ctx = trainer.model.prompt_learner.ctx
        torch.nn.functional.cross_entropy(trainer.model(images), targets).backward()
        whole_batch_grad = ctx.grad.clone()
        ctx.grad = None
        half = slice(2 * rank, 2 * rank + 2)
        loss = torch.nn.functional.cross_entropy(trainer.forward_model(images[half]), targets[half])
        loss.backward()
        in_reducer = [name for name, p in trainer.ddp_model.module.named_parameters()
                      if p.requires_grad]
        grad_error = (ctx.grad - whole_batch_grad).abs().max().item()
        queue.put((rank, gathered, in_reducer, grad_error, whole_batch_grad.abs().max().item()))
    finally:
        distributed.shutdown()


@pytest.mark.slow
def test_two_gloo_ranks_gather_once_and_average_prompt_gradients(demo_data_root, tmp_path):
    import torch.multiprocessing as mp

    queue = mp.get_context("spawn").Queue()
    mp.start_processes(_two_rank_worker, nprocs=2, start_method="spawn",
                       args=(2, free_port(), demo_data_root, str(tmp_path / "out"), queue))
    results = sorted(queue.get(timeout=120) for _ in range(2))
    assert [gathered[0] for _, gathered, *_ in results] == [5, 4]  # shard sizes
    for _, (_, indices, values, labels), in_reducer, grad_error, grad_size in results:
        assert indices == list(range(9))  # every rank holds the whole set, ordered, once
        assert values == [float(i) for i in range(9)]
        assert labels == [i % 2 for i in range(9)]
        assert in_reducer == ["prompt_learner.ctx"]  # the frozen CLIP is not synchronised
        assert grad_size > 0
        assert grad_error < 1e-6 * max(1.0, grad_size)


# ---------------------------------------------------------------- train.py under torchrun


def uneven_demo_root(demo_data_root, tmp_path, test_images=9):
    """A copy of the demo dataset whose split file keeps only ``test_images`` test images."""
    root = tmp_path / "data"
    shutil.copytree(os.path.join(demo_data_root, "demo"), root / "demo")
    split_path = root / "demo" / "split_zhou_Demo.json"
    split = json.loads(split_path.read_text())
    split["test"] = split["test"][:test_images]
    split_path.write_text(json.dumps(split))
    return str(root)


def run_train_py(*args, processes=1, timeout=240):
    # the CPU/gloo path, also on a machine with one GPU (two ranks cannot share it under nccl)
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               RPP_ENGINE="bundled", CUDA_VISIBLE_DEVICES="")
    launcher = [sys.executable, os.path.join(REPO_ROOT, "train.py")]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                    str(processes), "--master_port", str(free_port()),
                    os.path.join(REPO_ROOT, "train.py")]
    return subprocess.run([*launcher, *map(str, args)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def result_block(log_path):
    """The last evaluation's result lines (total, correct, accuracy, error, macro_f1)."""
    text = open(log_path).read()
    return [match.group(0) for match in RESULT_LINE.finditer(text)][-5:]


@pytest.mark.slow
def test_two_process_training_and_evaluation_match_one_process(demo_data_root, tmp_path):
    root = uneven_demo_root(demo_data_root, tmp_path, test_images=9)
    common = ["--root", root, "--trainer", "CoOp", "--seed", 1,
              "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG]
    opts = ["DATASET.NUM_SHOTS", 2, "DATALOADER.TRAIN_X.BATCH_SIZE", 4,
            "DATALOADER.TEST.BATCH_SIZE", 4]

    trained_dir = tmp_path / "ddp"
    trained = run_train_py(*common, "--output-dir", trained_dir, "OPTIM.MAX_EPOCH", 1, *opts,
                           processes=2)
    assert trained.returncode == 0, trained.stderr[-3000:]
    log = open(trained_dir / "log.txt").read()
    assert "Distributed run: 2 processes (gloo backend)" in log
    assert "Gathered 9 predictions from 2 processes" in log
    assert "* total: 9" in log
    # rank 0 alone writes the log, the checkpoint, the tensorboard events and the run
    # record (its lock file is gone with the run)
    assert sorted(os.listdir(trained_dir)) == sorted(
        ["log.txt", "prompt_learner", TRAIN_RECORD, "tensorboard"])
    assert len(os.listdir(trained_dir / "tensorboard")) == 1
    checkpoint = torch.load(trained_dir / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert list(checkpoint["state_dict"]) == ["ctx"]  # unprefixed: no "module."

    evaluations = {}
    for processes in (1, 2):
        out = tmp_path / f"eval{processes}"
        evaluated = run_train_py(*common, "--output-dir", out, "--eval-only", "--model-dir",
                                 trained_dir, "--load-epoch", 1, *opts, processes=processes)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        evaluations[processes] = result_block(out / "log.txt")
    assert evaluations[1][0] == "* total: 9"
    assert evaluations[2] == evaluations[1]  # the same predictions, exactly
    assert result_block(trained_dir / "log.txt") == evaluations[1]


@pytest.mark.slow
def test_two_process_resume_repeats_the_uninterrupted_run(demo_data_root, tmp_path):
    common = ["--root", demo_data_root, "--trainer", "CoOp", "--seed", 1,
              "--dataset-config-file", DEMO_DATASET_CONFIG, "--config-file", TINY_COOP_CONFIG]
    opts = ["DATASET.NUM_SHOTS", 2, "DATALOADER.TRAIN_X.BATCH_SIZE", 4, "TEST.NO_TEST", True,
            "OPTIM.MAX_EPOCH", 2, "TRAIN.CHECKPOINT_FREQ", 1]
    full = tmp_path / "full"
    done = run_train_py(*common, "--output-dir", full, *opts, processes=2)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = torch.load(full / "prompt_learner" / "model.pth.tar-1", weights_only=True)
    assert len(checkpoint["resume_state"]["rng"]) == 2  # each rank's own RNG state

    # the same run, interrupted after epoch 1
    part = tmp_path / "part"
    os.makedirs(part / "prompt_learner")
    shutil.copy(full / "prompt_learner" / "model.pth.tar-1", part / "prompt_learner")
    (part / "prompt_learner" / "checkpoint").write_text("model.pth.tar-1\n")
    resumed = run_train_py(*common, "--output-dir", part, *opts, "--resume", processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Previous epoch: 1" in open(part / "log.txt").read()

    def ctx(folder):
        path = folder / "prompt_learner" / "model.pth.tar-2"
        return torch.load(path, weights_only=True)["state_dict"]["ctx"]

    assert not torch.equal(ctx(full), checkpoint["state_dict"]["ctx"])  # epoch 2 trained
    assert torch.equal(ctx(part), ctx(full))

"""Issue #15.3: what defines a run is recorded in its folder; a resume or a sweep that
would reuse a folder holding a run of another config stops in one line naming the keys."""
import json
import shlex
import sys

import pytest

from tests.fixtures.one_epoch_run import flags, run_main
from test_sweeps import run_script


def test_train_py_records_the_run_without_paths_workers_or_logging(trained_run):
    record = json.loads((trained_run / "run_config.json").read_text())
    assert record["TRAINER.NAME"] == "CoOp" and record["SEED"] == 1
    assert record["OPTIM.MAX_EPOCH"] == 1 and record["OPTIM.LR"] == 0.002
    assert record["DATASET.NUM_SHOTS"] == 1 and record["TRAINER.COOP.N_CTX"] == 4
    assert record["INPUT.SIZE"] == [32, 32]
    for left_out in ("OUTPUT_DIR", "DATASET.ROOT", "RESUME", "EVAL_ONLY", "DATALOADER.NUM_WORKERS",
                     "TRAIN.PRINT_FREQ", "TEST.NO_TEST"):
        assert left_out not in record


def test_resuming_a_run_of_another_config_is_one_line(demo_data_root, trained_run, capsys):
    before = (trained_run / "run_config.json").read_text()
    status = run_main(flags(demo_data_root, trained_run, "--resume",
                            opts=["OPTIM.LR", "0.5", "OPTIM.NAME", "adam", "OPTIM.MAX_EPOCH", "3"]))
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    assert "that run was started with another config (OPTIM.LR: 0.002 -> 0.5; " \
           "OPTIM.NAME: 'sgd' -> 'adam')" in err, err
    assert "MAX_EPOCH" not in err, "a resume may train more epochs"
    assert "--overwrite" in err
    assert (trained_run / "run_config.json").read_text() == before


def sweep_check(kind, run_dir, data_root, *opts):
    """tools.run_record's answer (status, stdout) for the run_dir of ``flags``."""
    from tools.run_record import main

    return main([kind, *flags(data_root, run_dir, opts=list(opts))])


def test_the_record_check_the_sweeps_use(demo_data_root, trained_run, tmp_path, capsys):
    assert sweep_check("finished", trained_run, demo_data_root) == 0
    assert sweep_check("finished", trained_run, demo_data_root, "OPTIM.MAX_EPOCH", "30") == 1
    assert capsys.readouterr().out.strip() == "OPTIM.MAX_EPOCH: 1 -> 30"
    assert sweep_check("resume", trained_run, demo_data_root, "OPTIM.MAX_EPOCH", "30") == 0
    assert sweep_check("resume", trained_run, demo_data_root, "DATASET.NUM_SHOTS", "2") == 1
    assert capsys.readouterr().out.strip() == "DATASET.NUM_SHOTS: 1 -> 2"
    # only where things live, or how fast: the same run
    assert sweep_check("finished", trained_run, demo_data_root, "DATALOADER.NUM_WORKERS", "3") == 0
    (tmp_path / "old").mkdir()  # written before records existed: nothing to compare
    assert sweep_check("finished", tmp_path / "old", demo_data_root) == 0
    assert "has no run record" in capsys.readouterr().err


def dry_sweep(tmp_path, *args, **env):
    """scripts/coop/few_shot.sh with train.py replaced by an echo: (result, [argv, ...])."""
    stub = tmp_path / "python-stub"
    stub.write_text("#!/usr/bin/env bash\n"
                    'if [ "$1" = train.py ]; then printf TRAIN; printf " %q" "$@"; echo; exit 0; fi\n'
                    f'exec "{sys.executable}" "$@"\n')
    stub.chmod(0o755)
    env = {"PYTHON": str(stub), "OUTPUT": str(tmp_path / "output"), "DATA": "/data",
           "CFG": "tiny_vit", **env}
    result = run_script("scripts/coop/few_shot.sh", "demo", 2, 1, *args, env=env, timeout=120)
    return result, [shlex.split(line)[2:] for line in result.stdout.splitlines()
                    if line.startswith("TRAIN ")]


@pytest.mark.slow  # each sweep that finds a finished run starts python to compare its record
def test_a_sweep_reuses_a_finished_run_only_for_the_same_config(tmp_path):
    from engine.launch import parse_args, setup_cfg
    from engine.run_record import run_definition, write_record

    result, (argv,) = dry_sweep(tmp_path, EPOCHS="10")
    run_dir = tmp_path / "output" / "demo" / "CoOp" / "tiny_vit_2shots" / "seed1"
    # What train.py leaves after that command: a finished log and the run's record.
    run_dir.mkdir(parents=True)
    (run_dir / "log.txt").write_text("Finish training\n* accuracy: 40.0%\n")
    write_record(str(run_dir), run_definition(setup_cfg(parse_args(argv))))

    result, commands = dry_sweep(tmp_path, EPOCHS="10")
    assert result.returncode == 0 and not commands and "skipping this run" in result.stdout

    result, commands = dry_sweep(tmp_path, "OPTIM.LR", "0.5", EPOCHS="30")
    assert result.returncode == 2 and not commands
    assert result.stderr == (
        f"error: {run_dir} holds a run of another config (OPTIM.LR: 0.002 -> 0.5; "
        "OPTIM.MAX_EPOCH: 10 -> 30); run again with RERUN=1 to redo it (a training run is "
        f"moved aside to {run_dir}.old-<time>), or set OUTPUT to another folder\n")

    result, (argv,) = dry_sweep(tmp_path, "OPTIM.LR", "0.5", EPOCHS="30", RERUN="1")
    assert result.returncode == 0 and "RERUN=1: " in result.stdout
    assert "--overwrite" in argv and "--resume" not in argv
    assert argv[argv.index("OPTIM.LR") + 1] == "0.5"

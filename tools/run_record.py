"""``python3 -m tools.run_record finished|resume TRAIN_PY_ARGS...``: does the run folder
that these train.py arguments name (``--output-dir``) hold a run of this config?

Exit 0: its record matches (or it has none: written before records existed, noted on
stderr); exit 1: it differs, and stdout says how (``KEY: recorded -> requested; ...``);
exit 2: the arguments themselves are wrong (one ``error:`` line). ``resume`` allows
``OPTIM.MAX_EPOCH`` to differ, as ``train.py --resume`` does. The sweeps
(scripts/common.sh) ask this before reusing a finished run or resuming an interrupted
one; the record and what it leaves out are ``engine/run_record.py``'s.
"""
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] not in ("finished", "resume"):
        print("usage: python3 -m tools.run_record finished|resume TRAIN_PY_ARGS...", file=sys.stderr)
        return 2
    from engine.launch import one_line, parse_args, setup_cfg
    from engine.run_record import (
        MAY_CHANGE_ON_RESUME, differences, read_record, record_path, run_definition,
    )
    from engine.user_errors import is_user_error

    args = parse_args(argv[1:])
    try:
        cfg = setup_cfg(args)
    except Exception as error:  # noqa: BLE001  (only user errors are shortened)
        if not is_user_error(error):
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    eval_only = bool(cfg.EVAL_ONLY)
    recorded = read_record(cfg.OUTPUT_DIR, eval_only)
    if recorded is None:
        print(f"note: {cfg.OUTPUT_DIR} has no run record ({record_path(cfg.OUTPUT_DIR, eval_only)}; "
              "written before records existed): its config cannot be checked", file=sys.stderr)
        return 0
    ignored = MAY_CHANGE_ON_RESUME if argv[0] == "resume" else ()
    differing = differences(recorded, run_definition(cfg, args.load_epoch, eval_only), ignored)
    if differing:
        print("; ".join(differing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

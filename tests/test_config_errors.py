"""Every merge failure becomes a one-line ConfigError that says what to fix."""
import pytest
from yacs.config import CfgNode

from engine.bundled.config import get_cfg_default
from engine.config_errors import (
    ConfigError, closest_config_key, merge_config_file, merge_config_list,
)
from engine.user_errors import is_user_error


@pytest.fixture
def write_yaml(tmp_path):
    def write(text, name="x.yaml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def _error(fn, *args):
    with pytest.raises(ConfigError) as info:
        fn(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_file_and_opts_merge(write_yaml):
    cfg = get_cfg_default()
    path = write_yaml("OPTIM:\n  LR: 0.002\n  NAME: sgd\nINPUT:\n  SIZE: (32, 32)\n")
    assert merge_config_file(cfg, path) is cfg
    merge_config_list(cfg, ["DATASET.NUM_SHOTS", "16", "OPTIM.STEPSIZE", "[2, 4]"])
    assert cfg.OPTIM.LR == 0.002 and cfg.OPTIM.NAME == "sgd" and cfg.INPUT.SIZE == (32, 32)
    assert cfg.DATASET.NUM_SHOTS == 16 and cfg.OPTIM.STEPSIZE == (2, 4)


def test_unknown_key_in_file_names_key_file_and_closest_key(write_yaml):
    path = write_yaml("OPTIM:\n  LRR: 0.1\n")
    message = _error(merge_config_file, get_cfg_default(), path)
    assert message == f"Unknown config key OPTIM.LRR in {path}; did you mean OPTIM.LR?"


def test_unknown_key_in_opts(write_yaml):
    message = _error(merge_config_list, get_cfg_default(), ["OPTIM.MAX_EPOCHS", "5"])
    assert message == (
        "Unknown config key OPTIM.MAX_EPOCHS in command-line opts; did you mean OPTIM.MAX_EPOCH?"
    )


def test_unknown_section_and_misplaced_leaf(write_yaml):
    cfg = get_cfg_default()
    assert "did you mean OPTIM?" in _error(merge_config_file, cfg, write_yaml("OPTIMM:\n  LR: 1.0\n"))
    # The whole tree is searched: the right leaf in the wrong section is found.
    message = _error(merge_config_list, cfg, ["TRAIN.MAX_EPOCH", "5"])
    assert message.endswith("did you mean OPTIM.MAX_EPOCH?")
    message = _error(merge_config_list, cfg, ["DATALOADER.TRAIN_X.BATCHSIZE", "4"])
    assert message.endswith("did you mean DATALOADER.TRAIN_X.BATCH_SIZE?")


def test_key_below_a_leaf_is_unknown():
    message = _error(merge_config_list, get_cfg_default(), ["OPTIM.LR.X", "1"])
    assert message.startswith("Unknown config key OPTIM.LR.X in command-line opts")


def test_closest_config_key_searches_nodes_and_leaves():
    cfg = get_cfg_default()
    assert closest_config_key("TRAINER.NAMES", cfg) == "TRAINER.NAME"
    assert closest_config_key("INPUTS", cfg) == "INPUT"
    assert closest_config_key("X", CfgNode()) is None


def test_yaml_syntax_error_names_file_and_line(write_yaml):
    path = write_yaml("OPTIM:\n  NAME: sgd\n  LR: [0.1\nTRAIN:\n  PRINT_FREQ: 5\n")
    message = _error(merge_config_file, get_cfg_default(), path)
    assert message.startswith(f"Invalid YAML in {path} at line ")
    assert "line 4" in message


def test_yaml_bad_indentation_error(write_yaml):
    path = write_yaml("OPTIM:\n  NAME: sgd\n LR: 0.1\n")
    message = _error(merge_config_file, get_cfg_default(), path)
    assert message.startswith(f"Invalid YAML in {path} at line 3")


def test_file_that_is_not_utf8_names_file_and_byte_offset(tmp_path):
    data = "# Réglages\nOPTIM:\n  NAME: sgd\n".encode("utf-8") + "  LR: 0.1  # pas à pas\n".encode("cp1252")
    path = tmp_path / "cp1252.yaml"
    path.write_bytes(data)
    offset = data.index(b"\xe0")  # the first byte that is not UTF-8 (the é above is)
    assert _error(merge_config_file, get_cfg_default(), str(path)) == (
        f"Config file {path} is not UTF-8 text: byte 0xe0 at byte offset {offset} cannot be "
        "decoded; save the file as UTF-8"
    )


def test_utf8_file_with_bom_and_accents_merges(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeff# Réglages\nOPTIM:\n  NAME: adam  # pas à pas\n".encode("utf-8"))
    assert merge_config_file(get_cfg_default(), str(path)).OPTIM.NAME == "adam"


def test_missing_file_names_the_path(tmp_path):
    path = str(tmp_path / "nope.yaml")
    assert _error(merge_config_file, get_cfg_default(), path) == f"Config file not found: {path}"


def test_type_mismatch_in_file_names_key_expected_and_given(write_yaml):
    path = write_yaml("OPTIM:\n  MAX_EPOCH: ten\n")
    message = _error(merge_config_file, get_cfg_default(), path)
    assert message == (
        f"Type mismatch for config key OPTIM.MAX_EPOCH in {path}: expected int, got str ('ten')"
    )


def test_type_mismatch_in_opts_and_int_for_float_hint():
    message = _error(merge_config_list, get_cfg_default(), ["OPTIM.LR", "1"])
    assert message == (
        "Type mismatch for config key OPTIM.LR in command-line opts: expected float, "
        "got int (1); write 1.0 for a float"
    )


def test_scalar_where_a_section_is_expected(write_yaml):
    message = _error(merge_config_file, get_cfg_default(), write_yaml("OPTIM: 0.1\n"))
    assert "config key OPTIM" in message and "expected a config section (mapping), got float" in message


def test_odd_length_opts_list():
    message = _error(merge_config_list, get_cfg_default(), ["OPTIM.LR", "0.1", "OPTIM.NAME"])
    assert "odd length (3)" in message and "'OPTIM.NAME' has no value" in message


def test_failed_merge_leaves_config_untouched(write_yaml):
    cfg = get_cfg_default()
    path = write_yaml("OPTIM:\n  NAME: sgd\n  LR: 0.5\n  BOGUS: 1\n")
    _error(merge_config_file, cfg, path)
    _error(merge_config_list, cfg, ["OPTIM.NAME", "sgd", "OPTIM.BOGUS", "1"])
    assert cfg == get_cfg_default()


def test_top_level_must_be_a_mapping_and_empty_file_is_a_no_op(write_yaml):
    message = _error(merge_config_file, get_cfg_default(), write_yaml("- a\n- b\n"))
    assert "must hold a mapping" in message and "got list" in message
    cfg = get_cfg_default()
    merge_config_file(cfg, write_yaml("# nothing here\n", "empty.yaml"))
    assert cfg == get_cfg_default()


def test_frozen_config_is_refused(write_yaml):
    cfg = get_cfg_default()
    cfg.freeze()
    assert "defrost" in _error(merge_config_list, cfg, ["OPTIM.LR", "0.1"])


def test_new_allowed_nodes_accept_new_keys(write_yaml):
    cfg = get_cfg_default()
    cfg.TRAINER.COOP = CfgNode(new_allowed=True)
    merge_config_file(cfg, write_yaml("TRAINER:\n  COOP:\n    N_CTX: 16\n"))
    assert cfg.TRAINER.COOP.N_CTX == 16


def test_config_error_is_a_value_error_and_a_user_error():
    error = ConfigError("a\n  b")
    assert isinstance(error, ValueError) and is_user_error(error)
    assert str(error) == "a b"

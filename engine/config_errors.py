"""Merge YAML files and KEY VALUE lists into a yacs config with one-line errors.

yacs reports a typo as ``KeyError: 'Non-existent config key: OPTIM.LRR'`` (no file,
no hint), a YAML mistake as a multi-line parser dump, and it mutates the config
before failing. Here every problem becomes a ``ConfigError`` with a single line
naming the key, the source and, for unknown keys, the closest valid dotted key;
and the whole input is checked before anything is merged, so a failed merge
leaves the config untouched.

Backend-independent: works on any yacs ``CfgNode`` (ours or a real Dassl's).
"""
import difflib
from ast import literal_eval

import yaml
from yacs.config import CfgNode

from engine.user_errors import user_error

# The leaf types yacs accepts; None may replace (or be replaced by) any of them.
_YACS_LEAF_TYPES = {tuple, list, str, int, float, bool, type(None)}
OPTS_SOURCE = "command-line opts"


@user_error  # train.py prints it as one line and exits with status 2
class ConfigError(ValueError):
    """A config file or override list could not be merged (message is one line)."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


def merge_config_file(cfg, path):
    """Merge the YAML file ``path`` into ``cfg`` (in place) and return ``cfg``."""
    path = str(path)
    data = _read_yaml(path)
    if data is None:  # an empty file changes nothing, as in yacs
        return cfg
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} must hold a mapping of keys at the top level, "
            f"got {_type_name(type(data))}"
        )
    _refuse_if_frozen(cfg, path)
    _check_mapping(data, cfg, cfg, [], path)
    _run_yacs(lambda: cfg.merge_from_other_cfg(type(cfg)(data)), path)
    return cfg


def merge_config_list(cfg, opts, source=OPTS_SOURCE):
    """Merge ``[KEY, VALUE, KEY, VALUE, ...]`` into ``cfg`` (in place) and return ``cfg``."""
    if not opts:
        return cfg
    opts = list(opts)
    if len(opts) % 2 != 0:
        raise ConfigError(
            f"Config opts must be KEY VALUE pairs, but the list has an odd length "
            f"({len(opts)}); the last item {opts[-1]!r} has no value"
        )
    _refuse_if_frozen(cfg, source)
    for full_key, raw_value in zip(opts[0::2], opts[1::2]):
        _check_dotted_override(cfg, str(full_key), raw_value, source)
    _run_yacs(lambda: cfg.merge_from_list(opts), source)
    return cfg


def closest_config_key(requested, cfg):
    """The dotted key of ``cfg`` (node or leaf) most similar to ``requested``.

    A wrong section with the right leaf (TRAIN.MAX_EPOCH for OPTIM.MAX_EPOCH) is a
    common slip, so leaf-name similarity counts too, slightly discounted so that
    a near-identical full key still wins.
    """
    candidates = list(_all_dotted_keys(cfg))
    if not candidates:
        return None
    leaf = requested.rsplit(".", 1)[-1]

    def score(candidate):
        full = difflib.SequenceMatcher(None, requested, candidate).ratio()
        by_leaf = difflib.SequenceMatcher(None, leaf, candidate.rsplit(".", 1)[-1]).ratio()
        return (max(full, 0.95 * by_leaf), full)

    return max(candidates, key=score)


# ----------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------

def _read_yaml(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"Config path is a directory, not a YAML file: {path}") from None
    except OSError as e:
        raise ConfigError(f"Cannot read config file {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8-sig")  # explicit, whatever the locale; a BOM is allowed
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"Config file {path} is not UTF-8 text: byte 0x{raw[e.start]:02x} at byte offset "
            f"{e.start} cannot be decoded; save the file as UTF-8"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(_describe_yaml_error(e, path)) from None


def _describe_yaml_error(error, path):
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"Invalid YAML in {path}{where}: {problem}"


# ----------------------------------------------------------------------------
# Checking (mirrors yacs's own rules, so whatever passes here merges cleanly)
# ----------------------------------------------------------------------------

def _check_mapping(incoming, node, root, key_path, source):
    for key, raw_value in incoming.items():
        full_key = ".".join(str(k) for k in key_path + [key])
        value = _decode_like_yacs(raw_value)
        if key in node:
            _check_type(value, node[key], full_key, source)
            if isinstance(value, dict):
                _check_mapping(value, node[key], root, key_path + [key], source)
        elif node.is_new_allowed() or root.key_is_deprecated(full_key):
            continue
        elif root.key_is_renamed(full_key):
            _raise_renamed(root, full_key, source)
        else:
            _raise_unknown(root, full_key, source)


def _check_dotted_override(cfg, full_key, raw_value, source):
    if cfg.key_is_deprecated(full_key):
        return
    if cfg.key_is_renamed(full_key):
        _raise_renamed(cfg, full_key, source)
    node = cfg
    *parents, leaf = full_key.split(".")
    for name in parents:
        if not isinstance(node, CfgNode) or name not in node:
            _raise_unknown(cfg, full_key, source)
        node = node[name]
    if not isinstance(node, CfgNode) or leaf not in node:
        _raise_unknown(cfg, full_key, source)
    _check_type(_decode_like_yacs(raw_value), node[leaf], full_key, source)


def _decode_like_yacs(value):
    """Strings are literal-evaluated ("(224, 224)" -> tuple); anything else is kept."""
    if not isinstance(value, str):
        return value
    try:
        return literal_eval(value)
    except (ValueError, SyntaxError):
        return value  # a plain string such as ViT-B/16 or a path


def _check_type(value, default, full_key, source):
    if _types_compatible(value, default):
        return
    expected, given = type(default), type(value)
    hint = f"; write {value}.0 for a float" if expected is float and given is int else ""
    shown = "" if isinstance(value, (dict, CfgNode)) else f" ({value!r})"
    raise ConfigError(
        f"Type mismatch for config key {full_key}{_in(source)}: expected "
        f"{_type_name(expected)}, got {_type_name(given)}{shown}{hint}"
    )


def _types_compatible(value, default):
    # A YAML mapping becomes a CfgNode inside yacs, so compare it as one.
    value_type = CfgNode if isinstance(value, dict) else type(value)
    default_type = CfgNode if isinstance(default, CfgNode) else type(default)
    if value_type is default_type:
        return True
    if value is None and default_type in _YACS_LEAF_TYPES:
        return True
    if default is None and value_type in _YACS_LEAF_TYPES:
        return True
    return {value_type, default_type} == {list, tuple}  # yacs converts between these


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------

def _raise_unknown(root, full_key, source):
    hint = closest_config_key(full_key, root)
    suggestion = f"; did you mean {hint}?" if hint else ""
    raise ConfigError(f"Unknown config key {full_key}{_in(source)}{suggestion}")


def _raise_renamed(root, full_key, source):
    new_key = root.__dict__[CfgNode.RENAMED_KEYS][full_key]
    if isinstance(new_key, tuple):  # yacs stores (new_name, note) when a note was given
        new_key = new_key[0]
    raise ConfigError(f"Config key {full_key}{_in(source)} was renamed to {new_key}")


def _refuse_if_frozen(cfg, source):
    if cfg.is_frozen():
        raise ConfigError(
            f"Cannot merge {source} into a frozen config; call cfg.defrost() first"
        )


def _run_yacs(merge, source):
    """Run the real yacs merge; anything our checks missed still gets one line."""
    try:
        merge()
    except (KeyError, ValueError, AssertionError, AttributeError, TypeError) as e:
        message = e.args[0] if e.args else repr(e)
        raise ConfigError(f"Cannot merge {source}: {message}") from e


def _in(source):
    return f" in {source}" if source else ""


def _type_name(t):
    if t is type(None):
        return "None"
    if issubclass(t, (dict, CfgNode)):
        return "a config section (mapping)"
    return t.__name__


def _all_dotted_keys(node, prefix=""):
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        yield dotted
        if isinstance(value, CfgNode):
            yield from _all_dotted_keys(value, dotted + ".")

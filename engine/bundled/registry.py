"""Name -> class registries (trainers, datasets, evaluators), Dassl-compatible."""
import difflib


def closest_match(requested, candidates):
    """The candidate most similar to ``requested``, or None when there are none."""
    candidates = list(candidates)
    if not candidates:
        return None
    return max(candidates, key=lambda c: difflib.SequenceMatcher(None, requested, c).ratio())


def check_availability(requested, available):
    if requested not in available:
        hint = closest_match(requested, available)
        raise ValueError(
            f"The requested one is expected to belong to {list(available)}, "
            f"but got [{requested}] (do you mean [{hint}]?)"
        )


class Registry:
    """``@REGISTRY.register()`` stores a class under its ``__name__``."""

    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise KeyError(
                f'An object named "{name}" was already registered in "{self._name}" registry'
            )
        self._obj_map[name] = obj

    def register(self, obj=None, force=False):
        if obj is None:
            def wrapper(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class
            return wrapper
        self._do_register(obj.__name__, obj, force=force)
        return obj

    def get(self, name):
        if name not in self._obj_map:
            raise KeyError(f'Object name "{name}" does not exist in "{self._name}" registry')
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map.keys())

    def __contains__(self, name):
        return name in self._obj_map


TRAINER_REGISTRY = Registry("TRAINER")
DATASET_REGISTRY = Registry("DATASET")
EVALUATOR_REGISTRY = Registry("EVALUATOR")

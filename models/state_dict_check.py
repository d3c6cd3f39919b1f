"""Why a state dict does not fit a module, as short phrases for one error line."""


def _examples(items, limit=3):
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def state_dict_problems(expected, given, optional=lambda key: False):
    """Missing, unexpected and wrong-shape keys of ``given`` against ``expected``.

    ``optional(key)`` marks expected keys whose absence is fine. Returns a list of
    phrases (empty when the two fit).
    """
    missing = [k for k in expected if k not in given and not optional(k)]
    unexpected = [k for k in given if k not in expected]
    reshaped = [
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_examples(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_examples(unexpected)}")
    if reshaped:
        problems.append(f"shape mismatches: {_examples(reshaped)}")
    return problems

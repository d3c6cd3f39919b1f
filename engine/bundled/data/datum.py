"""Datum: one labelled image, the unit every dataset list is made of."""
import os


class Datum:
    """An image path with its label, domain and class name (all read-only).

    Like Dassl, construction fails when the image file does not exist, so a broken
    split is caught when the dataset is built rather than mid-epoch. The attribute
    names (``_impath`` ...) match Dassl's so code that peeks at them keeps working.
    """

    def __init__(self, impath="", label=0, domain=0, classname=""):
        if not isinstance(impath, str):
            raise AssertionError(f"Datum impath must be a str, got {type(impath).__name__}")
        # An explicit raise (not ``assert``) so the check survives ``python -O``.
        if not os.path.isfile(impath):
            raise AssertionError(f'No file found at "{impath}"')
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self):
        return self._impath

    @property
    def label(self):
        return self._label

    @property
    def domain(self):
        return self._domain

    @property
    def classname(self):
        return self._classname

    def __repr__(self):
        return (
            f"Datum(impath={self._impath!r}, label={self._label!r}, "
            f"domain={self._domain!r}, classname={self._classname!r})"
        )

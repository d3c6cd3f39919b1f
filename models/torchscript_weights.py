"""The tensors of a TorchScript archive (OpenAI's CLIP ``.pt`` files), read without running it.

``torch.jit.load`` runs an archive: a class that defines ``__setstate__`` has that
TorchScript code executed while loading, and TorchScript can touch files
(``torch.from_file(..., shared=True)`` creates one). Weights files come from
downloads and shared folders, so this module opens the zip itself instead:

* ``<archive>/data.pkl`` pickles the module tree: each module is a ``__torch__.*``
  class built from a dict of its attributes, each tensor a call of
  ``torch._utils._rebuild_tensor_v2`` on a storage named by a persistent id;
* ``<archive>/data/<key>`` holds the raw bytes of storage ``<key>``.

The unpickler here resolves only those names: the archive's ``__torch__`` classes
become ``ArchivedObject`` attribute bags (no code of theirs is read or run), tensors
are rebuilt from the storage bytes, and TorchScript's list/type-tag helpers are
identities. Any other global, a class whose code defines ``__setstate__``, or an
object saved through a custom ``__getstate__`` is refused with
``UnsafeArchiveError``. The state dict is every tensor attribute of the module tree
under its dotted path, which is what ``ScriptModule.state_dict()`` returns for
traced modules (parameters and buffers).
"""
import pickle
import re
import sys
import zipfile
from collections import OrderedDict

import torch

STORAGE_DTYPES = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexDoubleStorage": torch.complex128,
    "ComplexFloatStorage": torch.complex64,
}
_DEFINES_SETSTATE = re.compile(r"^\s*def\s+__setstate__\s*\(", re.M)


class UnsafeArchiveError(ValueError):
    """The archive needs more than tensors and plain attributes to be read."""


class ArchivedObject:
    """A ``__torch__`` object of the archive: its class name and attributes, nothing callable."""

    qualified_name = "__torch__"

    def __setstate__(self, state):  # pickle's BUILD; only a plain attribute dict is accepted
        if not isinstance(state, dict):
            raise UnsafeArchiveError(
                f"object of class {self.qualified_name} was saved through a custom __getstate__ "
                f"(state of type {type(state).__name__}); loading it would run its __setstate__ code"
            )
        self.attributes = dict(state)


def is_torchscript_archive(path) -> bool:
    """A zip with a ``constants.pkl`` record (the test ``torch.load`` applies; ``torch.save`` zips have none)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.rsplit("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def read_torchscript_state_dict(path) -> "OrderedDict[str, torch.Tensor]":
    """Every tensor attribute of the archive's module tree, keyed by dotted path, on the CPU.

    Raises UnsafeArchiveError when the archive holds anything but modules, tensors
    and plain values, or when one of its classes defines ``__setstate__``.
    """
    with zipfile.ZipFile(path) as archive:
        prefix = _record_prefix(archive)
        _refuse_setstate_code(archive, prefix)
        _refuse_foreign_byte_order(archive, prefix)
        root = _ArchiveUnpickler(archive, prefix).load()
    if not isinstance(root, ArchivedObject):
        raise UnsafeArchiveError(f"data.pkl holds a {type(root).__name__}, not a TorchScript module")
    return OrderedDict(_tensor_attributes(root, ""))


def _record_prefix(archive: zipfile.ZipFile) -> str:
    # torch.jit.save puts every record under one folder named after the file
    candidates = [name[: -len("data.pkl")] for name in archive.namelist()
                  if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(candidates) != 1:
        raise UnsafeArchiveError(f"expected one <folder>/data.pkl record, found {len(candidates)}")
    return candidates[0]


def _refuse_setstate_code(archive: zipfile.ZipFile, prefix: str):
    for name in archive.namelist():
        if name.startswith(prefix + "code/") and name.endswith(".py"):
            if _DEFINES_SETSTATE.search(archive.read(name).decode("utf-8", errors="replace")):
                raise UnsafeArchiveError(
                    f"its TorchScript code {name[len(prefix):]} defines __setstate__, code that loading "
                    f"would run (weights archives such as OpenAI's define none)"
                )


def _refuse_foreign_byte_order(archive: zipfile.ZipFile, prefix: str):
    try:
        order = archive.read(prefix + "byteorder").decode().strip()
    except KeyError:
        return  # older archives: little-endian
    if order != sys.byteorder:
        raise UnsafeArchiveError(f"its tensors are {order}-endian; this machine is {sys.byteorder}-endian")


class _StorageType:
    def __init__(self, dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                    metadata=None):
    dtype, untyped = storage
    return torch.empty(0, dtype=dtype).set_(untyped, storage_offset, tuple(size), tuple(stride))


def _restore_type_tag(value, type_str):
    return value


def _as_list(data):
    return list(data)


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("collections", "OrderedDict"): OrderedDict,
    ("torch.jit._pickle", "restore_type_tag"): _restore_type_tag,
    ("torch.jit._pickle", "build_intlist"): _as_list,
    ("torch.jit._pickle", "build_doublelist"): _as_list,
    ("torch.jit._pickle", "build_boollist"): _as_list,
    ("torch.jit._pickle", "build_tensorlist"): _as_list,
}


class _ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str):
        super().__init__(archive.open(prefix + "data.pkl"))
        self._archive = archive
        self._prefix = prefix
        self._storages = {}
        self._classes = {}

    def find_class(self, module, name):
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            if qualified not in self._classes:
                self._classes[qualified] = type(name, (ArchivedObject,), {"qualified_name": qualified})
            return self._classes[qualified]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise UnsafeArchiveError(f"data.pkl refers to {module}.{name}, which a weights archive never needs")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeArchiveError(f"unexpected persistent id {pid!r:.80} in data.pkl")
        _, storage_type, key, _location, numel = pid
        if key not in self._storages:
            try:
                raw = self._archive.read(f"{self._prefix}data/{key}")
            except KeyError:
                raise UnsafeArchiveError(f"storage record data/{key} is missing") from None
            itemsize = torch.empty(0, dtype=storage_type.dtype).element_size()
            if len(raw) != numel * itemsize:
                raise UnsafeArchiveError(
                    f"storage record data/{key} holds {len(raw)} bytes, not {numel} x {itemsize}"
                )
            untyped = torch.frombuffer(bytearray(raw), dtype=torch.uint8).untyped_storage() if raw \
                else torch.UntypedStorage(0)
            self._storages[key] = (storage_type.dtype, untyped)
        return self._storages[key]


def _tensor_attributes(obj: ArchivedObject, prefix: str):
    for name, value in getattr(obj, "attributes", {}).items():
        if isinstance(value, torch.Tensor):
            yield prefix + name, value
        elif isinstance(value, ArchivedObject):
            yield from _tensor_attributes(value, f"{prefix}{name}.")

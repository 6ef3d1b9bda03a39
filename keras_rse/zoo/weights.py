"""Zoo weights files: a compact, pickle-free format, hash checks and file resolution.

Weights are stored as an ``.npz`` of arrays keyed by each variable's path in
the network (``conv1/kernel``), optionally rounded to float16 to halve the
file. Loading builds the network from its preset (architecture from code,
never from the file) and assigns every array, so a weights file can carry no
code; `numpy.load` runs with ``allow_pickle=False``.
"""

import os
import pathlib

import numpy as np

from keras_rse._io import atomic_save, sha256_of
from keras_rse._validation import check_choice, invalid_argument

HOME_ENV = "KERAS_RSE_HOME"
STORAGE_DTYPES = {"float16", "float32"}


def home_dir():
    """The zoo cache: ``$KERAS_RSE_HOME``, else ``~/.keras/keras_rse``."""
    return os.environ.get(HOME_ENV) or os.path.join(os.path.expanduser("~"), ".keras",
                                                    "keras_rse")


def source_zoo_dir():
    """The top-level ``zoo/`` folder of a source checkout, or None when installed."""
    candidate = pathlib.Path(__file__).resolve().parents[2] / "zoo"
    return str(candidate) if candidate.is_dir() else None


def verify_sha256(path, expected, hint=""):
    """Raises unless the file at ``path`` has the sha256 ``expected``.

    A mismatching file is never loaded: it may be truncated, tampered with or
    from another version of the preset.

    Args:
        path: The file to check.
        expected: The preset's sha256 (hex).
        hint: What to do about a mismatch where the file was found (cache,
            checkout, a path the user named); appended to the error.
    """
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(
            f"Refusing to load {path}: its sha256 is {actual}, but the preset expects "
            f"{expected}. The file is corrupt, tampered with or not the published weights. "
            f"{hint}".rstrip())


def _weight_variables(network):
    """``{path: variable}`` of a network's weights; paths must be unique."""
    variables = {}
    for variable in network.weights:
        if variable.path in variables:
            raise ValueError(f"Two variables share the path {variable.path!r}; rename a "
                             f"layer of {network.name!r} before saving its weights.")
        variables[variable.path] = variable
    return variables


def save_npz(network, path, dtype="float16"):
    """Writes ``network``'s weights to ``path`` (.npz), atomically.

    Args:
        network: A built Keras model.
        path: Destination file, ending in ``.npz``.
        dtype: ``"float16"`` (half the size; check the accuracy with the
            evaluation command) or ``"float32"``.

    Returns:
        The sha256 of the written file.
    """
    check_choice("dtype", dtype, STORAGE_DTYPES)
    if not str(path).endswith(".npz"):
        raise invalid_argument("path", "a file name ending in .npz", path)
    arrays = {}
    for name, variable in _weight_variables(network).items():
        value = np.asarray(variable.numpy())
        arrays[name] = value.astype(dtype) if value.dtype.kind == "f" else value
    atomic_save(lambda tmp: np.savez(tmp, **arrays), str(path))
    return sha256_of(path)


def load_npz(network, path):
    """Assigns the arrays of ``path`` to ``network``'s weights (cast to their dtypes).

    Raises:
        ValueError: if a variable is missing from the file, the file holds an
            unknown array, or a shape differs.
    """
    variables = _weight_variables(network)
    with np.load(path, allow_pickle=False) as data:
        missing = sorted(set(variables) - set(data.files))
        unexpected = sorted(set(data.files) - set(variables))
        if missing or unexpected:
            raise ValueError(f"{path} does not match the network {network.name!r}: missing "
                             f"{missing[:5]}, unexpected {unexpected[:5]}.")
        for name, variable in variables.items():
            value = data[name]
            if tuple(value.shape) != tuple(variable.shape):
                raise ValueError(f"{path}: {name} has shape {value.shape}, the network "
                                 f"expects {tuple(variable.shape)}.")
            variable.assign(value.astype(variable.dtype))

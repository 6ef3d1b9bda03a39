"""Load dataset splits from a local directory of npz files, or from tfds."""

import os

import numpy as np

from keras_rse._validation import check_choice, invalid_argument

DATA_DIR_ENV = "KERAS_RSE_DATA_DIR"
SHAPES = {"cifar10": (32, 32, 3), "stl10": (96, 96, 3)}
SPLITS = {"train", "test"}


def resolve_data_dir(data_dir=None):
    """Returns ``data_dir``, else ``$KERAS_RSE_DATA_DIR``, else None (use tfds)."""
    return data_dir or os.environ.get(DATA_DIR_ENV) or None


def _load_npz(path, dataset):
    with np.load(path, allow_pickle=False) as data:
        if "x" not in data or "y" not in data:
            raise ValueError(f"Malformed data file {path}: expected arrays 'x' and 'y', "
                             f"found {sorted(data.files)}.")
        x, y = data["x"], data["y"]
    expected = SHAPES[dataset]
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != expected:
        raise ValueError(f"Malformed data file {path}: expected 'x' uint8 of shape "
                         f"(N, {', '.join(map(str, expected))}); found {x.dtype} {x.shape}.")
    if y.shape != (len(x),):
        raise ValueError(f"Malformed data file {path}: 'y' has shape {y.shape}, "
                         f"expected ({len(x)},).")
    return x, y.astype(np.int32)


def _load_tfds(dataset, split):
    try:
        import tensorflow_datasets as tfds

        x, y = tfds.as_numpy(tfds.load(dataset, split=split, batch_size=-1, as_supervised=True))
    except Exception as error:  # tfds raises many kinds of network/download errors
        raise RuntimeError(
            f"Could not load {dataset!r} through tensorflow-datasets ({error}). Without "
            f"network access, pass --data_dir or set {DATA_DIR_ENV} to a directory holding "
            f"{dataset}_train.npz and {dataset}_test.npz.") from error
    return x, y.astype(np.int32)


def load_split(dataset, split, data_dir=None, limit=None):
    """Loads one split as ``(x float32 in [0, 1], y int32)``.

    Args:
        dataset: ``"cifar10"`` or ``"stl10"``.
        split: ``"train"`` or ``"test"``.
        data_dir: Directory holding ``{dataset}_{split}.npz`` (arrays ``x``
            uint8 NHWC and ``y``); None: ``$KERAS_RSE_DATA_DIR``, else tfds.
        limit: Keep only the first ``limit`` examples.

    Returns:
        ``(x, y)`` numpy arrays.
    """
    check_choice("dataset", dataset, set(SHAPES))
    check_choice("split", split, SPLITS)
    data_dir = resolve_data_dir(data_dir)
    if data_dir is None:
        x, y = _load_tfds(dataset, split)
    else:
        if not os.path.isdir(data_dir):
            raise invalid_argument("data_dir", "an existing directory", data_dir)
        path = os.path.join(data_dir, f"{dataset}_{split}.npz")
        if not os.path.isfile(path):
            raise invalid_argument("data_dir", f"a directory containing {dataset}_{split}.npz",
                                   data_dir)
        x, y = _load_npz(path, dataset)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x.astype(np.float32) / 255.0, y


def train_validation_split(x, y, validation_size, seed=0):
    """Holds out ``validation_size`` examples of the training set (seeded permutation).

    Returns:
        ``(x_train, y_train), (x_val, y_val)``.
    """
    if not 0 <= validation_size < len(x):
        raise invalid_argument("validation_size", f"an integer in [0, {len(x)})",
                               validation_size)
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:validation_size], order[validation_size:]
    return (x[train], y[train]), (x[val], y[val])

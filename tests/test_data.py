"""Data: npz and image-folder layouts, clear errors, provenance of the data in reports."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_rse import data


def _write_folder(root, x, y, classes, suffix=".png"):
    for index, (image, label) in enumerate(zip(x, y)):
        folder = root / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        path = str(folder / f"{index:04d}{suffix}")
        encoded = tf.io.encode_png(image) if suffix == ".png" else tf.io.encode_jpeg(image)
        tf.io.write_file(path, encoded)


CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]


def test_image_folder_gives_the_same_arrays_as_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (20, 32, 32, 3), np.uint8)
    y = np.arange(20) % 10
    _write_folder(tmp_path / "cifar10_test", x, y, CLASSES)
    x_loaded, y_loaded = data.load_split("cifar10", "test", str(tmp_path))
    # Files are read class by class: compare as sets of (image, label).
    order = np.lexsort((np.arange(20), y))
    np.testing.assert_array_equal(y_loaded, y[order])
    np.testing.assert_array_equal(x_loaded, x[order].astype(np.float32) / 255.0)
    described = data.describe_split("cifar10", "test", str(tmp_path))
    assert described["source"] == "image_folder"


def test_jpeg_folder_decodes(tmp_path):
    x = np.full((10, 32, 32, 3), 128, np.uint8)
    _write_folder(tmp_path / "cifar10_train", x, np.arange(10), CLASSES, suffix=".jpg")
    x_loaded, y_loaded = data.load_split("cifar10", "train", str(tmp_path))
    assert x_loaded.shape == (10, 32, 32, 3) and list(y_loaded) == list(range(10))
    assert np.max(np.abs(x_loaded * 255 - 128)) <= 2  # JPEG of a flat image is ~exact


@pytest.mark.parametrize("layout, match", [
    ("nine_classes", "expected 10 class folders"),
    ("empty_class", "holds no"),
    ("wrong_size", "shape"),
])
def test_malformed_image_folder_is_a_clear_error(tmp_path, layout, match):
    x = np.zeros((10, 32, 32, 3), np.uint8)
    root = tmp_path / "cifar10_test"
    if layout == "nine_classes":
        _write_folder(root, x[:9], np.arange(9), CLASSES)
    elif layout == "empty_class":
        _write_folder(root, x[:9], np.arange(9), CLASSES)
        (root / "truck").mkdir()
    else:
        _write_folder(root, np.zeros((10, 16, 16, 3), np.uint8), np.arange(10), CLASSES)
    with pytest.raises(ValueError, match=match):
        data.load_split("cifar10", "test", str(tmp_path))


def test_missing_split_names_both_layouts(tmp_path):
    with pytest.raises(ValueError, match="cifar10_test.npz or an image folder"):
        data.load_split("cifar10", "test", str(tmp_path))


def test_describe_split_names_an_unknown_npz_and_tfds(tmp_path, monkeypatch):
    np.savez(tmp_path / "cifar10_test.npz", x=np.zeros((2, 32, 32, 3), np.uint8),
             y=np.zeros(2, np.uint8))
    described = data.describe_split("cifar10", "test", str(tmp_path))
    assert described["source"] == "npz" and len(described["sha256"]) == 64
    assert "unknown copy" in described["description"]
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)
    assert data.describe_split("cifar10", "test")["source"] == "tensorflow-datasets"


@pytest.mark.integration
def test_shared_cifar10_copy_is_recognised():
    if not os.environ.get(data.DATA_DIR_ENV):
        pytest.skip(f"{data.DATA_DIR_ENV} is not set")
    described = data.describe_split("cifar10", "test")
    assert "JPEG re-encoded copy" in described["description"], described

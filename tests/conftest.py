"""Shared fixtures: tiny seeded models on synthetic inputs (the default tier)."""

import json
import os
import socket
import subprocess

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_rse.models import SelfEnsemble  # noqa: E402
from keras_rse.models._blocks import NoisePlan, classifier_head, image_input  # noqa: E402


def build_tiny_network(init_noise=0.2, inner_noise=0.1, seed=0, num_classes=10):
    """A 2-conv functional network on 16x16 inputs with RSE noise placement."""
    plan = NoisePlan(init_noise, inner_noise, seed=seed)
    inputs, x = image_input((16, 16, 3), "cifar10", plan)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(x)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = plan.apply(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(x)
    logits = classifier_head(x, num_classes)
    return keras.Model(inputs, logits, name="tiny_network")


@pytest.fixture
def tiny_model():
    """A SelfEnsemble around the tiny noisy network."""
    return SelfEnsemble(build_tiny_network(), ensemble_size=10, name="tiny")


@pytest.fixture
def images():
    """Eight random 16x16 RGB images in [0, 1] (seeded)."""
    return np.random.default_rng(0).random((8, 16, 16, 3), dtype=np.float32)


def make_synthetic_dataset(count, seed=0, amplitude=0.05, noise=0.02, num_classes=10):
    """Images near grey whose class is a faint random pattern (16x16x3, in [0, 1]).

    Class templates differ by about ``amplitude`` per pixel, so a well-trained
    model is accurate yet an 8/255 Linf budget is enough to cross a boundary:
    a setting where attack strength can be measured.
    """
    rng = np.random.default_rng(1234)  # the templates are fixed for every split
    templates = 0.5 + amplitude * rng.choice([-1.0, 1.0], size=(num_classes, 16, 16, 3))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, count).astype("int32")
    x = templates[y] + noise * rng.standard_normal((count, 16, 16, 3))
    return np.clip(x, 0, 1).astype("float32"), y


def build_small_cnn(seed=0):
    """conv16-pool-conv32-pool-dense10 on 16x16 images (logits out)."""
    init = keras.initializers.GlorotUniform(seed)
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=init),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=init),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),  # the classes are spatial patterns: keep the layout
        keras.layers.Dense(10, kernel_initializer=init),
    ], name="small_cnn")


def train_small_cnn():
    """A small undefended CNN trained to high accuracy on the synthetic data (seeded)."""
    keras.utils.set_random_seed(0)
    model = build_small_cnn()
    x, y = make_synthetic_dataset(3000, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    return model


def make_noisy_cnn(cnn):
    """``cnn`` with noise before each conv (0.1 / 0.3), noise-trained 2 epochs, ensemble 20."""
    from keras_rse.models import randomize

    keras.utils.set_random_seed(11)  # fit's shuffling: the same model whichever test builds it
    model = randomize(cnn, init_noise=0.1, inner_noise=0.3, seed=11, ensemble_size=20)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = make_synthetic_dataset(2000, seed=5)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_cnn():
    """A small undefended CNN trained to high accuracy on the synthetic data."""
    return train_small_cnn()


@pytest.fixture(scope="session")
def attack_data():
    """200 held-out synthetic examples for attack tests."""
    return make_synthetic_dataset(200, seed=2)


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_on_two_local_workers(command, timeout=400):
    """Runs ``command`` as workers 0 and 1 of a TF_CONFIG cluster on 127.0.0.1; both must exit 0."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}" for _ in range(2)]}
    procs = []
    for task in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}})
        procs.append(subprocess.Popen(
            command, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": tf_config},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err[-2000:]

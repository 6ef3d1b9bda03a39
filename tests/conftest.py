"""Shared fixtures: tiny seeded models on synthetic inputs (the default tier)."""

import os

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

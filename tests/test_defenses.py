"""One train_step per defense: finite loss, weights change, metrics; LeRAT noise moves."""

import keras
import numpy as np
import pytest

from keras_rse import defenses, layers
from keras_rse.models import wide_resnet

from conftest import build_tiny_network, make_synthetic_dataset


def _compile(model, soft=False):
    loss = (keras.losses.CategoricalCrossentropy(from_logits=True) if soft
            else keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=loss,
                  metrics=["categorical_accuracy" if soft else "accuracy"])
    return model


def _one_step(model, soft_teacher=None):
    x, y = make_synthetic_dataset(32, seed=3)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert any(changed)
    return logs


@pytest.mark.parametrize("name", ["none", "rse", "at", "fgsm_retrain", "brelu", "distill"])
def test_one_train_step_per_defense(name):
    cls, kwargs, noisy = defenses.DEFENSES[name]
    network = build_tiny_network(*((0.2, 0.1) if noisy else (0.0, 0.0)), seed=1)
    model = _compile(cls(network, seed=0, **kwargs))
    logs = _one_step(model)
    assert "accuracy" in logs


@pytest.mark.parametrize("name", ["rat", "lerat"])
def test_rat_and_lerat_train_steps(name):
    cls, kwargs, _ = defenses.DEFENSES[name]
    network = wide_resnet(depth=10, width=1, input_shape=(16, 16, 3), noise_placement="rat",
                          init_noise=1.0, inner_noise=0.0, normalization="symmetric",
                          noise_type="learned" if name == "lerat" else "gaussian").network
    model = _compile(cls(network, seed=0, **kwargs))
    _one_step(model)


def test_lerat_learns_its_noise_and_keeps_it_valid():
    network = wide_resnet(depth=10, width=1, input_shape=(16, 16, 3), noise_placement="rat",
                          init_noise=0.5, inner_noise=0.0, noise_type="learned").network
    model = _compile(defenses.RandomizedAdversarialTraining(network, learned_noise=True, seed=0))
    (noise,) = layers.noise_layers(model)
    before = noise.scale.numpy().copy()
    x, y = make_synthetic_dataset(128, seed=4)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    after = noise.scale.numpy()
    assert not np.allclose(before, after)
    assert (after >= 0).all() and np.isfinite(after).all()


def test_rat_refuses_a_deterministic_network():
    with pytest.raises(ValueError, match=r"`network`.*randomized network"):
        defenses.RandomizedAdversarialTraining(build_tiny_network(0.0, 0.0))
    with pytest.raises(ValueError, match=r"`network`.*LearnedNoise"):
        defenses.RandomizedAdversarialTraining(build_tiny_network(), learned_noise=True)


def test_adversarial_training_uses_examples_inside_the_budget():
    model = defenses.AdversarialTraining(build_tiny_network(0.0, 0.0), eps=4 / 255, seed=0)
    x, y = make_synthetic_dataset(16, seed=5)
    x_adv = model.adversarial(x, y).numpy()
    assert np.abs(x_adv - x).max() <= 4 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.abs(x_adv - x).max() > 0


def test_distillation_student_learns_from_soft_labels():
    teacher = _compile(defenses.Distillation(build_tiny_network(0.0, 0.0, seed=1), seed=0))
    _one_step(teacher)
    student = _compile(defenses.Distillation(build_tiny_network(0.0, 0.0, seed=2), seed=0,
                                             teacher=teacher.network), soft=True)
    x, y = make_synthetic_dataset(32, seed=3)
    _, soft = student.training_batch(x, y)
    np.testing.assert_allclose(soft.numpy().sum(1), 1.0, atol=1e-5)
    _one_step(student)
    # The teacher is not part of the student's weights (not saved with it).
    assert len(student.weights) == len(teacher.weights)


def test_gaussian_augmentation_statistics():
    model = defenses.GaussianAugmentation(build_tiny_network(0.0, 0.0), stddev=0.05, seed=1)
    x = np.full((64, 16, 16, 3), 0.5, "float32")
    noisy, _ = model.training_batch(x, np.zeros(64, "int32"))
    assert abs(float(np.std(noisy.numpy() - x)) - 0.05) < 0.003

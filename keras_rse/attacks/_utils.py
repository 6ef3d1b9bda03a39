"""Validation, projection, losses and the result type shared by every attack."""

import math
import numbers
import secrets
from collections.abc import Callable
from typing import NamedTuple, Union

import keras
import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from keras_rse._validation import check_choice, check_pixel_values, invalid_argument

NORMS = {"linf", "l2"}

# What every attack accepts as `model`: a Keras model (a SelfEnsemble or a functional
# network) or any callable mapping [0, 1] images to logits.
ModelLike = Union[keras.Model, Callable[[tf.Tensor], tf.Tensor]]
# Images (N, H, W, C) in [0, 1] or integer labels (N,): NumPy arrays or tensors.
TensorLike = Union[ArrayLike, tf.Tensor]


class AttackResult(NamedTuple):
    """What every attack returns (all tensors, one row per example).

    Attributes:
        x_adv: Adversarial inputs, guaranteed inside [0, 1] (and the eps-ball
            for budgeted attacks).
        success: bool, True where the attack's criterion is met on the final
            ``x_adv`` (untargeted: the EOT prediction differs from ``y``;
            targeted: it equals the target).
        l2: L2 norm of ``x_adv - x`` per example.
        linf: Linf norm of ``x_adv - x`` per example.
    """

    x_adv: tf.Tensor
    success: tf.Tensor
    l2: tf.Tensor
    linf: tf.Tensor


def check_eps(name, eps):
    """Returns ``eps`` as a float; raises unless finite and >= 0."""
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) \
            or eps < 0:
        raise invalid_argument(name, "a finite float >= 0", eps)
    return float(eps)


def check_norm(norm):
    """Returns the norm name (``"linf"`` or ``"l2"``)."""
    return check_choice("norm", norm, NORMS)


def check_images_and_labels(x, y, num_classes):
    """Validates ``x`` (finite, in [0, 1], rank 4) and integer labels ``y``.

    Args:
        x: Images, array-like (N, H, W, C).
        y: Integer labels (N,), in [0, num_classes).
        num_classes: Number of classes of the model.

    Returns:
        ``(x, y)`` as float32 and int32 tensors.
    """
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 4:
        raise invalid_argument("x", "a 4D batch of images (N, H, W, C)", f"shape {tuple(x.shape)}")
    if tf.executing_eagerly():
        check_pixel_values("x", x.numpy())
    y_np = np.asarray(y)
    if y_np.shape != (x.shape[0],):
        raise invalid_argument("y", f"integer labels of shape ({x.shape[0]},)",
                               f"shape {y_np.shape}")
    if not np.issubdtype(y_np.dtype, np.integer):
        raise invalid_argument("y", "integer class indices", f"dtype {y_np.dtype}")
    if y_np.size and (y_np.min() < 0 or y_np.max() >= num_classes):
        raise invalid_argument("y", f"class indices in [0, {num_classes})",
                               f"values in [{y_np.min()}, {y_np.max()}]")
    return x, tf.convert_to_tensor(y_np, tf.int32)


def _flat_norms(delta):
    flat = tf.reshape(delta, [tf.shape(delta)[0], -1])
    return tf.norm(flat, axis=1), tf.reduce_max(tf.abs(flat), axis=1)


def per_example(v):
    """A per-example vector (N,) shaped (N, 1, 1, 1) to broadcast against (N, H, W, C) images."""
    return tf.reshape(v, [-1, 1, 1, 1])


def project(x_adv: tf.Tensor, x: tf.Tensor, eps: float | tf.Tensor, norm: str) -> tf.Tensor:
    """Projects ``x_adv`` onto the eps-ball around ``x`` and onto [0, 1].

    The one final step shared by all budgeted attacks, so every result is
    inside the budget and the image bounds. For L2 the ball projection is
    followed by the box clip; clipping can only shrink each coordinate's
    distance to ``x``, so the result stays in the ball.
    """
    delta = x_adv - x
    if norm == "linf":
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        l2, _ = _flat_norms(delta)
        factor = tf.minimum(1.0, eps / tf.maximum(l2, 1e-12))
        delta = delta * per_example(factor)
    return tf.clip_by_value(x + delta, 0.0, 1.0)


def distortion(x_adv, x):
    """Returns ``(l2, linf)`` norms of ``x_adv - x`` per example."""
    return _flat_norms(x_adv - x)


# Compiled once: an eager call pays ~0.7 ms more per 256 CIFAR images (measured), which
# is visible next to a ~40 ms FGSM.
_compiled_distortion = tf.function(distortion, reduce_retracing=True)


def attack_result(x_adv, success, x):
    """The `AttackResult` of an attack on ``x``, with its distortions measured."""
    return AttackResult(x_adv, success, *_compiled_distortion(x_adv, x))


def normalized_step(grad, norm):
    """Steepest-ascent direction of unit norm: sign for Linf, grad/||grad|| for L2."""
    if norm == "linf":
        return tf.sign(grad)
    l2, _ = _flat_norms(grad)
    return grad / per_example(tf.maximum(l2, 1e-12))


def random_start(x, eps, norm, seed):
    """A uniformly random point of the Linf or L2 eps-ball around ``x``, clipped to [0, 1].

    Args:
        x: Images (N, H, W, C).
        eps: Radius.
        norm: ``"linf"`` or ``"l2"``.
        seed: A shape-(2,) int32 tensor for TensorFlow's stateless RNG, so the
            start is reproducible and needs no variable inside `tf.function`.
    """
    shape = tf.shape(x)
    if norm == "linf":
        delta = tf.random.stateless_uniform(shape, seed, -eps, eps)
    else:
        direction = normalized_step(tf.random.stateless_normal(shape, seed), "l2")
        dims = tf.cast(tf.reduce_prod(shape[1:]), tf.float32)
        u = tf.random.stateless_uniform([shape[0]], seed + 1)
        delta = direction * per_example(eps * u ** (1.0 / dims))
    return tf.clip_by_value(x + delta, 0.0, 1.0)


def keep_worst_case(best, candidate):
    """Per example, the worse of two attack outcomes ``(x_adv, success, objective)``.

    A success beats a failure; between equals the higher objective (the loss
    the attack ascends) wins. Used to combine restarts.

    Returns:
        The combined ``(x_adv, success, objective)``.
    """
    best_x, best_success, best_objective = best
    x_adv, success, objective = candidate
    better = (success & ~best_success) | (
        tf.equal(success, best_success) & (objective > best_objective))
    return (tf.where(per_example(better), x_adv, best_x),
            best_success | success, tf.where(better, objective, best_objective))


def seed_pair(seed):
    """A shape-(2,) seed tensor for the stateless RNG; a fresh one when ``seed`` is None."""
    value = secrets.randbits(31) if seed is None else int(seed)
    return tf.constant([value, 0], tf.int32)


def cross_entropy(logits, labels):
    """Per-example cross-entropy of integer ``labels`` under ``logits``."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def signed_margin(logits, y, direction):
    """``direction * (Z_y - max_{i != y} Z_i)``: < 0 once the attack's goal is met.

    ``direction`` is 1 for untargeted attacks (y = true label) and -1 for
    targeted ones (y = target).
    """
    one_hot = tf.one_hot(y, tf.shape(logits)[-1])
    true_logit = tf.reduce_sum(one_hot * logits, axis=-1)
    other = tf.reduce_max(logits - one_hot * 1e9, axis=-1)
    return direction * (true_logit - other)


def log_probabilities(probabilities):
    """``log p`` with ``p`` floored at 1e-30: a class no draw predicts stays finite.

    ``probabilities`` must be float32 (the floor underflows to 0 in float16);
    the models' outputs are cast to float32 before they get here.
    """
    return tf.math.log(tf.maximum(probabilities, 1e-30))


def probability_margin(probabilities, y, direction):
    """`signed_margin` of log-probabilities, e.g. of a self-ensemble's mean softmax.

    Judges a point as the defended model does (< 0: its averaged prediction
    meets the attack's goal) and says by how much.
    """
    return signed_margin(log_probabilities(probabilities), y, direction)

"""tf.data pipelines: per-epoch seeded shuffling and standard augmentation."""

import numpy as np
import tensorflow as tf


def augment(images: tf.Tensor, seed: tf.Tensor, padding: int = 4) -> tf.Tensor:
    """Random crop after ``padding``-pixel reflection padding, and random horizontal flip.

    The standard CIFAR augmentation, stateless: the same ``seed`` (a shape-(2,)
    int tensor) gives the same crops and flips.

    Args:
        images: A batch (N, H, W, C).
        seed: Stateless seed, shape (2,).
        padding: Pixels of padding on each side before cropping.

    Returns:
        The augmented batch, same shape.
    """
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]],
                    mode="REFLECT")
    offsets = tf.random.stateless_uniform([shape[0], 2], seed, 0, 2 * padding + 1, tf.int32)
    crops = tf.map_fn(
        lambda args: tf.slice(args[0], [args[1][0], args[1][1], 0], [shape[1], shape[2], -1]),
        (padded, offsets), fn_output_signature=images.dtype)
    flip = tf.random.stateless_uniform([shape[0], 1, 1, 1], seed + 1) < 0.5
    return tf.where(flip, tf.reverse(crops, axis=[2]), crops)


def make_train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int = 0,
                       first_epoch: int = 0, last_epoch: int = 1, augmentation: bool = True,
                       first_step: int = 0) -> tf.data.Dataset:
    """Shuffled (and augmented) batches for epochs ``[first_epoch, last_epoch)``.

    Each epoch's order and augmentation derive from ``(seed, epoch)`` alone
    (and a batch's augmentation from its index in the epoch), so a run resumed
    at epoch k, step s sees exactly the batches it would have seen without the
    interruption. Every epoch has ``ceil(N / batch_size)`` batches (the last
    one partial): use that as ``steps_per_epoch``.

    Args:
        x, y: Training images and labels.
        batch_size: Batch size.
        seed: Seed of the order and the augmentation.
        first_epoch, last_epoch: The epochs ``[first_epoch, last_epoch)``.
        augmentation: Random crop and flip.
        first_step: Batches of ``first_epoch`` to leave out (a mid-epoch resume).

    Returns:
        A `tf.data.Dataset` of ``(images, labels)`` batches.
    """
    images, labels = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    count = len(x)
    seed = tf.constant(seed, tf.int64)

    def one_epoch(epoch):
        # A stateless permutation: a function of (seed, epoch) only, whatever ran before.
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([seed, epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(
            lambda index: (tf.gather(images, index), tf.gather(labels, index)))
        if not augmentation:
            return batches
        return batches.enumerate().map(
            lambda i, batch: (augment(batch[0], tf.cast(tf.stack([seed * 7919 + epoch, i]),
                                                        tf.int32)), batch[1]))

    epochs = tf.data.Dataset.range(first_epoch, last_epoch)
    return epochs.flat_map(one_epoch).skip(first_step).prefetch(tf.data.AUTOTUNE)

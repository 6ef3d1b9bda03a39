"""Standard normal draws for the noise layers, by the Box-Muller transform."""

import math

import keras
from keras import ops


def standard_normal(inputs, dtype, seed):
    """Independent N(0, 1) draws, one per element of ``inputs``.

    Exactly Gaussian (Box & Muller, 1958): pairs of uniform draws ``(u1, u2)``
    give ``sqrt(-2 ln u1) * (cos 2 pi u2, sin 2 pi u2)``, two independent
    normals. On CPU this is cheaper than `keras.random.normal`, whose
    TensorFlow kernel evaluates the same transform with scalar code: measured
    on the project's 2-core CPU, 44.9 vs 64.8 ms for 8.4 M values, and a noisy
    VGG16 forward pass (batch 128) 467 vs 532 ms (``benchmarks/bench_noise.py``).
    The noise draws are a large part of a noisy network's forward pass, so
    this sets the cost of RSE training, self-ensembles and EOT attacks.

    Args:
        inputs: The tensor whose shape the noise takes.
        dtype: dtype of the result; the transform runs in float32 (a
            bfloat16 uniform has too few bits for the Gaussian tails).
        seed: A `keras.random.SeedGenerator` (or seed) for the uniform draws.

    Returns:
        A tensor of ``inputs``' shape and ``dtype``.
    """
    count = ops.size(inputs)
    half = (count + 1) // 2
    uniform = keras.random.uniform((2, half), dtype="float32", seed=seed)
    # 1 - u lies in (0, 1], so the log is finite; the largest radius is ~5.8.
    radius = ops.sqrt(-2.0 * ops.log(1.0 - uniform[0]))
    angle = (2.0 * math.pi) * uniform[1]
    values = ops.concatenate([radius * ops.cos(angle), radius * ops.sin(angle)], axis=0)
    return ops.cast(ops.reshape(values[:count], ops.shape(inputs)), dtype)

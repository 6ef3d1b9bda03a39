"""Cost of the noise draws: Box-Muller from uniforms vs `keras.random.normal` (run on demand).

Two measurements, each contender interleaved with the other (this VM's timings
drift), reporting median and minimum:

1. the generator alone on a (128, 32, 32, 64) tensor (8.4 M values);
2. one noisy forward pass of the CIFAR VGG16 (RSE noise 0.2 / 0.1, batch
   ``--batch_size``) with each generator, and the same network without noise.

    python benchmarks/bench_noise.py [--repeats 15] [--policy float32]
"""

import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 15, "Timed calls per contender.")
flags.DEFINE_integer("batch_size", 128, "Batch of the VGG16 forward pass.")
flags.DEFINE_string("policy", "float32", "Keras dtype policy of the VGG16.")


def _keras_normal(inputs, dtype, seed):
    import keras

    return keras.random.normal(keras.ops.shape(inputs), dtype=dtype, seed=seed)


def _time(contenders, argument):
    """Interleaved timings: {name: [seconds, ...]} over FLAGS.repeats rounds."""
    for fn in contenders.values():
        fn(argument).numpy()  # trace and warm up
    times = {name: [] for name in contenders}
    for _ in range(FLAGS.repeats):
        for name, fn in contenders.items():
            started = time.perf_counter()
            fn(argument).numpy()
            times[name].append(time.perf_counter() - started)
    return times


def _report(title, times, per=None):
    print(title)
    for name, values in times.items():
        extra = f" ({min(values) / per * 1e9:.2f} ns/value)" if per else ""
        print(f"  {name:22s} median {statistics.median(values) * 1e3:8.1f} ms   "
              f"min {min(values) * 1e3:8.1f} ms{extra}")


def main(_):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_rse import models
    from keras_rse.layers import _gaussian, learned_noise, random_noise

    seed = keras.random.SeedGenerator(0)
    x = tf.zeros((128, 32, 32, 64))
    generators = {
        "box_muller": tf.function(lambda t: _gaussian.standard_normal(t, "float32", seed)),
        "keras.random.normal": tf.function(lambda t: _keras_normal(t, "float32", seed)),
    }
    _report("generator alone, 8.4 M float32 values", _time(generators, x), per=int(x.shape.num_elements()))
    values = generators["box_muller"](x).numpy().ravel()
    print(f"  box_muller moments: mean {values.mean():.4f} std {values.std():.4f} "
          f"skew {np.mean(values ** 3):.4f} kurtosis {np.mean(values ** 4):.3f}")

    keras.config.set_dtype_policy(FLAGS.policy)
    images = tf.random.uniform((FLAGS.batch_size, 32, 32, 3))
    forwards = {}
    for name, generator in (("box_muller", _gaussian.standard_normal),
                            ("keras.random.normal", _keras_normal)):
        # The layers look the generator up at trace time; swap it while building.
        random_noise.standard_normal = learned_noise.standard_normal = generator
        network = models.vgg16(seed=0).network
        forward = tf.function(lambda t, network=network: network(t, training=False))
        forward(images)
        forwards[f"vgg16 rse, {name}"] = forward
    random_noise.standard_normal = learned_noise.standard_normal = _gaussian.standard_normal
    plain = models.vgg16(init_noise=0.0, inner_noise=0.0, seed=0).network
    forwards["vgg16 without noise"] = tf.function(lambda t: plain(t, training=False))
    _report(f"VGG16 forward, batch {FLAGS.batch_size}, {FLAGS.policy}",
            _time(forwards, images))


if __name__ == "__main__":
    app.run(main)

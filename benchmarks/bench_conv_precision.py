"""Is bfloat16 native on this CPU? Conv input-gradient time, float32 vs bfloat16 (on demand).

    python benchmarks/bench_conv_precision.py [--batch_size 64] [--repeats 3]

Times the gradient of a conv's output with respect to its input (what every
attack and every backward pass computes) for the conv shapes of a CIFAR
WideResNet, in float32 and bfloat16. On CPUs with AMX / AVX512-BF16 bfloat16 is
faster; without them TensorFlow emulates it (Eigen's bfloat16 GEMM) and it was
measured about 10x slower (2-core AMD EPYC, AVX2 only). Prints what
`keras_rse._hardware` concludes from /proc/cpuinfo beside the timings.
"""

import time

from absl import app, flags

flags.DEFINE_integer("batch_size", 64, "Images per call.")
flags.DEFINE_integer("repeats", 3, "Timed calls per shape and dtype (median).")
FLAGS = flags.FLAGS

# (input channels, output channels, kernel, stride, height = width)
SHAPES = ((3, 16, 3, 1, 32), (16, 64, 3, 1, 32), (64, 64, 3, 1, 32), (64, 128, 3, 2, 32),
          (64, 128, 1, 2, 32), (128, 256, 3, 2, 16), (256, 256, 3, 1, 8))


def input_gradient_seconds(dtype, shape, batch_size, repeats):
    """Median seconds of one compiled conv input-gradient call."""
    import statistics

    import tensorflow as tf

    cin, cout, kernel, stride, size = shape
    x = tf.cast(tf.random.normal((batch_size, size, size, cin), seed=0), dtype)
    w = tf.cast(tf.random.normal((kernel, kernel, cin, cout), seed=1) * 0.05, dtype)

    @tf.function
    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.nn.conv2d(x, w, stride, "SAME")
            loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
        return tape.gradient(loss, x)

    gradient(x).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        gradient(x).numpy()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv):
    del argv
    import tensorflow as tf

    from keras_rse import _hardware

    flags_found = _hardware.cpu_flags()
    print(f"native bfloat16 on this CPU: {_hardware.native_on_cpu('mixed_bfloat16', flags_found)}"
          f" (None: unknown); GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    print("shape (cin, cout, kernel, stride, size) | float32 ms | bfloat16 ms | bf16 / fp32")
    for shape in SHAPES:
        fp32, bf16 = (input_gradient_seconds(d, shape, FLAGS.batch_size, FLAGS.repeats)
                      for d in (tf.float32, tf.bfloat16))
        print(f"{shape} | {fp32 * 1e3:.1f} | {bf16 * 1e3:.1f} | {bf16 / fp32:.2f}x", flush=True)


if __name__ == "__main__":
    app.run(main)

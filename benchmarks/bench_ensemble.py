"""Benchmark of the self-ensemble on the CIFAR VGG16 (run on demand, not in CI).

Measures, on one machine with nothing else running:
  (a) ensemble predict with n draws vs n single-pass predicts of the same batch;
  (b) at small batches, the tiled ensemble vs a Python loop of n predict calls;
  (c) single-pass inference images/s in float32 and in mixed_bfloat16.

Each figure is the median of ``--repeats`` timed runs after one warm-up run.

    python benchmarks/bench_ensemble.py [--repeats 3] [--output results.json]
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 3, "Timed repetitions per measurement (median reported).")
flags.DEFINE_integer("ensemble_size", 10, "Draws n in the ensemble.")
flags.DEFINE_integer("large_batch", 500, "Batch of measurement (a) and (c).")
flags.DEFINE_list("small_batches", ["1", "8", "32"], "Batches of measurement (b).")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Dtype policies for (c).")
flags.DEFINE_string("output", None, "Optional JSON file for the results.")


def _median_seconds(fn, repeats):
    fn()  # warm-up: tracing and first-call allocation are not what we measure
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _images(batch):
    import numpy as np

    return np.random.default_rng(0).random((batch, 32, 32, 3), dtype=np.float32)


def measure_large_batch(model, n, batch, repeats):
    """(a): one ensemble predict of n draws vs n single-pass predicts."""
    x = _images(batch)
    model.ensemble_size = n
    ensemble = _median_seconds(lambda: model.predict(x, batch_size=batch, verbose=0), repeats)
    model.ensemble_size = 1
    singles = _median_seconds(
        lambda: [model.predict(x, batch_size=batch, verbose=0) for _ in range(n)], repeats)
    return {"batch": batch, "n": n, "ensemble_s": ensemble, "n_single_passes_s": singles,
            "ratio": ensemble / singles}


def measure_small_batches(model, n, batches, repeats):
    """(b): tiled ensemble vs a Python loop of n single-pass predict calls."""
    rows = []
    for batch in batches:
        x = _images(batch)
        model.ensemble_size = n
        tiled = _median_seconds(lambda: model.predict(x, batch_size=batch, verbose=0), repeats)
        model.ensemble_size = 1
        loop = _median_seconds(
            lambda: [model.predict(x, batch_size=batch, verbose=0) for _ in range(n)], repeats)
        rows.append({"batch": batch, "n": n, "tiled_s": tiled, "python_loop_s": loop,
                     "speedup": loop / tiled})
    return rows


def measure_throughput(policy, batch, repeats):
    """(c): single-pass inference images/s of the full VGG16 under a dtype policy."""
    import keras

    import keras_rse

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras_rse.models.vgg16(ensemble_size=1, seed=0)
        x = _images(batch)
        seconds = _median_seconds(lambda: model.predict(x, batch_size=batch, verbose=0), repeats)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"policy": policy, "batch": batch, "seconds": seconds, "images_per_s": batch / seconds}


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    import keras_rse

    model = keras_rse.models.vgg16(seed=0)
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "keras_rse": keras_rse.__version__},
        "model": "vgg16 (CIFAR, 14.7 M parameters), RSE noise 0.2/0.1, float32",
    }
    results["a_large_batch"] = measure_large_batch(
        model, FLAGS.ensemble_size, FLAGS.large_batch, FLAGS.repeats)
    a = results["a_large_batch"]
    print(f"(a) batch {a['batch']}: ensemble n={a['n']} {a['ensemble_s']:.2f}s vs "
          f"{a['n']} single passes {a['n_single_passes_s']:.2f}s -> ratio {a['ratio']:.3f}")
    results["b_small_batches"] = measure_small_batches(
        model, FLAGS.ensemble_size, [int(b) for b in FLAGS.small_batches], FLAGS.repeats)
    for row in results["b_small_batches"]:
        print(f"(b) batch {row['batch']:3d}: tiled {row['tiled_s'] * 1e3:.1f} ms vs Python loop "
              f"{row['python_loop_s'] * 1e3:.1f} ms -> {row['speedup']:.2f}x faster")
    results["c_throughput"] = [
        measure_throughput(policy, FLAGS.large_batch, FLAGS.repeats) for policy in FLAGS.policies]
    for row in results["c_throughput"]:
        print(f"(c) {row['policy']:>15}: {row['images_per_s']:.0f} images/s single pass "
              f"(batch {row['batch']})")
    if FLAGS.output:
        tmp = FLAGS.output + ".tmp"
        with open(tmp, "w") as f:
            json.dump(results, f, indent=2)
        os.replace(tmp, FLAGS.output)  # atomic: no half-written report


if __name__ == "__main__":
    app.run(main)

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

import keras_rse

FLAGS = flags.FLAGS
flags.DEFINE_list("parts", ["a", "b", "c"], "Which measurements to run.")
flags.DEFINE_integer("repeats", 5, "Timed repetitions per measurement (median reported).")
flags.DEFINE_integer("ensemble_size", 10, "Draws n in the ensemble.")
flags.DEFINE_integer("large_batch", 500, "Batch of measurement (a) and (c).")
flags.DEFINE_list("small_batches", ["1", "8", "32"], "Batches of measurement (b).")
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Dtype policies for (c).")
flags.DEFINE_string("output", None, "Optional JSON file for the results.")


def _interleaved_seconds(fn_a, fn_b, repeats):
    """Times two contenders alternately (a, b, a, b, ...) after one warm-up each.

    This VM's timings vary up to 2x from run to run; alternating exposes both
    contenders to the same conditions. Returns ``(median_a, min_a, median_b, min_b)``.
    """
    fn_a(), fn_b()  # warm-up: tracing and first allocations are not measured
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return (statistics.median(times_a), min(times_a), statistics.median(times_b), min(times_b))


def _median_seconds(fn, repeats):
    return _interleaved_seconds(fn, lambda: None, repeats)[0]


def _images(batch):
    import numpy as np

    return np.random.default_rng(0).random((batch, 32, 32, 3), dtype=np.float32)


def _ensemble_vs_single_passes(model, n, batch, repeats):
    """Times one n-draw ensemble predict against n single-pass predicts."""
    x = _images(batch)
    ensemble = keras_rse.models.SelfEnsemble(model.network, ensemble_size=n)
    single = keras_rse.models.SelfEnsemble(model.network, ensemble_size=1)
    med_e, min_e, med_s, min_s = _interleaved_seconds(
        lambda: ensemble.predict(x, batch_size=batch, verbose=0),
        lambda: [single.predict(x, batch_size=batch, verbose=0) for _ in range(n)], repeats)
    return {"batch": batch, "n": n, "ensemble_s": med_e, "ensemble_min_s": min_e,
            "n_single_predicts_s": med_s, "n_single_predicts_min_s": min_s,
            "ensemble_over_singles": med_e / med_s, "singles_over_ensemble": med_s / med_e}


def measure_large_batch(model, n, batch, repeats):
    """(a): one ensemble predict of n draws vs n single-pass predicts (target <= 1.15)."""
    return _ensemble_vs_single_passes(model, n, batch, repeats)


def measure_small_batches(model, n, batches, repeats):
    """(b): tiled ensemble vs a Python loop of n single-pass predict calls (target >= 2x)."""
    return [_ensemble_vs_single_passes(model, n, batch, repeats) for batch in batches]


def measure_throughput(policy, batch, repeats):
    """(c): single-pass inference images/s of the full VGG16 under a dtype policy."""
    import keras

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

    model = keras_rse.models.vgg16(seed=0)
    results = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__,
                    "keras_rse": keras_rse.__version__},
        "model": "vgg16 (CIFAR, 14.7 M parameters), RSE noise 0.2/0.1, float32",
    }
    if "a" in FLAGS.parts:
        a = results["a_large_batch"] = measure_large_batch(
            model, FLAGS.ensemble_size, FLAGS.large_batch, FLAGS.repeats)
        print(f"(a) batch {a['batch']}: ensemble n={a['n']} {a['ensemble_s']:.2f}s (min "
              f"{a['ensemble_min_s']:.2f}) vs {a['n']} single-pass predicts "
              f"{a['n_single_predicts_s']:.2f}s (min {a['n_single_predicts_min_s']:.2f}) "
              f"-> ratio {a['ensemble_over_singles']:.3f}")
    if "b" in FLAGS.parts:
        rows = results["b_small_batches"] = measure_small_batches(
            model, FLAGS.ensemble_size, [int(b) for b in FLAGS.small_batches], FLAGS.repeats)
        for row in rows:
            print(f"(b) batch {row['batch']:3d}: tiled {row['ensemble_s'] * 1e3:.0f} ms (min "
                  f"{row['ensemble_min_s'] * 1e3:.0f}) vs Python loop "
                  f"{row['n_single_predicts_s'] * 1e3:.0f} ms (min "
                  f"{row['n_single_predicts_min_s'] * 1e3:.0f}) -> "
                  f"{row['singles_over_ensemble']:.2f}x faster")
    if "c" in FLAGS.parts:
        results["c_throughput"] = [measure_throughput(policy, FLAGS.large_batch, FLAGS.repeats)
                                   for policy in FLAGS.policies]
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

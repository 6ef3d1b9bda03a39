"""Train-step cost of each defense relative to an undefended step (run on demand).

CIFAR VGG16, batch 128, random [0, 1] images. For each dtype policy: ``none``
(no noise), ``rse`` (noise 0.2 / 0.1), ``rat`` (noisy network, 1-step PGD) and
``at`` with k PGD steps. Each is timed over ``--steps`` steps after two warm-up
steps (median step time). Targets from the issue: rse <= 1.10x, rat <= 2.2x,
at(k) <= (k + 1.2)x of the undefended step.

    python benchmarks/bench_train_step.py [--policies float32,mixed_bfloat16] [--at_steps 3]
"""

import json
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Dtype policies.")
flags.DEFINE_list("defenses", ["none", "rse", "rat", "at"], "Defenses to time.")
flags.DEFINE_integer("at_steps", 3, "PGD steps k of the `at` defense.")
flags.DEFINE_integer("steps", 5, "Timed steps per defense.")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_string("output", None, "Optional JSON output file.")


def _model(defense, at_steps):
    import keras

    from keras_rse import defenses, models

    noisy = defense in ("rse", "rat")
    network = models.vgg16(init_noise=0.2 if noisy else 0.0, inner_noise=0.1 if noisy else 0.0,
                           seed=0).network
    if defense == "rat":
        model = defenses.RandomizedAdversarialTraining(network, seed=0)
    elif defense == "at":
        model = defenses.AdversarialTraining(network, steps=at_steps, seed=0)
    else:
        model = defenses.Defense(network, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def step_seconds(defense, policy, at_steps, steps, batch_size):
    """Median seconds of one train step (``train_on_batch``) after warm-up."""
    import keras
    import numpy as np

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = _model(defense, at_steps)
        rng = np.random.default_rng(0)
        x = rng.random((batch_size, 32, 32, 3), dtype=np.float32)
        y = rng.integers(0, 10, batch_size).astype("int32")
        for _ in range(2):
            model.train_on_batch(x, y)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return statistics.median(times)


def main(argv):
    del argv
    results = []
    for policy in FLAGS.policies:
        base = None
        for defense in FLAGS.defenses:
            seconds = step_seconds(defense, policy, FLAGS.at_steps, FLAGS.steps, FLAGS.batch_size)
            base = seconds if defense == "none" else base
            ratio = seconds / base if base else None
            label = f"at(k={FLAGS.at_steps})" if defense == "at" else defense
            row = {"policy": policy, "defense": label, "step_s": seconds,
                   "images_per_s": FLAGS.batch_size / seconds, "vs_none": ratio}
            results.append(row)
            print(f"{policy:>15} {label:>8}: {seconds:.3f} s/step, "
                  f"{row['images_per_s']:.0f} img/s" + (f", {ratio:.2f}x none" if ratio else ""),
                  flush=True)
    if FLAGS.output:
        with open(FLAGS.output + ".tmp", "w") as f:
            json.dump(results, f, indent=2)
        import os

        os.replace(FLAGS.output + ".tmp", FLAGS.output)


if __name__ == "__main__":
    app.run(main)

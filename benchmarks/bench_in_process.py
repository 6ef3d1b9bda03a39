"""Ours vs CleverHans interleaved in ONE process (run on demand, in the `.[bench]` environment).

This VM's speed differs by up to 45 % between processes, which the one-process-per-library
`bench_attacks.py` cannot separate from the libraries. Here every round runs each contender
once, in an order that alternates between rounds, on the models and images that
`bench_attacks.py` prepared (run it first). Prints median seconds and accuracy after attack.

    TF_USE_LEGACY_KERAS=0 python benchmarks/bench_in_process.py [--attacks fgsm,eot_pgd]
"""

import os
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "benchmarks/results/attacks", "Folder of bench_attacks.py.")
flags.DEFINE_list("attacks", ["fgsm", "eot_pgd"], "fgsm and/or eot_pgd.")
flags.DEFINE_integer("repeats", 4, "Rounds (the order alternates between rounds).")


def _contenders(name, cnn, noisy, x, y):
    import numpy as np
    import tensorflow as tf
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method
    from cleverhans.tf2.attacks.projected_gradient_descent import projected_gradient_descent

    from keras_rse import attacks
    from keras_rse.models import with_dtype_policy

    xt, yt = tf.constant(x), tf.constant(y)
    if name == "fgsm":
        copy = with_dtype_policy(cnn)
        return cnn, {
            "keras_rse float32": lambda: attacks.fgsm(cnn, x, y, eps=8 / 255).x_adv,
            "keras_rse bfloat16": lambda: attacks.fgsm(copy, x, y, eps=8 / 255).x_adv,
            "cleverhans": lambda: fast_gradient_method(
                lambda t: cnn(t, training=False), xt, 8 / 255, np.inf, clip_min=0.0,
                clip_max=1.0, y=yt)}

    def tiled(t):  # how a CleverHans user adds EOT: mean logits over 10 tiled draws
        logits = noisy(tf.tile(t, [10, 1, 1, 1]), training=False)
        return tf.reduce_mean(tf.reshape(logits, [10, -1, logits.shape[-1]]), axis=0)

    settings = dict(eps=8 / 255, step_size=2 / 255, steps=10, eot_samples=10, seed=0)
    return noisy, {
        "keras_rse loss": lambda: attacks.pgd(noisy, x, y, **settings).x_adv,
        "keras_rse logits": lambda: attacks.pgd(noisy, x, y, estimator="logits",
                                                **settings).x_adv,
        "cleverhans": lambda: projected_gradient_descent(
            tiled, xt, eps=8 / 255, eps_iter=2 / 255, nb_iter=10, norm=np.inf, clip_min=0.0,
            clip_max=1.0, y=yt, rand_init=True, sanity_checks=False)}


def main(argv):
    del argv
    import keras
    import numpy as np

    import keras_rse  # noqa: F401  (registers the noise layers for loading)

    cnn = keras.saving.load_model(os.path.join(FLAGS.workdir, "cnn.keras"), safe_mode=True)
    noisy = keras.saving.load_model(os.path.join(FLAGS.workdir, "noisy.keras"), safe_mode=True)
    noisy.ensemble_size = 10
    data = np.load(os.path.join(FLAGS.workdir, "data.npz"))
    x, y = data["x"].astype("float32"), data["y"]
    for name in FLAGS.attacks:
        judge, contenders = _contenders(name, cnn, noisy, x, y)
        outputs = {k: np.asarray(f()) for k, f in contenders.items()}  # trace, keep results
        times = {k: [] for k in contenders}
        for round_index in range(FLAGS.repeats):
            order = list(contenders)[::1 if round_index % 2 == 0 else -1]
            for key in order:
                start = time.perf_counter()
                np.asarray(contenders[key]())
                times[key].append(time.perf_counter() - start)
        for key, values in times.items():
            accuracy = np.mean(judge.predict(outputs[key], batch_size=256, verbose=0)
                               .argmax(1) == y)
            print(f"{name:8s} {key:20s} median {statistics.median(values):8.3f} s   "
                  f"accuracy after {accuracy:.3f}", flush=True)


if __name__ == "__main__":
    app.run(main)

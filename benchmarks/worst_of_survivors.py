"""Which examples the apgd_rand row's DLR attack meets, on the tests' noisy CNN.

The suite's worst-of row runs APGD-CE, then APGD-DLR on the examples CE left unbroken. On a
randomized model "unbroken" can be the attack's own verdict (its EOT draws) or the defended
model's self-ensemble (what robust accuracy counts). This prints the ensemble's accuracy after
the row under both rules, with the suite's EOT 20 at Linf 3/255 and 20 iterations (8/255 breaks
this toy model completely), 200 images, a few runs each (the noise is reseeded per run):

* ``ensemble``: `keras_rse.eval.suites._attack_survivors` (the library's rule: survivors by the
  ensemble's verdict; each keeps the point new draws find more clearly misclassified);
* ``own``: the rule before 2026-12-02 (survivors by CE's own verdict; DLR's point replaces CE's).

About 4 minutes on 2 CPU cores; needs the ``[test]`` extra (it reuses tests/conftest.py).

    python3 benchmarks/worst_of_survivors.py [--runs 3]
"""

import argparse
import os
import sys
import time

import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import conftest  # noqa: E402  (the tests' toy data and noisy CNN)

from keras_rse.eval import suites  # noqa: E402
from keras_rse.eval._measure import attack_accuracy  # noqa: E402
from keras_rse.layers.noise_control import reseed_random_generators  # noqa: E402


def own_verdict_survivors(attack_fn, x, y, x_adv, success, judge):
    """The earlier rule: the later attack runs where the earlier one's own flag failed."""
    del judge
    remaining = tf.where(tf.logical_not(success))

    def attack_remaining():
        later_x, later_success = attack_fn(tf.gather_nd(x, remaining), tf.gather_nd(y, remaining))
        return (tf.tensor_scatter_nd_update(x_adv, remaining, tf.cast(later_x, x_adv.dtype)),
                tf.tensor_scatter_nd_update(success, remaining, later_success))

    return tf.cond(tf.size(remaining) > 0, attack_remaining, lambda: (x_adv, success))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    noisy = conftest.make_noisy_cnn(conftest.train_small_cnn())
    x, y = conftest.make_synthetic_dataset(200, seed=2)
    (spec,) = suites.suite_specs("apgd_rand", eot_samples=20)
    spec = dict(spec, attacks=[dict(part, eps=3 / 255, steps=20) for part in spec["attacks"]])
    library_rule = suites._attack_survivors
    for rule, survivors in (("own", own_verdict_survivors), ("ensemble", library_rule)):
        suites._attack_survivors = survivors
        for run in range(args.runs):
            reseed_random_generators(noisy, f"worst_of_survivors/{run}")
            started = time.time()
            entry = attack_accuracy(noisy, spec, x, y, batch_size=100, seed=run, progress=False)
            print(f"survivors by the {rule} verdict, run {run}: ensemble accuracy "
                  f"{entry['robust']['accuracy']:.3f} (clean "
                  f"{entry['clean_accuracy_same_examples']:.3f}), "
                  f"{time.time() - started:.0f} s", flush=True)
    suites._attack_survivors = library_rule


if __name__ == "__main__":
    main()

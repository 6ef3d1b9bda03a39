"""APGD vs PGD strength on the test suite's toy models (the numbers quoted in `attacks.apgd`).

Trains the synthetic-data CNN of ``tests/conftest.py`` (and its noisy variant, as in
``tests/test_attacks.py``) and prints the accuracy left after PGD, APGD-CE and APGD-DLR:
deterministic CNN at Linf 4/255 with 10 and 20 iterations; noisy CNN at Linf 3/255 with 50
iterations and EOT 4 and 20. About two minutes on 2 CPU cores.

    python benchmarks/apgd_strength.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import conftest  # noqa: E402  (the tests' toy data and CNN)

from keras_rse import attacks  # noqa: E402


def _accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def main():
    cnn = conftest.train_small_cnn()
    x_test, y_test = conftest.make_synthetic_dataset(200, seed=2)
    for steps in (10, 20):
        row = {"pgd": attacks.pgd(cnn, x_test, y_test, eps=4 / 255, steps=steps, seed=0)}
        for loss in ("ce", "dlr"):
            row[f"apgd-{loss}"] = attacks.apgd(cnn, x_test, y_test, eps=4 / 255, steps=steps,
                                               loss=loss, seed=0)
        print(f"deterministic CNN, Linf 4/255, {steps} iterations: " + ", ".join(
            f"{k} {_accuracy(cnn, r.x_adv, y_test):.3f}" for k, r in row.items()), flush=True)

    noisy = conftest.make_noisy_cnn(cnn)
    for draws in (4, 20):
        row = {"pgd": attacks.pgd(noisy, x_test, y_test, eps=3 / 255, steps=50,
                                  eot_samples=draws, seed=0)}
        for loss in ("ce", "dlr"):
            row[f"apgd-{loss}"] = attacks.apgd(noisy, x_test, y_test, eps=3 / 255, steps=50,
                                               loss=loss, eot_samples=draws, seed=0)
        print(f"noisy CNN, Linf 3/255, 50 iterations, EOT {draws}: " + ", ".join(
            f"{k} {_accuracy(noisy, r.x_adv, y_test):.3f}" for k, r in row.items()), flush=True)


if __name__ == "__main__":
    main()

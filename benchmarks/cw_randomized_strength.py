"""C&W-L2 against a randomized model, judged by its self-ensemble (the numbers quoted in
`attacks.carlini_wagner` and README).

Trains the synthetic-data CNN of ``tests/conftest.py``, adds noise as ``tests/test_attacks.py``
does (noise-trained 2 epochs, ensemble of 20), and prints, for fixed c = 1 and 0.1 (100 Adam
steps), a 5 x 40 binary search from c = 0.01 and RAT's 9 x 40 from c = 0.001, all with 5 EOT
draws: the self-ensemble's accuracy on the adversarials, the attack's own success flag and the
median L2. About four minutes on 2 CPU cores. Run it on the code before and after a change to
C&W to compare (the numbers move by a few points from run to run: fixed c = 1 gave 0.105, 0.16
and 0.20 on three runs of the same code).

    python3 benchmarks/cw_randomized_strength.py
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import conftest  # noqa: E402  (the tests' toy data and CNN)

from keras_rse import attacks  # noqa: E402

SETTINGS = {
    "fixed c=1": dict(c=1.0, steps=100),
    "fixed c=0.1": dict(c=0.1, steps=100),
    "search 5x40 from c=0.01": dict(binary_search_steps=5, steps=40, initial_c=0.01),
    "search 9x40 from c=0.001 (RAT)": dict(binary_search_steps=9, steps=40, initial_c=1e-3),
}


def main():
    model = conftest.make_noisy_cnn(conftest.train_small_cnn())
    x_test, y_test = conftest.make_synthetic_dataset(200, seed=2)

    def accuracy(images):
        return float(np.mean(np.argmax(model.predict(images, verbose=0), 1) == y_test))

    print(f"clean ensemble accuracy {accuracy(x_test):.3f} on {len(y_test)} images")
    for label, settings in SETTINGS.items():
        start = time.time()
        result = attacks.carlini_wagner_l2(model, x_test, y_test, eot_samples=5,
                                           abort_early=False, **settings)
        print(f"{label}: ensemble accuracy {accuracy(result.x_adv):.3f}, attack's success "
              f"flag {np.mean(result.success):.3f}, median L2 "
              f"{np.median(np.asarray(result.l2)):.3f} ({time.time() - start:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()

"""Subprocess entry for the distribution tests: attack a saved model, write JSON.

    python tests/distributed_worker.py MODE MODEL.keras DATA.npz OUT.json RANDOM_INIT EOT

MODE is ``single``, ``mirrored`` (the CPU split into 2 logical devices) or
``multiworker`` (cluster from TF_CONFIG).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(mode, model_path, data_path, out_path, random_init, eot_samples):
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_rse import attacks, distribute

    if mode == "mirrored":
        distribute.split_cpu(2)
    strategy = distribute.get_strategy({"single": "none"}.get(mode, mode))
    with strategy.scope():
        model = keras.saving.load_model(model_path, safe_mode=True)
    data = np.load(data_path)
    pgd = attacks.make_pgd(model, steps=5, random_init=bool(int(random_init)),
                           eot_samples=int(eot_samples))
    eps, step, seed = tf.constant(4 / 255), tf.constant(1 / 255), tf.constant([7, 0])
    results = distribute.run_attack(model, lambda x, y: pgd(x, y, eps, step, seed),
                                    data["x"], data["y"], strategy=strategy, batch_size=50,
                                    progress=False)
    summary = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in results.items()}
    summary["num_replicas"] = strategy.num_replicas_in_sync
    with open(out_path, "w") as f:
        json.dump(summary, f)


if __name__ == "__main__":
    main(*sys.argv[1:])

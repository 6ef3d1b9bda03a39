"""Measurements with their intervals: clean accuracy and one attack over a set of images."""

import math
import time

import numpy as np

from keras_rse import distribute, training
from keras_rse.eval import suites

# Recorded with each attack entry: whose verdict its success rate and median L2 use (entries
# without it, written before 2026-12-02, used the attack's own verdict).
SUCCESS_JUDGE = "the defended model's prediction, on the examples it classified correctly"


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion ``correct / n``, as ``[low, high]``."""
    if n == 0:
        return [0.0, 1.0]
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return [max(0.0, centre - half), min(1.0, centre + half)]


def proportion(accuracy, n):
    """``{"accuracy", "ci95", "n"}`` for an accuracy measured on ``n`` examples."""
    correct = int(round(accuracy * n))
    return {"accuracy": accuracy, "ci95": wilson_interval(correct, n), "n": int(n)}


def clean_accuracy(model, x, y, ensemble_sizes, batch_size=128):
    """Single noisy pass and self-ensembles of each size, on ``(x, y)``.

    The caller seeds the noise once for the whole measurement (`_run.EvaluationRun`
    reseeds per part, and the clean part's key holds ``ensemble_sizes``), so each
    size draws after the previous one: the same sizes give the same numbers, and a
    different list gives other draws of the same accuracies.
    """
    result = {"single_pass": proportion(
        training.single_pass_accuracy(model, x, y, batch_size), len(x)), "ensemble": {}}
    for size in ensemble_sizes:
        result["ensemble"][str(size)] = proportion(
            training.ensemble_accuracy(model, x, y, size, batch_size), len(x))
    return result


def attack_accuracy(model, spec, x, y, *, strategy=None, batch_size=128, seed=0,
                    progress=True, attack_model=None, cache=None, cache_payload=None):
    """Runs one attack spec over ``(x, y)``; returns its report entry.

    Args:
        model: The defended model; success and accuracy are judged on it.
        spec: An attack spec from `keras_rse.eval.suites`.
        x: Images in [0, 1].
        y: Integer labels.
        strategy: A `tf.distribute.Strategy` (default: the current one).
        batch_size: Global attack batch size; also the unit a killed run keeps.
        seed: Seed of the attack's random start.
        progress: Show a progress bar.
        attack_model: The model whose gradients the attack follows (e.g. a
            bfloat16 copy from `keras_rse.models.with_dtype_policy`); default
            ``model``. Success and accuracy are always judged on ``model``.
        cache: Optional `_resume.ResumeCache`: each finished batch is kept, so
            a killed evaluation resumes inside a long attack (an EOT C&W batch
            of a VGG16 costs minutes on a CPU), not only between attacks; the
            cache's ``before_compute`` runs before each batch.
        cache_payload: JSON-able facts identifying this attack (spec, images).

    Returns:
        The report entry: settings, robust accuracy with its interval, success
        rate, distortions and the seconds spent computing it (batches read back
        count with the time they took when they were computed).
    """
    attack_model = model if attack_model is None else attack_model
    finished = []
    while cache is not None:
        part = cache.load("attack-batch", dict(cache_payload, batch=len(finished)))
        if part is None:
            break
        finished.append(part)
    clock = {"last": time.time()}

    def prepare_batch(number):
        # Reseeds the noise per batch (see `ResumeCache.before_compute`): a run
        # resumed at batch `number` draws what the uninterrupted run drew.
        if cache is not None:
            cache.prepare("attack-batch", dict(cache_payload, batch=number))

    def keep_batch(number, results):
        now = time.time()
        part = dict({k: v.tolist() for k, v in results.items()}, seconds=now - clock["last"])
        clock["last"] = now
        finished.append(part if cache is None else cache.store(
            "attack-batch", dict(cache_payload, batch=number), part))
        prepare_batch(number + 1)

    prepare_batch(len(finished))

    attack_fn = suites.make_attack_fn(attack_model, spec, seed, judge=model)
    results = distribute.run_attack(
        model, attack_fn, x, y, strategy=strategy, batch_size=batch_size, progress=progress,
        finished=list(finished), on_batch=keep_batch)
    # Batches read back from JSON are float64, fresh ones float32: summarise in float64
    # so a resumed attack reports the same distortions as an uninterrupted one.
    l2, linf = (results[k].astype(np.float64) for k in ("l2", "linf"))
    # Successes as robust accuracy counts them: examples the defended model classified
    # correctly and misclassifies after the attack. The attack's own flag comes from its
    # EOT draws (or a bfloat16 copy): on a noisy model it includes points the ensemble
    # still gets right, which would put their distortion into the median.
    attacked = results["clean_prediction"] == results["label"]
    fooled = attacked & (results["adversarial_prediction"] != results["label"])
    success_l2 = l2[fooled]
    return {
        "name": spec["name"], "settings": dict(spec), "seed": seed,
        "ensemble_size_of_prediction": int(getattr(model, "ensemble_size", 1)),
        "robust": proportion(results["robust_accuracy"], len(x)),
        "clean_accuracy_same_examples": results["clean_accuracy"],
        "successes_judged_by": SUCCESS_JUDGE,
        "attack_success_rate": float(fooled.sum() / max(attacked.sum(), 1)),
        "attack_own_success_rate": float(np.mean(results["success"])),
        "median_l2_of_successes": float(np.median(success_l2)) if len(success_l2) else None,
        "successes_on_correct_examples": int(len(success_l2)),
        "mean_l2": float(np.mean(l2)), "mean_linf": float(np.mean(linf)),
        "wall_seconds": round(sum(part["seconds"] for part in finished), 1),
    }

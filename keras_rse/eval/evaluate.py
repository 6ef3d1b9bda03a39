"""`evaluate(model, x, y, ...)`: clean and adversarial accuracy with intervals, sweeps, checks.

Every number in a report carries the number of examples and a 95 % Wilson
interval; every attack carries its full settings. A randomized model is never
reported under an attack without EOT unless ``force_no_eot=True``, and the
report then says so.
"""

import contextlib
import math
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rse import distribute, training
from keras_rse._validation import check_positive_int, invalid_argument
from keras_rse.eval import _resume, diagnostics, suites
from keras_rse.layers.noise_control import noise_layers, reseed_random_generators


# How C&W picks its result on a randomized model (see `attacks.carlini_wagner_l2`).
CW_SELECTION = "most clearly fooled by new draws"


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
    """Single noisy pass and self-ensembles of each size, on ``(x, y)``."""
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

    results = distribute.run_attack(
        model, suites.make_attack_fn(attack_model, spec, seed), x, y, strategy=strategy,
        batch_size=batch_size, progress=progress, finished=list(finished), on_batch=keep_batch)
    # Batches read back from JSON are float64, fresh ones float32: summarise in float64
    # so a resumed attack reports the same distortions as an uninterrupted one.
    l2, linf = (results[k].astype(np.float64) for k in ("l2", "linf"))
    # Distortion is meaningful only where there was something to attack.
    attacked = results["clean_prediction"] == results["label"]
    success_l2 = l2[results["success"] & attacked]
    return {
        "name": spec["name"], "settings": dict(spec), "seed": seed,
        "ensemble_size_of_prediction": int(getattr(model, "ensemble_size", 1)),
        "robust": proportion(results["robust_accuracy"], len(x)),
        "clean_accuracy_same_examples": results["clean_accuracy"],
        "attack_success_rate": float(np.mean(results["success"])),
        "median_l2_of_successes": float(np.median(success_l2)) if len(success_l2) else None,
        "successes_on_correct_examples": int(len(success_l2)),
        "mean_l2": float(np.mean(l2)), "mean_linf": float(np.mean(linf)),
        "wall_seconds": round(sum(part["seconds"] for part in finished), 1),
    }


def check_eot_setting(model, eot_samples, force_no_eot):
    """Refuses EOT = 1 on a randomized model unless forced; returns report warnings."""
    eot_samples = check_positive_int("eot_samples", eot_samples)
    if eot_samples > 1 or not noise_layers(model):
        return []
    if not force_no_eot:
        raise invalid_argument(
            "eot_samples", "> 1 for a randomized model (an attack that ignores the noise "
            "overstates robustness; pass force_no_eot=True / --force_no_eot to measure it "
            "anyway)", eot_samples)
    return ["EOT DISABLED (eot_samples=1, forced): accuracies under attack of this "
            "randomized model are upper bounds from an attack that ignores the noise."]


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray, *,
             suites_to_run: Sequence[str] = ("quick",), sweeps: Sequence[str] = (),
             eot_samples: int | None = None, n_examples: int = 100, n_clean: int | None = None,
             ensemble_sizes: Sequence[int] = (1, 10, 50), cw_steps: int | None = None,
             force_no_eot: bool = False, run_diagnostics: bool = True, n_diagnostic: int = 64,
             surrogate: keras.Model | None = None,
             strategy: tf.distribute.Strategy | None = None, batch_size: int = 128,
             seed: int = 0, progress: bool = True, resume_dir: str | None = None,
             attack_policy: str | None = None) -> dict[str, Any]:
    """Evaluates ``model`` on test images ``(x, y)``.

    Args:
        model: A `SelfEnsemble` (or any Keras model mapping [0, 1] images to
            logits); attacked through single noisy passes with EOT, judged by
            its `predict` (the self-ensemble).
        x: Test images in [0, 1].
        y: Integer labels.
        suites_to_run: Names from `keras_rse.eval.suites` (``quick``,
            ``rse_table2``, ``rat_table2``, ``apgd_rand``). An attack two suites
            share with identical settings runs once; its entry names the first.
        sweeps: Any of ``eps``, ``c``, ``eot``, ``ensemble``.
        eot_samples: EOT draws of every attack; None: the suite's default
            (10; 50 for ``rat_table2``, 20 for ``apgd_rand``).
        n_examples: The first ``n_examples`` images are attacked.
        n_clean: The first ``n_clean`` images give the clean accuracies
            (default: all of ``x``).
        ensemble_sizes: Ensemble sizes for clean accuracy.
        cw_steps: Override of the C&W iterations of the suites.
        force_no_eot: Allow ``eot_samples=1`` on a randomized model.
        run_diagnostics: Run the sanity checks (on ``n_diagnostic`` images); without
            them the report carries a warning saying so.
        n_diagnostic: Images used by the checks.
        surrogate: Source model of the transfer check (default: noise off).
        strategy: A `tf.distribute.Strategy` for the attacks.
        batch_size: Global attack batch size.
        seed: Seed of the attacks' random starts and of the model's noise:
            every random generator of ``model`` is reset before each part
            (clean accuracy, each attack batch, each check, each ensemble
            size of the sweep) from the seed and what the part is, so the
            same evaluation gives the same numbers, resumed or not (on the
            same hardware, replica count and batch size). The attack copy and
            the surrogate get streams of their own, and so does each replica.
        progress: Progress bars and one line per step.
        resume_dir: Optional folder for finished parts (clean accuracy, each
            attack, each check): rerunning the same evaluation reads them back
            instead of recomputing, so a killed run resumes. Parts are keyed
            by the model's variables, the images, the settings, seed, batch
            size and replicas; the report lists what was read back in
            ``resumed_parts``. Use only where every worker sees the same
            folder (not across hosts of a MultiWorkerMirroredStrategy).
        attack_policy: None (attacks compute like ``model``) or a Keras dtype
            policy such as ``"mixed_bfloat16"``: the suites' and sweeps'
            FGSM, PGD and APGD attacks follow the gradients of such a copy
            (much cheaper on AMX CPUs), while every accuracy is judged on
            ``model``; recorded as ``attack_policy`` in each attack's settings.
            C&W and the diagnostics always use ``model`` (C&W lost strength in
            bfloat16).

    Returns:
        The report dict (see `keras_rse.eval.report`).
    """
    started = time.time()
    n_clean = len(x) if n_clean is None else check_positive_int("n_clean", n_clean)
    for name, value in (("n_examples", check_positive_int("n_examples", n_examples)),
                        ("n_clean", n_clean)):
        if value > len(x):
            raise invalid_argument(name, f"an integer <= {len(x)} (the images given)", value)
    x_attack, y_attack = x[:n_examples], y[:n_examples]
    x, y = x[:n_clean], y[:n_clean]
    attack_model = None
    if attack_policy is not None:
        from keras_rse.models import with_dtype_policy

        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            attack_model = with_dtype_policy(model, attack_policy)

    replicas_strategy = strategy or tf.distribute.get_strategy()  # what run_attack will use

    def reseed(key):
        reseed_random_generators(model, f"{seed}/{key}", replicas_strategy)
        # Own streams: an attack must not know the draws that judge it.
        for other, name in ((attack_model, "attack copy"), (surrogate, "surrogate")):
            if other is not None:
                reseed_random_generators(other, f"{seed}/{key}/{name}", replicas_strategy)

    # The parts' keys name their resume files and seed their noise draws, so they
    # are computed with or without a resume folder. "noise" keeps parts written
    # before the reseeding (other draws than a recomputation) from being read back,
    # and "replica_streams" those of multi-replica runs from before each replica
    # had its own stream (added only there: single-replica keys, and with them the
    # published cards' draws, stay as they were).
    replicas = getattr(strategy, "num_replicas_in_sync", 1)
    context = {
        "noise": "reseeded per part", "model": _resume.model_fingerprint(model),
        "ensemble_size": int(getattr(model, "ensemble_size", 1)), "batch_size": batch_size,
        "seed": seed, "replicas": replicas}
    if replicas > 1:
        context["replica_streams"] = "own"
    cache = _resume.ResumeCache(resume_dir, context, before_compute=reseed)
    attack_data = _resume.array_digest(x_attack, y_attack)
    clean_data = _resume.array_digest(x, y)

    def attack(spec):
        # C&W stops at the smallest perturbation (on a deterministic model), on the decision
        # boundary of the model it attacks; a bfloat16 copy's boundary is not the float32
        # model's (measured with benchmarks/bench_attacks.py: 23 % of the images left
        # unbroken instead of 0 %), so C&W always attacks `model` itself. Budgeted attacks
        # cross the boundary by a margin and kept their strength in bfloat16 (no higher
        # accuracies in that benchmark).
        copy = None if spec["attack"] == "cw" else attack_model
        spec = dict(spec, attack_policy=attack_policy if copy is not None else "as loaded")
        if spec["attack"] == "cw" and randomized:
            # Recorded (cards show it) and part of the cache key: the C&W of before
            # 2026-12-02 kept the smallest-L2 success of a lucky draw, weaker on noisy models.
            spec["selection"] = CW_SELECTION
        payload = {"spec": spec, "x": attack_data}
        return cache.get_or_compute(
            "attack", payload,
            lambda: attack_accuracy(model, spec, x_attack, y_attack, strategy=strategy,
                                    batch_size=batch_size, seed=seed, progress=progress,
                                    attack_model=copy, cache=cache, cache_payload=payload),
            label=spec["name"])

    randomized = bool(noise_layers(model))
    report = {"n_clean": n_clean, "n_examples": n_examples, "seed": seed,
              # How the noise was drawn, so a reader can tell reports of this scheme
              # (reproducible) from older ones (whatever the generators held).
              "noise_seeding": "reseeded per part from the seed and the part's key",
              "randomized": randomized, "suites": list(suites_to_run),
              "warnings": [], "attacks": [], "sweeps": {}, "diagnostics": []}

    def log(message):
        if progress:
            print(message, flush=True)

    log(f"Clean accuracy on {len(x)} images (ensembles {list(ensemble_sizes)})")
    report["clean"] = cache.get_or_compute(
        "clean", {"x": clean_data, "ensemble_sizes": [int(size) for size in ensemble_sizes]},
        lambda: clean_accuracy(model, x, y, ensemble_sizes, batch_size), label="clean")
    used_eot = set()
    measured = []  # (spec, suite) of the attacks run so far
    for suite in suites_to_run:
        # A deterministic model's draws are all the same: the attacks use one (see
        # `_eot.check_eot`), and the report records the number actually used.
        draws = (eot_samples or suites.DEFAULT_EOT.get(suite, 10)) if randomized else 1
        report["warnings"] += check_eot_setting(model, draws, force_no_eot)
        used_eot.add(draws)
        for spec in suites.suite_specs(suite, draws, cw_steps):
            # The same attack in two suites (PGD-10 at 8/255 with the same EOT is in quick
            # and rat_table2) is one row of the report, under the suite that ran it first.
            first_suite = next((name for earlier, name in measured if earlier == spec), None)
            if first_suite is not None:
                log(f"[{suite}] {spec['name']}: already measured in suite {first_suite}")
                continue
            measured.append((spec, suite))
            log(f"[{suite}] {spec['name']} (EOT {draws}) on {n_examples} images")
            entry = attack(spec)
            report["attacks"].append(dict(entry, suite=suite))
            log(f"    robust accuracy {entry['robust']['accuracy']:.3f}")
    for sweep in sweeps:
        draws = (eot_samples or 10) if randomized else 1
        label, values, specs = suites.sweep_specs(sweep, draws, cw_steps)
        if specs is None:
            accuracies = []
            for size in values:
                cache.prepare("ensemble-sweep", {"x": clean_data, "size": int(size)})
                accuracies.append(training.ensemble_accuracy(model, x, y, size, batch_size))
            n = len(x)
        else:
            if sweep != "eot":  # the EOT sweep includes k = 1 on purpose, as a reference
                report["warnings"] += check_eot_setting(model, draws, force_no_eot)
            accuracies = []
            for spec in specs:
                log(f"[sweep {sweep}] {spec['name']} (EOT {spec['eot_samples']})")
                accuracies.append(attack(spec)["robust"]["accuracy"])
            n = n_examples
        report["sweeps"][sweep] = {"x_label": label, "x": values, "accuracy": accuracies,
                                   "n": n, "settings": specs}
    if run_diagnostics:
        draws = max(used_eot or {(eot_samples or 10) if randomized else 1})
        count = min(n_diagnostic, len(x))
        log(f"Diagnostics on {count} images (EOT {draws})")
        report["diagnostics"] = diagnostics.run_all(
            model, x[:count], y[:count], eot_samples=draws, surrogate=surrogate, seed=seed,
            cache=cache)  # without a resume folder the cache only times the checks
        for check in report["diagnostics"]:
            log(f"    {check['status'].upper():7s} {check['name']}: {check['detail']}")
            if check["status"] == "fail":
                report["warnings"].append(f"DIAGNOSTIC FAILED: {check['name']}: "
                                          f"{check['detail']}")
    else:  # a report without its checks must say so: masking would go unnoticed
        report["warnings"].append("diagnostics not run (run_diagnostics=False, "
                                  "--nodiagnostics): noise, gradient masking and attack "
                                  "strength were not checked")
    report["resumed_parts"] = cache.resumed
    if cache.resumed:
        log(f"Read back from {resume_dir}: {', '.join(cache.resumed)}")
    report["wall_seconds"] = round(time.time() - started, 1)
    report["compute_seconds"] = round(cache.compute_seconds, 1)
    report["untimed_parts"] = cache.untimed
    return report

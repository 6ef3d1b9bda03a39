"""`evaluate(model, x, y, ...)`: clean and adversarial accuracy with intervals, sweeps, checks.

Every clean and robust accuracy in a report carries the number of examples
and a 95 % Wilson interval (sweeps give their number of examples); every
attack carries its full settings. A randomized model is never
reported under an attack without EOT unless ``force_no_eot=True``, and the
report then says so.
"""

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rse._validation import check_positive_int, invalid_argument
from keras_rse.eval import diagnostics, suites
from keras_rse.eval._run import EvaluationRun
from keras_rse.layers.noise_control import noise_layers


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
        model: A `SelfEnsemble` (wrap a plain Keras network mapping [0, 1]
            images to logits in one); attacked through single noisy passes
            with EOT, judged by its self-ensemble.
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
            bfloat16). ``"mixed_float16"`` is refused: its gradients underflow
            to zero on confidently classified images. The bfloat16 copy sees
            its input rounded to 2^-8 in [0.5, 1) (about 1/255), so at eps of
            1-2/255 its gradients come from a coarser grid than the steps;
            the float32 default has no such limit (not measured further).

    Returns:
        The report dict (see `keras_rse.eval.report`).
    """
    started = time.time()
    if not hasattr(model, "ensemble_probabilities"):
        # Clean accuracy at each ensemble size and the judging of every attack need it.
        raise invalid_argument(
            "model", "a keras_rse SelfEnsemble (wrap a plain network: "
            "keras_rse.models.SelfEnsemble(network, ensemble_size=k), k = 1 without noise)",
            type(model).__name__)
    n_clean = len(x) if n_clean is None else check_positive_int("n_clean", n_clean)
    for name, value in (("n_examples", check_positive_int("n_examples", n_examples)),
                        ("n_clean", n_clean)):
        if value > len(x):
            raise invalid_argument(name, f"an integer <= {len(x)} (the images given)", value)
    for suite in suites_to_run:  # unknown names fail now, not after hours of attacks
        suites.suite_specs(suite, eot_samples=1)
    for sweep in sweeps:
        suites.sweep_specs(sweep, eot_samples=1)
    run = EvaluationRun(model, (x[:n_clean], y[:n_clean]), (x[:n_examples], y[:n_examples]),
                        surrogate=surrogate, strategy=strategy, batch_size=batch_size,
                        seed=seed, progress=progress, resume_dir=resume_dir,
                        attack_policy=attack_policy)
    report = {"n_clean": n_clean, "n_examples": n_examples, "seed": seed,
              # How the noise was drawn, so a reader can tell reports of this scheme
              # (reproducible) from older ones (whatever the generators held).
              "noise_seeding": "reseeded per part from the seed and the part's key",
              "randomized": run.randomized, "suites": list(suites_to_run),
              "warnings": [], "attacks": [], "sweeps": {}, "diagnostics": []}
    run.log(f"Clean accuracy on {n_clean} images (ensembles {list(ensemble_sizes)})")
    report["clean"] = run.clean(ensemble_sizes)
    used_eot = _run_suites(run, report, suites_to_run, eot_samples, cw_steps, force_no_eot)
    for sweep in sweeps:
        _run_sweep(run, report, sweep, eot_samples, cw_steps, force_no_eot)
    if run_diagnostics:
        draws = max(used_eot or {(eot_samples or 10) if run.randomized else 1})
        _run_diagnostics(run, report, min(n_diagnostic, n_clean), draws)
    else:  # a report without its checks must say so: masking would go unnoticed
        report["warnings"].append("diagnostics not run (run_diagnostics=False, "
                                  "--nodiagnostics): noise, gradient masking and attack "
                                  "strength were not checked")
    # Each suite and sweep checks the EOT setting: say a forced EOT of 1 once.
    report["warnings"] = list(dict.fromkeys(report["warnings"]))
    report["resumed_parts"] = run.cache.resumed
    if run.cache.resumed:
        run.log(f"Read back from {resume_dir}: {', '.join(run.cache.resumed)}")
    report["wall_seconds"] = round(time.time() - started, 1)
    report["compute_seconds"] = round(run.cache.compute_seconds, 1)
    report["untimed_parts"] = run.cache.untimed
    return report


def _run_suites(run, report, suites_to_run, eot_samples, cw_steps, force_no_eot):
    """Adds each suite's attacks to ``report["attacks"]``; returns the EOT draws used."""
    used_eot = set()
    measured = []  # (spec, suite) of the attacks run so far
    for suite in suites_to_run:
        # A deterministic model's draws are all the same: the attacks use one (see
        # `_eot.check_eot`), and the report records the number actually used.
        draws = (eot_samples or suites.DEFAULT_EOT.get(suite, 10)) if run.randomized else 1
        report["warnings"] += check_eot_setting(run.model, draws, force_no_eot)
        used_eot.add(draws)
        for spec in suites.suite_specs(suite, draws, cw_steps):
            # The same attack in two suites (PGD-10 at 8/255 with the same EOT is in quick
            # and rat_table2) is one row of the report, under the suite that ran it first.
            first_suite = next((name for earlier, name in measured if earlier == spec), None)
            if first_suite is not None:
                run.log(f"[{suite}] {spec['name']}: already measured in suite {first_suite}")
                continue
            measured.append((spec, suite))
            run.log(f"[{suite}] {spec['name']} (EOT {draws}) on {len(run.x_attack)} images")
            entry = run.attack(spec)
            report["attacks"].append(dict(entry, suite=suite))
            run.log(f"    robust accuracy {entry['robust']['accuracy']:.3f}")
    return used_eot


def _run_sweep(run, report, sweep, eot_samples, cw_steps, force_no_eot):
    """Adds one sweep (accuracy against eps, c, EOT draws or ensemble size) to ``report``."""
    draws = (eot_samples or 10) if run.randomized else 1
    label, values, specs = suites.sweep_specs(sweep, draws, cw_steps)
    if specs is None:  # the ensemble sweep: clean accuracy per ensemble size
        accuracies = [run.ensemble_accuracy(size) for size in values]
        n = len(run.x)
    else:
        if sweep != "eot":  # the EOT sweep includes k = 1 on purpose, as a reference
            report["warnings"] += check_eot_setting(run.model, draws, force_no_eot)
        accuracies = []
        for spec in specs:
            run.log(f"[sweep {sweep}] {spec['name']} (EOT {spec['eot_samples']})")
            accuracies.append(run.attack(spec)["robust"]["accuracy"])
        n = len(run.x_attack)
    report["sweeps"][sweep] = {"x_label": label, "x": values, "accuracy": accuracies,
                               "n": n, "settings": specs}


def _run_diagnostics(run, report, count, draws):
    """Runs the sanity checks on the first ``count`` clean images; failures become warnings."""
    run.log(f"Diagnostics on {count} images (EOT {draws})")
    report["diagnostics"] = diagnostics.run_all(
        run.model, run.x[:count], run.y[:count], eot_samples=draws, surrogate=run.surrogate,
        seed=run.seed, cache=run.cache)
    for check in report["diagnostics"]:
        run.log(f"    {check['status'].upper():7s} {check['name']}: {check['detail']}")
        if check["status"] == "fail":
            report["warnings"].append(f"DIAGNOSTIC FAILED: {check['name']}: "
                                      f"{check['detail']}")

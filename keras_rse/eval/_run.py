"""One evaluation's shared state: the models, the resume cache and how every part is seeded."""

import contextlib

import keras
import numpy as np
import tensorflow as tf

from keras_rse import training
from keras_rse._validation import invalid_argument
from keras_rse.attacks.carlini_wagner import CONFIRMING_VERDICTS
from keras_rse.eval import _resume
from keras_rse.eval._measure import attack_accuracy, clean_accuracy
from keras_rse.layers.noise_control import noise_layers, reseed_random_generators

# Precisions the attacks' gradient copy may compute in. Not mixed_float16: its backward pass
# underflows (tests/test_precision.py: a logit margin of 47 gives a gradient of exactly 0;
# dCE/dlogit ~ exp(-margin) drops below float16's 6e-8 from a margin of about 17), so
# sign(0) freezes FGSM/PGD/APGD on the most confident, "robust-looking" images.
ATTACK_POLICIES = (None, "mixed_bfloat16")

# How C&W searches and picks its result on a randomized model (see
# `attacks.carlini_wagner_l2`); recorded with each C&W row and part of its cache key.
CW_SELECTION = (f"c lowered when {CONFIRMING_VERDICTS} verdicts of new draws are fooled; "
                f"the result most clearly fooled by new draws")
# Which examples a worst-of row's later attacks run on (see `suites._attack_survivors`).
WORST_OF_SURVIVORS = "those the defended model's self-ensemble still classifies correctly"


class EvaluationRun:
    """Computes (or reads back) the parts of one evaluation of ``model``.

    Every part (clean accuracy, each attack and attack batch, each check, each
    ensemble size of the sweep) has a key; the key names its file in the resume
    folder and seeds the model's noise before the part is computed, so the
    same evaluation gives the same numbers, resumed or not.

    Args:
        model: The defended model; every accuracy is judged on it.
        clean_images: ``(x, y)`` giving the clean accuracies.
        attacked_images: ``(x, y)`` the attacks run on.
        surrogate: Source model of the transfer check, or None.
        strategy: A `tf.distribute.Strategy` for the attacks, or None.
        batch_size: Global attack batch size.
        seed: Seed of the attacks' random starts and of every part's noise.
        progress: Progress bars and one line per step.
        resume_dir: Folder for finished parts, or None.
        attack_policy: None or a Keras dtype policy for the attacks' copy of
            ``model`` (see `keras_rse.eval.evaluate`).
    """

    def __init__(self, model: keras.Model, clean_images: tuple[np.ndarray, np.ndarray],
                 attacked_images: tuple[np.ndarray, np.ndarray], *,
                 surrogate: keras.Model | None, strategy: tf.distribute.Strategy | None,
                 batch_size: int, seed: int, progress: bool, resume_dir: str | None,
                 attack_policy: str | None):
        self.model, self.surrogate, self.strategy = model, surrogate, strategy
        self.x, self.y = clean_images
        self.x_attack, self.y_attack = attacked_images
        self.batch_size, self.seed, self.progress = batch_size, seed, progress
        self.attack_policy = attack_policy
        self.randomized = bool(noise_layers(model))
        self.attack_model = None
        if attack_policy not in ATTACK_POLICIES:
            raise invalid_argument("attack_policy", f"one of {ATTACK_POLICIES} (float16 "
                                   f"gradients underflow to 0 on confidently classified "
                                   f"images without loss scaling, freezing the attack)",
                                   attack_policy)
        if attack_policy is not None:
            from keras_rse.models import with_dtype_policy

            with strategy.scope() if strategy is not None else contextlib.nullcontext():
                self.attack_model = with_dtype_policy(model, attack_policy)
        self._replicas_strategy = strategy or tf.distribute.get_strategy()  # run_attack's
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
        # Without a resume folder the cache only seeds and times the parts.
        self.cache = _resume.ResumeCache(resume_dir, context, before_compute=self._reseed)
        self._attacked_digest = _resume.array_digest(self.x_attack, self.y_attack)
        self._clean_digest = _resume.array_digest(self.x, self.y)

    def _reseed(self, key):
        reseed_random_generators(self.model, f"{self.seed}/{key}", self._replicas_strategy)
        # Own streams: an attack must not know the draws that judge it.
        for other, name in ((self.attack_model, "attack copy"), (self.surrogate, "surrogate")):
            if other is not None:
                reseed_random_generators(other, f"{self.seed}/{key}/{name}",
                                         self._replicas_strategy)

    def log(self, message: str) -> None:
        """Prints ``message`` when progress output is on."""
        if self.progress:
            print(message, flush=True)

    def clean(self, ensemble_sizes: list[int]) -> dict:
        """Single-pass and ensemble clean accuracies (see `clean_accuracy`)."""
        sizes = [int(size) for size in ensemble_sizes]
        return self.cache.get_or_compute(
            "clean", {"x": self._clean_digest, "ensemble_sizes": sizes},
            lambda: clean_accuracy(self.model, self.x, self.y, sizes, self.batch_size),
            label="clean")

    def ensemble_accuracy(self, size: int) -> float:
        """Clean accuracy of the ensemble of ``size`` draws (the ensemble sweep; not kept)."""
        self.cache.prepare("ensemble-sweep", {"x": self._clean_digest, "size": int(size)})
        return training.ensemble_accuracy(self.model, self.x, self.y, size, self.batch_size)

    def attack(self, spec: dict) -> dict:
        """The report entry of one attack spec (see `attack_accuracy`)."""
        # C&W stops at the smallest perturbation (on a deterministic model), on the decision
        # boundary of the model it attacks; a bfloat16 copy's boundary is not the float32
        # model's (measured with benchmarks/bench_attacks.py: 23 % of the images left
        # unbroken instead of 0 %), so C&W always attacks `model` itself. Budgeted attacks
        # cross the boundary by a margin and kept their strength in bfloat16 (no higher
        # accuracies in that benchmark).
        copy = None if spec["attack"] == "cw" else self.attack_model
        spec = dict(spec, attack_policy=self.attack_policy if copy is not None else "as loaded")
        if spec["attack"] == "cw" and self.randomized:
            # Recorded (cards show it) and part of the cache key: the C&W of before
            # 2026-12-02 kept the smallest-L2 success of a lucky draw, weaker on noisy models
            # (its rows have no "selection"); from that fix until later that day the binary
            # search lowered c on one verdict (no row was published with it).
            spec["selection"] = CW_SELECTION
        if spec["attack"] == "worst_of":
            # Recorded and part of the cache key, as above: before 2026-12-02 a later attack
            # ran where the earlier one's own verdict had failed (its EOT draws, or the
            # bfloat16 copy's) and its point always replaced the earlier one.
            spec["survivors"] = WORST_OF_SURVIVORS
        payload = {"spec": spec, "x": self._attacked_digest}
        return self.cache.get_or_compute(
            "attack", payload,
            lambda: attack_accuracy(
                self.model, spec, self.x_attack, self.y_attack, strategy=self.strategy,
                batch_size=self.batch_size, seed=self.seed, progress=self.progress,
                attack_model=copy, cache=self.cache, cache_payload=payload),
            label=spec["name"])

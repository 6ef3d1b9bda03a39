"""Defenses as `keras.Model` subclasses with a defense-specific `train_step`.

``DEFENSES`` maps the names used by ``train/fit.py --defense`` to a class and
the keyword arguments that make the paper's setting.
"""

from typing import Any

from keras_rse.defenses.adversarial import (AdversarialTraining, FGSMRetraining,
                                            RandomizedAdversarialTraining)
from keras_rse.defenses.augmentation import Distillation, GaussianAugmentation
from keras_rse.defenses.base import Defense

# name -> (class, keyword arguments of the paper setting, noise expected in the network)
DEFENSES = {
    "none": (Defense, {}, False),
    "rse": (Defense, {}, True),
    "at": (AdversarialTraining, {}, False),
    "rat": (RandomizedAdversarialTraining, {}, True),
    "lerat": (RandomizedAdversarialTraining, {"learned_noise": True}, True),
    "fgsm_retrain": (FGSMRetraining, {}, False),
    "distill": (Distillation, {}, False),
    "brelu": (GaussianAugmentation, {}, False),
}

# Defenses whose network follows RAT: noise on the stem conv's output, [-1, 1] inputs.
RAT_NOISE = {"rat", "lerat"}


def network_kwargs(defense: str, *, init_noise: float | None = None,
                   inner_noise: float | None = None, **extra: Any) -> dict[str, Any]:
    """Builder arguments that give ``defense`` its network (noise, activation).

    The one place that says which network a defense trains, shared by
    ``train/fit.py`` and the zoo presets so the two cannot drift apart.

    Args:
        defense: A name from ``DEFENSES``.
        init_noise: Override of the first noise level (None: the defense's).
        inner_noise: Override of the inner noise level (None: the defense's).
        **extra: Further builder arguments (``seed``, ``ensemble_size``).

    Returns:
        A dict of keyword arguments for `keras_rse.models.create_model`.
    """
    if defense not in DEFENSES:
        raise ValueError(f"Invalid value for argument `defense`. Expected one of "
                         f"{sorted(DEFENSES)}. Received: defense={defense!r}")
    kwargs = dict(extra)
    if defense in RAT_NOISE:
        # RAT: N(0, 1) on the first layer's activation, inputs scaled to [-1, 1].
        kwargs.update(noise_placement="rat", init_noise=1.0, inner_noise=0.0,
                      normalization="symmetric")
        if defense == "lerat":
            kwargs["noise_type"] = "learned"
    elif not DEFENSES[defense][2]:
        kwargs.update(init_noise=0.0, inner_noise=0.0)
    if defense == "brelu":
        kwargs["activation"] = "brelu"
    if init_noise is not None:
        kwargs["init_noise"] = init_noise
    if inner_noise is not None:
        kwargs["inner_noise"] = inner_noise
    return kwargs

__all__ = ["DEFENSES", "RAT_NOISE", "network_kwargs", "AdversarialTraining", "Defense", "Distillation", "FGSMRetraining",
           "GaussianAugmentation", "RandomizedAdversarialTraining"]

"""Defenses as `keras.Model` subclasses with a defense-specific `train_step`.

``DEFENSES`` maps the names used by ``train/fit.py --defense`` to a class and
the keyword arguments that make the paper's setting.
"""

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

__all__ = ["DEFENSES", "AdversarialTraining", "Defense", "Distillation", "FGSMRetraining",
           "GaussianAugmentation", "RandomizedAdversarialTraining"]

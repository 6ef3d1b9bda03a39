"""Attacks that know the randomness: FGM/FGSM, PGD, APGD and C&W-L2, with one EOT mechanism.

Every attack takes a model (or ``x -> logits`` callable), images ``x`` in
[0, 1] and labels ``y`` (required), keyword-only settings, and returns an
`AttackResult` whose ``x_adv`` is inside [0, 1] (and the eps-ball).
"""

from keras_rse.attacks._eot import ESTIMATORS
from keras_rse.attacks._utils import AttackResult, project
from keras_rse.attacks.apgd import apgd, dlr_loss, make_apgd
from keras_rse.attacks.carlini_wagner import carlini_wagner_l2, make_carlini_wagner_l2
from keras_rse.attacks.gradient import fgm, fgsm, make_pgd, pgd

__all__ = [
    "ESTIMATORS", "AttackResult", "apgd", "carlini_wagner_l2", "dlr_loss", "fgm", "fgsm",
    "make_apgd", "make_carlini_wagner_l2", "make_pgd", "pgd", "project",
]

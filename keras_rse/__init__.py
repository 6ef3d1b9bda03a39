"""keras_rse: randomized defenses against adversarial examples, for Keras 3 / TensorFlow.

Subpackages:
    layers: always-on noise layers (RSE, Bernoulli-Gaussian, learned LeRAT noise), BReLU.
    models: noisy VGG16 / ResNeXt-29 / WideResNet / Model A builders, `randomize`,
        the registry and `SelfEnsemble` (one noisy member per call, the ensemble in predict).
    attacks: FGM/FGSM, PGD and C&W-L2 as compiled loops with one EOT mechanism.
"""

__version__ = "0.1.0"

from keras_rse import attacks, layers, models  # noqa: E402

__all__ = ["__version__", "attacks", "layers", "models"]

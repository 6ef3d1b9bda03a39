"""keras_rse: randomized defenses against adversarial examples, for Keras 3 / TensorFlow.

Subpackages:
    layers: always-on noise layers (RSE, Bernoulli-Gaussian, learned LeRAT noise), BReLU.
    models: noisy VGG16 / ResNeXt-29 / WideResNet / Model A builders, `randomize`,
        the registry and `SelfEnsemble` (one noisy member per call, the ensemble in predict).
    attacks: FGM/FGSM, PGD, APGD and C&W-L2 as compiled loops with one EOT mechanism.
    defenses: the training algorithms (noisy SGD, adversarial training, RAT, LeRAT, baselines).
    data: CIFAR-10 / STL-10 from a local directory or tfds, and the training pipeline.
    distribute: strategies and distributed attack / prediction loops.
    eval: evaluation suites, diagnostics and reports.
    zoo: the pretrained presets: `keras_rse.zoo.load("cifar10_vgg16_rse")`.
"""

__version__ = "0.1.0"

# Every subpackage is imported here, so that `import keras_rse` alone gives
# `keras_rse.zoo.load(...)` and `keras_rse.data.load_split(...)` (README's quick start).
from keras_rse import (attacks, data, defenses, distribute, eval, layers,  # noqa: E402
                       models, zoo)

# `eval` is left out of __all__: `from keras_rse import *` would shadow the builtin.
__all__ = ["__version__", "attacks", "data", "defenses", "distribute", "layers", "models", "zoo"]

"""Model builders (noise before every conv), the registry and `SelfEnsemble`."""

from keras_rse.models._registry import create_model, list_models, register_model
from keras_rse.models.model_a import model_a
from keras_rse.models.precision import with_dtype_policy
from keras_rse.models.randomize import randomize
from keras_rse.models.resnext import resnext29
from keras_rse.models.self_ensemble import SelfEnsemble
from keras_rse.models.vgg import vgg16
from keras_rse.models.wide_resnet import wide_resnet

__all__ = [
    "SelfEnsemble",
    "create_model",
    "list_models",
    "model_a",
    "randomize",
    "register_model",
    "resnext29",
    "vgg16",
    "wide_resnet",
    "with_dtype_policy",
]

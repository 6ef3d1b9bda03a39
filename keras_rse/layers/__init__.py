"""Noise layers (always active) and the BReLU activation."""

from keras_rse.layers.bernoulli_gaussian_noise import BernoulliGaussianNoise
from keras_rse.layers.brelu import BReLU
from keras_rse.layers.learned_noise import LearnedNoise
from keras_rse.layers.noise_control import (
    NOISE_LAYER_TYPES,
    get_noise_scales,
    give_replicas_their_own_streams,
    noise_layers,
    noise_scale,
    random_generator_states,
    reseed_random_generators,
    set_noise_scale,
)
from keras_rse.layers.random_noise import RandomNoise

__all__ = [
    "BReLU",
    "BernoulliGaussianNoise",
    "LearnedNoise",
    "NOISE_LAYER_TYPES",
    "RandomNoise",
    "get_noise_scales",
    "give_replicas_their_own_streams",
    "noise_layers",
    "noise_scale",
    "random_generator_states",
    "reseed_random_generators",
    "set_noise_scale",
]

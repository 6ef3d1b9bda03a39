"""Adversarial training (Madry PGD), RAT / LeRAT and FGSM adversarial retraining."""

import keras
import tensorflow as tf

from keras_rse._validation import check_choice, check_non_negative_float, check_positive_int
from keras_rse.attacks import make_pgd
from keras_rse.attacks._utils import NORMS, check_eps
from keras_rse.defenses.base import Defense
from keras_rse.layers import LearnedNoise, noise_layers


class AdversarialTraining(Defense):
    """Trains on PGD adversarial examples crafted against the current network.

    The adversarial examples come from `keras_rse.attacks.make_pgd` (the one
    source of adversarial examples), with batch norm in inference mode while
    attacking. Against a randomized network the attack faces the noise, one
    draw per step (RAT, Algorithm 1: no EOT during training).

    Defaults are Madry et al.'s CIFAR setting in pixel units: Linf 8/255,
    7 steps of 2/255, random start.

    Args:
        network: The functional network.
        eps: Budget in [0, 1] pixel units.
        step_size: PGD step (default 2/255, Madry's; None: ``2.5 * eps / steps``,
            which a changed ``eps`` or ``steps`` calls for).
        steps: PGD iterations.
        norm: ``"linf"`` or ``"l2"``.
        random_init: Start from a random point of the ball.
        **kwargs: `Defense` arguments.
    """

    trains_on_given_images = False  # adversarial ones

    def __init__(self, network, eps=8 / 255, step_size=2 / 255, steps=7, norm="linf",
                 random_init=True, **kwargs):
        super().__init__(network, **kwargs)
        self.eps = check_eps("eps", eps)
        self.steps = check_positive_int("steps", steps)
        self.step_size = (2.5 * self.eps / self.steps if step_size is None
                          else check_eps("step_size", step_size))
        self.norm = check_choice("norm", norm, NORMS)
        self.random_init = bool(random_init)

    def _pgd(self):
        return make_pgd(self.network, norm=self.norm, steps=self.steps,
                        random_init=self.random_init)

    def adversarial(self, x, y, eps=None, step_size=None):
        """PGD examples for ``(x, y)`` against the current network."""
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        eps = tf.constant(self.eps) if eps is None else eps
        step = tf.constant(self.step_size) if step_size is None else step_size
        x_adv, _ = self._pgd()(tf.cast(x, tf.float32), tf.cast(y, tf.int32), eps, step, seed)
        return tf.stop_gradient(x_adv)

    def training_batch(self, x, y):
        return self.adversarial(x, y), y

    def get_config(self):
        config = super().get_config()
        config.update({"eps": self.eps, "step_size": self.step_size, "steps": self.steps,
                       "norm": self.norm, "random_init": self.random_init})
        return config


class RandomizedAdversarialTraining(AdversarialTraining):
    """RAT (Araujo et al., Algorithm 1): adversarial training of a randomized network.

    Paper setting: PGD, 1 iteration, eps 0.03 and step 0.02 on [-1, 1] inputs,
    that is eps 0.015 and step 0.01 in [0, 1] pixel units (the defaults). With
    ``learned_noise=True`` this is LeRAT: the network must contain
    `LearnedNoise` layers, whose scales the adversarial loss trains.

    Raises:
        ValueError: if the network has no noise layer (RAT needs one), or no
            learned one with ``learned_noise=True``.
    """

    def __init__(self, network, eps=0.015, step_size=0.01, steps=1, learned_noise=False,
                 **kwargs):
        super().__init__(network, eps=eps, step_size=step_size, steps=steps, **kwargs)
        layers = noise_layers(network)
        self.learned_noise = bool(learned_noise)
        if not layers:
            raise ValueError("Invalid value for argument `network`. Expected a randomized "
                             "network (with noise layers) for RAT. Received: a network "
                             "without noise layers")
        if self.learned_noise and not any(isinstance(l, LearnedNoise) for l in layers):
            raise ValueError("Invalid value for argument `network`. Expected LearnedNoise "
                             "layers for LeRAT (build with noise_type='learned'). Received: "
                             "a network with fixed noise only")

    def get_config(self):
        config = super().get_config()
        config["learned_noise"] = self.learned_noise
        return config


class FGSMRetraining(AdversarialTraining):
    """FGSM adversarial retraining, as the RSE paper's baseline ("Adv. retraining").

    After ordinary pre-training, each batch is replaced with probability
    ``adversarial_probability`` by its FGSM examples with
    ``eps ~ U(eps_min, eps_max)`` (RSE Table 1: U(0.1, 0.3)).
    """

    def __init__(self, network, eps_min=0.1, eps_max=0.3, adversarial_probability=0.5,
                 **kwargs):
        kwargs.update(steps=1, random_init=False, norm="linf")
        super().__init__(network, eps=eps_max, step_size=eps_max, **kwargs)
        self.eps_min = check_eps("eps_min", eps_min)
        self.eps_max = check_eps("eps_max", eps_max)
        self.adversarial_probability = check_non_negative_float(
            "adversarial_probability", adversarial_probability)

    def training_batch(self, x, y):
        eps = keras.random.uniform((), self.eps_min, self.eps_max, seed=self.seed_generator)
        use_adversarial = keras.random.uniform((), seed=self.seed_generator) < (
            self.adversarial_probability)
        x = tf.cast(x, tf.float32)
        x = tf.cond(use_adversarial, lambda: self.adversarial(x, y, eps, eps), lambda: x)
        return x, y

    def get_config(self):
        config = super().get_config()
        for key in ("eps", "step_size", "steps", "norm", "random_init"):
            config.pop(key)
        config.update({"eps_min": self.eps_min, "eps_max": self.eps_max,
                       "adversarial_probability": self.adversarial_probability})
        return config

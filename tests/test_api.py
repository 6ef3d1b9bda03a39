"""The public functions carry type hints that resolve (design: hints on public signatures)."""

import inspect
import typing

import pytest

import keras_rse
from keras_rse import attacks, data, distribute, eval as rse_eval, layers, models, zoo

PUBLIC_FUNCTIONS = [
    attacks.fgm, attacks.fgsm, attacks.pgd, attacks.apgd, attacks.carlini_wagner_l2,
    attacks.make_pgd, attacks.make_apgd, attacks.make_carlini_wagner_l2,
    zoo.list, zoo.get_preset, zoo.build, zoo.weights_path, zoo.load, zoo.load_weights,
    zoo.export_weights,
    data.load_split, data.describe_split, data.train_validation_split,
    models.create_model, models.list_models, models.randomize,
    layers.noise_layers, layers.set_noise_scale, layers.noise_scale,
    layers.reseed_random_generators,
    distribute.get_strategy, distribute.run_attack, rse_eval.evaluate,
]


@pytest.mark.parametrize("function", PUBLIC_FUNCTIONS,
                         ids=lambda f: f"{f.__module__}.{f.__qualname__}")
def test_public_function_is_fully_annotated(function):
    hints = typing.get_type_hints(function)  # raises if an annotation names nothing
    parameters = inspect.signature(function).parameters
    missing = [name for name in parameters if name not in hints]
    assert not missing, f"{function.__qualname__}: no type hint for {missing}"
    assert "return" in hints, f"{function.__qualname__}: no return type"


def test_the_package_exports_what_its_docstring_lists():
    for name in keras_rse.__all__:
        assert hasattr(keras_rse, name), name

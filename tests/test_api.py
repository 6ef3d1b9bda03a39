"""The public functions carry type hints that resolve (design: hints on public signatures)."""

import inspect
import typing

import pytest

from keras_rse import attacks, data, defenses, distribute, eval as rse_eval, layers, models, zoo

SUBPACKAGES = [attacks, data, defenses, distribute, rse_eval, layers, models, zoo]
# Every function a subpackage exports in __all__ (classes are checked by their own tests).
PUBLIC_FUNCTIONS = [getattr(package, name) for package in SUBPACKAGES for name in package.__all__
                    if inspect.isfunction(getattr(package, name))]


def test_every_subpackage_declares_its_public_names():
    for package in SUBPACKAGES:
        assert all(hasattr(package, name) for name in package.__all__), package.__name__
    assert len(PUBLIC_FUNCTIONS) > 40  # the list is built, not empty


@pytest.mark.parametrize("function", PUBLIC_FUNCTIONS,
                         ids=lambda f: f"{f.__module__}.{f.__qualname__}")
def test_public_function_is_fully_annotated(function):
    hints = typing.get_type_hints(function)  # raises if an annotation names nothing
    parameters = inspect.signature(function).parameters
    missing = [name for name in parameters if name not in hints]
    assert not missing, f"{function.__qualname__}: no type hint for {missing}"
    assert "return" in hints, f"{function.__qualname__}: no return type"

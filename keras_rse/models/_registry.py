"""Name -> builder registry in the timm style (`register_model`, `create_model`)."""

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any

from keras_rse._validation import invalid_argument
from keras_rse.models.self_ensemble import SelfEnsemble

_BUILDERS = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Decorator registering a builder under ``name``.

    Args:
        name: The registry name (lower case, no spaces).

    Returns:
        The decorator, which returns the builder unchanged.
    """

    def decorator(builder):
        if name in _BUILDERS:
            raise ValueError(f"A model named {name!r} is already registered.")
        _BUILDERS[name] = builder
        return builder

    return decorator


def list_models(pattern: str = "*") -> list[str]:
    """Returns the sorted names of registered models matching ``pattern``.

    Args:
        pattern: A shell-style pattern, such as ``"wide_resnet*"``.
    """
    return sorted(name for name in _BUILDERS if fnmatch.fnmatchcase(name, pattern))


def create_model(name: str, **kwargs: Any) -> SelfEnsemble:
    """Builds the registered model ``name`` with keyword overrides.

    Args:
        name: A name from `list_models()`.
        **kwargs: Passed to the builder (``num_classes``, ``init_noise``, ...).

    Returns:
        A `keras_rse.models.SelfEnsemble`.

    Raises:
        ValueError: if ``name`` is not registered; the message lists the
            closest registered names.
    """
    if name not in _BUILDERS:
        close = difflib.get_close_matches(str(name), list(_BUILDERS), n=3, cutoff=0.5)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise invalid_argument(
            "name", f"a registered model name{hint}; see keras_rse.models.list_models()", name
        )
    return _BUILDERS[name](**kwargs)

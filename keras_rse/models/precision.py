"""A copy of a model that computes in another precision (bfloat16 attacks on AMX CPUs)."""

import keras

from keras_rse._validation import check_choice, invalid_argument
from keras_rse.models.self_ensemble import SelfEnsemble

POLICIES = {"float32", "mixed_bfloat16", "mixed_float16"}


def with_dtype_policy(model: keras.Model, policy: str = "mixed_bfloat16") -> keras.Model:
    """A copy of ``model`` whose layers compute under ``policy``, with the same weights.

    Attacks spend nearly all their time in the model's forward and backward
    passes; on CPUs with AMX (and on GPUs) ``mixed_bfloat16`` makes those
    passes much cheaper. Attack the copy and judge the result on the
    original: the perturbation is found with bfloat16 gradients but every
    reported accuracy comes from the float32 model. Speed and strength are
    compared in the ``keras_rse_bf16`` rows of ``benchmarks/bench_attacks.py``.
    Variables stay float32 (Keras mixed precision), so the copy holds the
    original's weights exactly; noise layers keep their stddev.

    Args:
        model: A `SelfEnsemble` or a functional / Sequential ``keras.Model``
            mapping images to logits.
        policy: ``"mixed_bfloat16"`` (default), ``"mixed_float16"`` or
            ``"float32"``.

    Returns:
        A model of the same kind (a `SelfEnsemble` keeps its ensemble size)
        sharing no state with ``model``.
    """
    check_choice("policy", policy, POLICIES)
    network = model.network if isinstance(model, SelfEnsemble) else model
    if not isinstance(network, keras.Model) or isinstance(network, SelfEnsemble):
        raise invalid_argument("model", "a SelfEnsemble or a functional/Sequential keras.Model",
                               model)

    def clone_layer(layer):
        config = dict(layer.get_config(), dtype=policy)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(network, clone_function=clone_layer, recursive=True)
    copy.set_weights(network.get_weights())
    if isinstance(model, SelfEnsemble):
        return SelfEnsemble(copy, ensemble_size=model.ensemble_size,
                            max_rows_per_pass=model.max_rows_per_pass,
                            name=f"{model.name}_{policy}")
    return copy

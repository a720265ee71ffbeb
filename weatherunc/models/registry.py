"""Models registered by name; every one has ``predict(task) -> xr.Dataset``.

Follows ``pysteps.nowcasts.interface.get_method``: a dict and a lookup that lists valid names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from weatherunc.models.baselines import (
    ClimatologyInterpolator,
    InverseDistanceInterpolator,
    OrdinaryKrigingInterpolator,
)
from weatherunc.models.gp import GaussianProcessInterpolator
from weatherunc.models.interface import Interpolator

#: Trained neural-process checkpoints shipped with the package (see docs/methods/neural_processes.md).
PACKAGED_MODELS_DIR = Path(__file__).resolve().parent.parent / "data" / "models"


def packaged_checkpoint(name: str) -> Path:
    """Path of a shipped checkpoint (``anp``, ``cnp`` or ``convnp``)."""
    return PACKAGED_MODELS_DIR / f"{name}.safetensors"


def _neural_process(kind: str) -> Callable[..., Interpolator]:
    def factory(
        checkpoint: str | Path | None = None, *, stochastic_attention_samples: int = 1, **options: Any
    ) -> Interpolator:
        from weatherunc.models.neural_process.interpolator import (
            NeuralProcessInterpolator,
            attention_members,
        )

        options.setdefault("name", kind)
        base = NeuralProcessInterpolator.from_checkpoint(
            Path(checkpoint) if checkpoint else packaged_checkpoint(kind), **options
        )
        if stochastic_attention_samples == 1:
            return base
        from weatherunc.models.ensemble import EnsembleInterpolator

        return EnsembleInterpolator(attention_members(base, stochastic_attention_samples), name=base.name)

    factory.__doc__ = (
        f"The {kind.upper()}: the shipped checkpoint, or ``checkpoint=PATH``; for a checkpoint with "
        "stochastic attention, ``stochastic_attention_samples=N`` (N >= 2) predicts with N attention "
        "draws as an ensemble (:func:`~weatherunc.models.neural_process.interpolator.attention_members`)."
    )
    return factory


def _convolutional_neural_process(
    checkpoint: str | Path | None = None,
    *,
    swag: str | Path | None = None,
    weight_samples: int = 10,
    **options: Any,
) -> Interpolator:
    """The convolutional neural process: the shipped checkpoint, or ``checkpoint=PATH``; with
    ``swag=PATH`` (moments collected by ``weatherunc swag``), an ensemble of ``weight_samples``
    weight samples (:mod:`weatherunc.models.swag`)."""
    from weatherunc.models.convnp.interpolator import ConvNPInterpolator

    base = ConvNPInterpolator.from_checkpoint(
        Path(checkpoint) if checkpoint else packaged_checkpoint("convnp"), **options
    )
    if swag is None:
        return base
    from weatherunc.models.ensemble import EnsembleInterpolator
    from weatherunc.models.swag import load_swag, swag_members

    moments, _ = load_swag(Path(swag))
    return EnsembleInterpolator(swag_members(base, moments, weight_samples), name=f"{base.name}+swag")


#: Suffix of a model name that asks for its self-calibrated form.
SELF_CALIBRATED = "+self"

MODELS: dict[str, Callable[..., Interpolator]] = {
    "gp": GaussianProcessInterpolator,
    "kriging": OrdinaryKrigingInterpolator,
    "idw": InverseDistanceInterpolator,
    "climatology": ClimatologyInterpolator,
    "anp": _neural_process("anp"),
    "cnp": _neural_process("cnp"),
    "convnp": _convolutional_neural_process,
}


def get_model(model: str, /, **options: Any) -> Interpolator:
    """A model instance by registered name; ``ValueError`` lists the valid names.

    ``options`` go to the model's constructor, including its own ``name`` (the label in outputs).
    ``NAME+self`` is the model wrapped in :class:`~weatherunc.heads.self_calibration.SelfCalibrated`.
    """
    if model.endswith(SELF_CALIBRATED) and model[: -len(SELF_CALIBRATED)] in MODELS:
        from weatherunc.heads.self_calibration import SelfCalibrated

        return SelfCalibrated(get_model(model[: -len(SELF_CALIBRATED)], **options))
    if model not in MODELS:
        raise ValueError(
            f"unknown model {model!r}; valid models: {', '.join(sorted(MODELS))} (each also as "
            f"NAME{SELF_CALIBRATED}, self-calibrated)"
        )
    return MODELS[model](**options)

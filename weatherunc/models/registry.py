"""Models registered by name; every one has ``predict(task) -> xr.Dataset``.

Follows ``pysteps.nowcasts.interface.get_method``: a dict and a lookup that lists valid names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def deep_ensemble(
    load: Callable[..., Interpolator],
    members: Sequence[str | Path],
    checkpoint: str | Path | None,
    name: str,
    options: dict[str, Any],
) -> Interpolator:
    """An :class:`~weatherunc.models.ensemble.EnsembleInterpolator` of the checkpoints ``members``
    (each loaded by ``load(path, **options)``), named ``name``; ``checkpoint`` must then be unset."""
    from weatherunc.models.ensemble import EnsembleInterpolator

    if checkpoint is not None:
        raise ValueError("members: give either checkpoint or members (the ensemble's checkpoints), not both")
    if isinstance(members, (str, Path)) or len(members) < 2:
        raise ValueError(f"members: a deep ensemble needs a list of at least 2 checkpoints, got {members!r}")
    return EnsembleInterpolator([load(Path(path), **options) for path in members], name=name)


def _neural_process(kind: str) -> Callable[..., Interpolator]:
    def factory(
        checkpoint: str | Path | None = None,
        *,
        members: Sequence[str | Path] | None = None,
        stochastic_attention_samples: int = 1,
        swag: str | Path | None = None,
        bayes_by_backprop: str | Path | None = None,
        weight_samples: int = 10,
        **options: Any,
    ) -> Interpolator:
        from weatherunc.models.neural_process.interpolator import (
            NeuralProcessInterpolator,
            attention_members,
        )

        weight_posterior = swag is not None or bayes_by_backprop is not None
        if weight_posterior and (members is not None or stochastic_attention_samples != 1):
            raise ValueError(
                f"{kind}: swag or bayes_by_backprop cannot be combined with members or "
                "stochastic_attention_samples; give one"
            )
        if swag is not None and bayes_by_backprop is not None:
            raise ValueError(
                f"{kind}: give swag= or bayes_by_backprop=, not both (each is its own posterior)"
            )
        if members is not None:
            name = options.pop("name", f"{kind}_ensemble")
            load = NeuralProcessInterpolator.from_checkpoint
            return deep_ensemble(load, members, checkpoint, name, options)
        options.setdefault("name", kind)
        base = NeuralProcessInterpolator.from_checkpoint(
            Path(checkpoint) if checkpoint else packaged_checkpoint(kind), **options
        )
        if stochastic_attention_samples == 1 and not weight_posterior:
            return base
        from weatherunc.models.ensemble import EnsembleInterpolator

        if bayes_by_backprop is not None:
            from weatherunc.models.bayes_by_backprop import bayes_by_backprop_members, load_posterior

            posterior, _ = load_posterior(Path(bayes_by_backprop))
            members = bayes_by_backprop_members(base, posterior, weight_samples)
            return EnsembleInterpolator(members, name=f"{base.name}+bbb")
        if swag is not None:
            from weatherunc.models.swag import load_swag, swag_members

            moments, _ = load_swag(Path(swag))
            return EnsembleInterpolator(swag_members(base, moments, weight_samples), name=f"{base.name}+swag")
        return EnsembleInterpolator(attention_members(base, stochastic_attention_samples), name=base.name)

    factory.__doc__ = (
        f"The {kind.upper()}: the shipped checkpoint, ``checkpoint=PATH``, or a deep ensemble of the "
        "checkpoints ``members=[PATH, ...]``; for a checkpoint with stochastic attention, "
        "``stochastic_attention_samples=N`` (N >= 2) predicts with N attention draws as an ensemble "
        "(:func:`~weatherunc.models.neural_process.interpolator.attention_members`); with ``swag=PATH`` "
        "(moments collected by ``weatherunc swag``) or ``bayes_by_backprop=PATH`` (a posterior fitted by "
        "``weatherunc bbb``), an ensemble of ``weight_samples`` weight samples "
        "(:mod:`weatherunc.models.swag`, :mod:`weatherunc.models.bayes_by_backprop`)."
    )
    return factory


def _convolutional_neural_process(
    checkpoint: str | Path | None = None,
    *,
    members: Sequence[str | Path] | None = None,
    swag: str | Path | None = None,
    bayes_by_backprop: str | Path | None = None,
    weight_samples: int = 10,
    **options: Any,
) -> Interpolator:
    """The convolutional neural process: the shipped checkpoint, or ``checkpoint=PATH``; a deep
    ensemble of the checkpoints ``members=[PATH, ...]`` (Lakshminarayanan et al. 2017); with
    ``swag=PATH`` (moments collected by ``weatherunc swag``) or ``bayes_by_backprop=PATH`` (a
    posterior fitted by ``weatherunc bbb``), an ensemble of ``weight_samples`` weight samples
    (:mod:`weatherunc.models.swag`, :mod:`weatherunc.models.bayes_by_backprop`)."""
    from weatherunc.models.convnp.interpolator import ConvNPInterpolator

    if members is not None:
        if swag is not None or bayes_by_backprop is not None:
            raise ValueError(
                "members: a deep ensemble cannot be combined with swag or bayes_by_backprop; give one of them"
            )
        name = options.pop("name", "convnp_ensemble")
        return deep_ensemble(ConvNPInterpolator.from_checkpoint, members, checkpoint, name, options)
    if swag is not None and bayes_by_backprop is not None:
        raise ValueError("convnp: give swag= or bayes_by_backprop=, not both (each is its own posterior)")
    base = ConvNPInterpolator.from_checkpoint(
        Path(checkpoint) if checkpoint else packaged_checkpoint("convnp"), **options
    )
    if swag is None and bayes_by_backprop is None:
        return base
    from weatherunc.models.ensemble import EnsembleInterpolator

    if bayes_by_backprop is not None:
        from weatherunc.models.bayes_by_backprop import bayes_by_backprop_members, load_posterior

        posterior, _ = load_posterior(Path(bayes_by_backprop))
        members = bayes_by_backprop_members(base, posterior, weight_samples)
        return EnsembleInterpolator(members, name=f"{base.name}+bbb")
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
        from weatherunc.heads.self_calibration import self_calibrated

        return self_calibrated(get_model(model[: -len(SELF_CALIBRATED)], **options))
    if model not in MODELS:
        raise ValueError(
            f"unknown model {model!r}; valid models: {', '.join(sorted(MODELS))} (each also as "
            f"NAME{SELF_CALIBRATED}, self-calibrated)"
        )
    return MODELS[model](**options)

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


#: Weight samples drawn from a SWAG or Bayes by Backprop posterior where ``weight_samples`` is not given.
DEFAULT_WEIGHT_SAMPLES = 10


def _check_posterior_options(
    kind: str, swag: str | Path | None, bayes_by_backprop: str | Path | None, weight_samples: int | None
) -> None:
    """``ValueError`` for both ``swag`` and ``bayes_by_backprop``, and for ``weight_samples`` without
    either."""
    if swag is not None and bayes_by_backprop is not None:
        raise ValueError(f"{kind}: give swag= or bayes_by_backprop=, not both (each is its own posterior)")
    if weight_samples is not None and swag is None and bayes_by_backprop is None:
        raise ValueError(
            f"{kind}: weight_samples={weight_samples} applies with swag= or bayes_by_backprop= only"
        )


def weight_posterior_ensemble(
    base: Interpolator,
    kind: str,
    *,
    swag: str | Path | None = None,
    bayes_by_backprop: str | Path | None = None,
    weight_samples: int | None = None,
) -> Interpolator:
    """``base`` (a neural process loaded from its checkpoint) with ``weight_samples`` weight samples
    (:data:`DEFAULT_WEIGHT_SAMPLES` if None) of the SWAG moments ``swag`` or the Bayes by Backprop
    posterior ``bayes_by_backprop`` as an :class:`~weatherunc.models.ensemble.EnsembleInterpolator`
    named ``NAME+swag`` or ``NAME+bbb``; ``base`` itself where neither is given. ``ValueError`` for
    both, for ``weight_samples`` without either, and for a posterior fitted to another checkpoint
    than ``base``'s (by the ``checkpoint_sha256`` its file records)."""
    _check_posterior_options(kind, swag, bayes_by_backprop, weight_samples)
    if swag is None and bayes_by_backprop is None:
        return base
    from weatherunc.models.ensemble import EnsembleInterpolator

    samples = DEFAULT_WEIGHT_SAMPLES if weight_samples is None else weight_samples
    if bayes_by_backprop is not None:
        from weatherunc.models.bayes_by_backprop import bayes_by_backprop_members, load_posterior

        path, suffix = Path(bayes_by_backprop), "bbb"
        posterior, sidecar = load_posterior(path)
    else:
        from weatherunc.models.swag import load_swag, swag_members

        path, suffix = Path(swag), "swag"
        moments, sidecar = load_swag(path)
    fitted_to = str((sidecar.get("metadata") or {}).get("checkpoint_sha256") or "")
    ours = str(getattr(base, "checkpoint_sha256", "") or "")
    if fitted_to and ours and fitted_to != ours:
        raise ValueError(
            f"{kind}: {path} was fitted to the checkpoint with sha256 {fitted_to[:12]}..., not to this "
            f"model's ({ours[:12]}...); give checkpoint= the weights it was fitted to"
        )
    members = (
        bayes_by_backprop_members(base, posterior, samples)
        if suffix == "bbb"
        else swag_members(base, moments, samples)
    )
    return EnsembleInterpolator(
        members, name=f"{base.name}+{suffix}", posterior_sha256=str(sidecar["sha256"])
    )


def _neural_process(kind: str) -> Callable[..., Interpolator]:
    def factory(
        checkpoint: str | Path | None = None,
        *,
        members: Sequence[str | Path] | None = None,
        stochastic_attention_samples: int = 1,
        swag: str | Path | None = None,
        bayes_by_backprop: str | Path | None = None,
        weight_samples: int | None = None,
        **options: Any,
    ) -> Interpolator:
        from weatherunc.models.neural_process.interpolator import (
            NeuralProcessInterpolator,
            attention_members,
        )

        _check_posterior_options(kind, swag, bayes_by_backprop, weight_samples)
        posterior = swag is not None or bayes_by_backprop is not None
        if posterior and (members is not None or stochastic_attention_samples != 1):
            raise ValueError(
                f"{kind}: swag or bayes_by_backprop cannot be combined with members or "
                "stochastic_attention_samples; give one"
            )
        if members is not None:
            name = options.pop("name", f"{kind}_ensemble")
            load = NeuralProcessInterpolator.from_checkpoint
            return deep_ensemble(load, members, checkpoint, name, options)
        options.setdefault("name", kind)
        base = NeuralProcessInterpolator.from_checkpoint(
            Path(checkpoint) if checkpoint else packaged_checkpoint(kind), **options
        )
        if stochastic_attention_samples == 1:
            return weight_posterior_ensemble(
                base, kind, swag=swag, bayes_by_backprop=bayes_by_backprop, weight_samples=weight_samples
            )
        from weatherunc.models.ensemble import EnsembleInterpolator

        return EnsembleInterpolator(attention_members(base, stochastic_attention_samples), name=base.name)

    factory.__doc__ = (
        f"The {kind.upper()}: the shipped checkpoint, ``checkpoint=PATH``, or a deep ensemble of the "
        "checkpoints ``members=[PATH, ...]``; for a checkpoint with stochastic attention, "
        "``stochastic_attention_samples=N`` (N >= 2) predicts with N attention draws as an ensemble "
        "(:func:`~weatherunc.models.neural_process.interpolator.attention_members`); with ``swag=PATH`` "
        "(moments collected by ``weatherunc swag``) or ``bayes_by_backprop=PATH`` (a posterior fitted by "
        "``weatherunc bbb``), an ensemble of ``weight_samples`` weight samples "
        "(:func:`weight_posterior_ensemble`)."
    )
    return factory


def _convolutional_neural_process(
    checkpoint: str | Path | None = None,
    *,
    members: Sequence[str | Path] | None = None,
    swag: str | Path | None = None,
    bayes_by_backprop: str | Path | None = None,
    weight_samples: int | None = None,
    **options: Any,
) -> Interpolator:
    """The convolutional neural process: the shipped checkpoint, or ``checkpoint=PATH``; a deep
    ensemble of the checkpoints ``members=[PATH, ...]`` (Lakshminarayanan et al. 2017); with
    ``swag=PATH`` (moments collected by ``weatherunc swag``) or ``bayes_by_backprop=PATH`` (a
    posterior fitted by ``weatherunc bbb``), an ensemble of ``weight_samples`` weight samples
    (:func:`weight_posterior_ensemble`)."""
    from weatherunc.models.convnp.interpolator import ConvNPInterpolator

    _check_posterior_options("convnp", swag, bayes_by_backprop, weight_samples)
    if members is not None:
        if swag is not None or bayes_by_backprop is not None:
            raise ValueError(
                "members: a deep ensemble cannot be combined with swag or bayes_by_backprop; give one of them"
            )
        name = options.pop("name", "convnp_ensemble")
        return deep_ensemble(ConvNPInterpolator.from_checkpoint, members, checkpoint, name, options)
    base = ConvNPInterpolator.from_checkpoint(
        Path(checkpoint) if checkpoint else packaged_checkpoint("convnp"), **options
    )
    return weight_posterior_ensemble(
        base, "convnp", swag=swag, bayes_by_backprop=bayes_by_backprop, weight_samples=weight_samples
    )


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

"""Refit a trained neural process's bin head under the conditions it predicts in.

Training scores the categorical head with latents drawn from the posterior ``q(z | C, T)``,
which has seen the targets, and with dropout on; prediction draws latents from the prior
``q(z | C)``, switches dropout off and averages the softmax over the draws
(:class:`~weatherunc.models.neural_process.interpolator.NeuralProcessInterpolator`). The head is
fitted in the first setting and used in the second: the train/test mismatch of the neural
process ELBO (Le et al. 2018, "Empirical evaluation of neural process objectives"; Foong et al.
2020 train on the predictive likelihood instead).

Only the last linear map from the decoder's features to the bin logits is refitted (last-layer
retraining, Kirichenko et al. 2023, "Last layer re-training is sufficient for robustness to
spurious correlations"): the features of training tasks are computed once, in prediction mode
with ``latent_samples`` prior draws (:mod:`~weatherunc.training.head_refit.features`), and the bin
rows of the decoder's output layer are fitted by L-BFGS to the likelihood of the mixture the
interpolator publishes, ``p(bin) = mean_s softmax(W h_s + b)``
(:mod:`~weatherunc.training.head_refit.fitting`). The Gaussian rows (mean and std) and every other
weight stay as they are, so the model's Gaussian predictions do not change.

With ``gaussian=True`` the two Gaussian rows are refitted too, to the likelihood of the Gaussian
the interpolator publishes: the moments of the mixture over latent draws (mean of the means;
variance of the means plus mean of the variances), after the task normalisation is undone. This
changes the Gaussian predictions, so it is an option, not the default (its measured effect:
``benchmarks/HISTORY.md``, "Gaussian-row refit").

:mod:`~weatherunc.training.head_refit.checkpoint_refit` refits a checkpoint file and reports the
validation scores before and after.
"""

from weatherunc.training.head_refit.checkpoint_refit import (
    check_architecture,
    refit_checkpoint,
    validation_report,
)
from weatherunc.training.head_refit.features import (
    GAUSSIAN_ROWS,
    DecoderFeatures,
    HeadRefitOptions,
    decoder_features,
    output_layer,
)
from weatherunc.training.head_refit.fitting import (
    fit_bin_rows,
    fit_gaussian_rows,
    gaussian_nll,
    mixture_nll,
    refit_head,
)

__all__ = [
    "GAUSSIAN_ROWS",
    "DecoderFeatures",
    "HeadRefitOptions",
    "check_architecture",
    "decoder_features",
    "fit_bin_rows",
    "fit_gaussian_rows",
    "gaussian_nll",
    "mixture_nll",
    "output_layer",
    "refit_checkpoint",
    "refit_head",
    "validation_report",
]

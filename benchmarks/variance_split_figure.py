"""Figure: epistemic and aleatoric standard deviations side by side, in and out of distribution.

Four 32 px blocks over rain are withheld in the wettest 128 x 128 px window of one KNMI frame
(a radar the neural processes trained on, test period) and one FMI frame (a radar none trained
on) and filled by the GP (latent vs noise variance) and the ANP with MC dropout (spread of the
dropout samples vs the mean noise variance). Writes
``docs/figures/{knmi,fmi}_{gp,anp_mc_dropout}_variance_split.png`` and
``docs/figures/variance_split.json`` (mean epistemic and aleatoric std over the withheld pixels).

    WEATHERUNC_DATA_DIR=../shared/data CARTOPY_DATA_DIR=../shared/data/natural_earth/cartopy_data \\
        .venv/bin/python benchmarks/variance_split_figure.py
"""

from __future__ import annotations

import json

import numpy as np
import torch
from common import machine, require_data_dir
from figures import OUT, withheld

from weatherunc import conventions
from weatherunc.geolocation import crs_of
from weatherunc.gridding import GridTiling, predict_grid
from weatherunc.loading import open_dataset
from weatherunc.models.registry import get_model
from weatherunc.plotting import save_figure, variance_split_map
from weatherunc.prediction import epistemic_share
from weatherunc.tasks import wettest_window

FRAMES = {"knmi": ("knmi_20100826", "2010-08-26T06:40"), "fmi": ("fmi_20160928", "2016-09-28T17:10")}
WINDOW = 128


def main() -> None:
    require_data_dir()
    torch.set_num_threads(2)
    models = {
        "gp": lambda: get_model("gp"),
        "anp_mc_dropout": lambda: get_model("anp", mc_dropout=True, name="anp_mc_dropout"),
    }
    summary = {}
    for label, (name, time) in FRAMES.items():
        dataset = open_dataset(name)
        crs = crs_of(dataset)
        frame = wettest_window(
            dataset[conventions.PRECIPITATION].sel(time=time).load().drop_vars(["latitude", "longitude"]),
            WINDOW,
        )
        mask = withheld(frame)
        for model_name, make in models.items():
            prediction = predict_grid(
                make(),
                frame,
                crs=crs,
                tiling=GridTiling(tile_pixels=WINDOW, halo_pixels=0, max_context=4096),
                target_mask=mask,
                progress=False,
            )
            path = save_figure(
                variance_split_map(prediction), OUT / f"{label}_{model_name}_variance_split.png"
            )
            latent = prediction[conventions.LATENT_VARIANCE].values[mask]
            noise = np.broadcast_to(prediction[conventions.NOISE_VARIANCE].values, mask.shape)[mask]
            summary[f"{label}/{model_name}"] = {
                "dataset": name,
                "time": time,
                "figure": path.name,
                "epistemic_std": round(float(np.sqrt(latent).mean()), 4),
                "aleatoric_std": round(float(np.sqrt(noise).mean()), 4),
                "epistemic_share": round(float(np.mean(epistemic_share(latent, noise))), 4),
            }
            print(label, model_name, summary[f"{label}/{model_name}"], flush=True)
    (OUT / "variance_split.json").write_text(
        json.dumps({"machine": machine(), "maps": summary}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()

"""Make the golden files: Neurosynth 0.3.8's own maps and study selections on the bundled sample.

Run with a Python that has ``neurosynth==0.3.8`` (never xcoact's environment;
see ``README.md`` in this folder for the pins)::

    nice ns-env/bin/python tests/golden/make.py            # writes into tests/golden/

Each case runs Neurosynth's ``Dataset`` on ``xcoact/datasets/data/neurosynth_sample_database.txt``
(brain mask: the bundled copy of its MNI152 2 mm template), selects studies with
``Dataset.get_studies`` exactly as ``network.coactivation`` does, and runs
``meta.MetaAnalysis``.  Where ``network.coactivation`` itself can express the
case (q = 0.01, prior = 0.5), the stored maps are the NIfTI files it wrote.

Outputs, per case ``NAME``: ``NAME.npz`` (the nine maps as exact float64
in-mask vectors, stored as their distinct rows plus one row index per voxel, see
:func:`encode`) and the manifest ``cases.json`` (parameters, Neurosynth's map
names, n_roi, the selected study ids).  Nothing is pickled.

This file imports neurosynth only inside functions: pytest imports every module
under ``tests/`` for doctests, where neurosynth is absent.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(REPO, "xcoact", "datasets", "data")
DATABASE = "neurosynth_sample_database.txt"
TEMPLATE = "MNI152_T1_2mm_brain.nii.gz"

DACC = [[0, 20, 28]]
DACC_DLPFC = [[0, 20, 28], [-40, 20, 28]]
# 9106283's nearest peak (4, -80, -8) is exactly 10 mm from this seed: inclusive (<=) vs strict (<) decides it
AT_TEN_MM = [[4, -90, -8]]
# three more regions where the sample reports peaks: left intraparietal sulcus, SMA/pre-SMA, left
# posterior superior temporal gyrus (a seed set of three) - so that at least 8 distinct seeds are covered
IPS = [[-36, -48, 48]]
SMA = [[0, 10, 50]]
LEFT_THREE = [[-48, -24, 12], [-36, -12, 48], [-36, -60, -12]]

#: kind: "image" (an ROI file of xcoact/datasets/data), "sphere" (coordinates grown into spheres by
#: Neurosynth's own imageutils, then an image seed), "peaks" (coordinates, network.coactivation's
#: route in 0.3.8: get_studies(peaks=..., r=...)).
#: threshold: a float is a proportion of ROI voxels, an int a voxel count (Neurosynth's rule).
CASES = [
    dict(name="amygdala_default", kind="image", seed="amygdala_roi.nii.gz", threshold=None),
    dict(name="amygdala_p0.1", kind="image", seed="amygdala_roi.nii.gz", threshold=0.1),
    dict(
        name="amygdala_p0.1_q0.04_prior0.25",
        kind="image",
        seed="amygdala_roi.nii.gz",
        threshold=0.1,
        q=0.04,
        prior=0.25,
    ),
    dict(name="sgacc_n0", kind="image", seed="sgacc_mask.nii.gz", threshold=0),
    dict(name="sgacc_n5_q0.02", kind="image", seed="sgacc_mask.nii.gz", threshold=5, q=0.02),
    dict(
        name="sgacc_p0.05_q0.001_prior0.8", kind="image", seed="sgacc_mask.nii.gz", threshold=0.05, q=0.001, prior=0.8
    ),
    dict(name="sphere_dacc_r10_p0.1", kind="sphere", seed=DACC, r=10, threshold=0.1),
    dict(name="sphere_dacc_dlpfc_r10_n30_q0.05", kind="sphere", seed=DACC_DLPFC, r=10, threshold=30, q=0.05),
    dict(
        name="sphere_dacc_dlpfc_r6_p0.1_q0.015_prior0.6",
        kind="sphere",
        seed=DACC_DLPFC,
        r=6,
        threshold=0.1,
        q=0.015,
        prior=0.6,
    ),
    dict(name="peaks_dacc_r10", kind="peaks", seed=DACC, r=10, threshold=0.1),
    dict(name="peaks_dacc_dlpfc_r10", kind="peaks", seed=DACC_DLPFC, r=10, threshold=0.1),
    dict(name="peaks_at_10mm_r10_q0.0025", kind="peaks", seed=AT_TEN_MM, r=10, threshold=0.1, q=0.0025),
    dict(name="sphere_ips_r8_p0.2", kind="sphere", seed=IPS, r=8, threshold=0.2),
    dict(name="sphere_sma_r10_n15_q0.03_prior0.3", kind="sphere", seed=SMA, r=10, threshold=15, q=0.03, prior=0.3),
    dict(name="peaks_left_three_r8", kind="peaks", seed=LEFT_THREE, r=8, threshold=0.1),
    dict(name="kernel10_amygdala_p0.1", kind="image", seed="amygdala_roi.nii.gz", threshold=0.1, kernel_r=10),
    dict(
        name="kernel10_sphere_dacc_r10_n20_q0.05_prior0.4",
        kind="sphere",
        seed=DACC,
        r=10,
        threshold=20,
        kernel_r=10,
        q=0.05,
        prior=0.4,
    ),
]


def encode(maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An exact, compact form of the nine float64 maps: their distinct rows and each voxel's row.

    Every map is a function of a voxel's two study counts, so the voxels carry
    a few hundred distinct 9-tuples of values; ``rows[index]`` gives the
    (n_voxels, 9) stack back exactly, column j being map j of ``names``.
    """
    stack = np.column_stack([np.asarray(v, dtype=np.float64) for v in maps.values()])
    rows, index = np.unique(stack, axis=0, return_inverse=True)
    dtype = np.uint16 if len(rows) <= np.iinfo(np.uint16).max + 1 else np.uint32
    index = index.reshape(-1).astype(dtype)
    assert np.array_equal(rows[index], stack)
    return {"rows": rows, "index": index}


def _shim() -> None:
    """Names Neurosynth 0.3.8 uses that numpy and pandas have since removed (see README.md)."""
    import pandas as pd

    if not hasattr(np, "round_"):
        np.round = np.round
    for name in ("to_dense", "to_sparse"):
        if not hasattr(pd.DataFrame, name):
            setattr(pd.DataFrame, name, lambda self: self)
    if not hasattr(pd.DataFrame, "ix"):
        pd.DataFrame.ix = property(lambda self: self.loc)


def _selection(dataset, case: dict):
    """The study ids and n_roi, selected as ``network.coactivation`` (or its image path) would."""
    from neurosynth.base import imageutils, transformations

    threshold = 0.0 if case["threshold"] is None else case["threshold"]
    if case["kind"] == "peaks":
        # network.coactivation's own call for a list of coordinates
        ids = dataset.get_studies(peaks=case["seed"], r=case["r"], activation_threshold=threshold)
        for other in (0.0, 1.0, 10_000):  # the threshold plays no part in this route
            assert sorted(dataset.get_studies(peaks=case["seed"], r=case["r"], activation_threshold=other)) == sorted(
                ids
            )
        return ids, None
    if case["kind"] == "image":
        mask = os.path.join(DATA, case["seed"])
    else:
        # Neurosynth's own sphere growing (the recipe of its earlier get_ids_by_peaks): mm -> voxel
        # indices, hard spheres of radius r on the template's grid, then an image seed
        ijk = transformations.xyz_to_mat(np.array(case["seed"], dtype=float))
        mask = imageutils.map_peaks_to_image(
            ijk,
            r=case["r"],
            vox_dims=dataset.masker.vox_dims,
            dims=dataset.masker.dims,
            header=dataset.masker.get_header(),
        )
    ids = dataset.get_studies(mask=mask, activation_threshold=threshold)
    n_roi = int(np.sum(dataset.masker.mask(mask, in_global_mask=True).astype(bool)))
    return ids, n_roi


def _via_network_coactivation(dataset, case: dict, names: list[str]) -> dict[str, np.ndarray]:
    """The maps as ``network.coactivation`` writes them, read back from its NIfTI files."""
    import nibabel as nib
    from neurosynth.analysis import network

    kwargs = {} if case["threshold"] is None else {"threshold": case["threshold"]}
    seed = os.path.join(DATA, case["seed"]) if case["kind"] == "image" else case["seed"]
    if case["kind"] == "peaks":
        kwargs["r"] = case["r"]
    mask = dataset.masker.global_mask
    with tempfile.TemporaryDirectory() as out:
        network.coactivation(dataset, seed, output_dir=out, prefix="golden", **kwargs)
        written = sorted(f for f in os.listdir(out))
        expected = sorted(f"golden_{n}.nii.gz" for n in names)
        assert written == expected, (written, expected)
        return {
            n: np.asarray(nib.load(os.path.join(out, f"golden_{n}.nii.gz")).get_fdata(), dtype=np.float64).ravel()[mask]
            for n in names
        }


def run_case(dataset, case: dict) -> tuple[dict, dict[str, np.ndarray]]:
    from neurosynth.analysis import meta

    q = case.get("q", 0.01)
    prior = case.get("prior", 0.5)
    ids, n_roi = _selection(dataset, case)
    ma = meta.MetaAnalysis(dataset, ids, q=q, prior=prior)
    names = list(ma.images)
    maps = {n: np.asarray(v, dtype=np.float64).ravel() for n, v in ma.images.items()}
    route = "get_studies + MetaAnalysis"
    if case["kind"] != "sphere" and q == 0.01 and prior == 0.5:
        written = _via_network_coactivation(dataset, case, names)
        for n in names:  # network.coactivation is exactly this selection and MetaAnalysis
            assert np.array_equal(written[n], maps[n]), n
        maps = written
        route = "network.coactivation"
    ids = sorted(int(i) for i in ids)
    entry = {
        "name": case["name"],
        "route": route,
        "kind": case["kind"],
        "seed": case["seed"],
        "r": case.get("r"),
        "kernel_r": case.get("kernel_r", 6),
        "threshold": case["threshold"],
        "threshold_kind": None
        if case["threshold"] is None
        else ("count" if isinstance(case["threshold"], int) else "proportion"),
        "q": q,
        "prior": prior,
        "maps": names,
        "n_studies": int(len(dataset.image_table.ids)),
        "n_roi": n_roi,
        "n_selected": len(ids),
        "selected_ids": ids,
    }
    return entry, maps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=HERE, help="folder to write into (default: this script's)")
    args = parser.parse_args(argv)
    _shim()
    warnings.simplefilter("ignore")
    import neurosynth
    import nibabel
    import pandas
    import scipy
    from neurosynth.base.dataset import Dataset

    version = getattr(neurosynth, "__version__", None)
    if version != "0.3.8":
        raise SystemExit(f"neurosynth {version} found; the golden files are Neurosynth 0.3.8's")
    datasets = {}
    manifest = {
        "made_with": {
            "neurosynth": version,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pandas.__version__,
            "nibabel": nibabel.__version__,
            "python": platform.python_version(),
        },
        "date": datetime.date.today().isoformat(),
        "database": f"xcoact/datasets/data/{DATABASE}",
        "mask": f"xcoact/datasets/data/{TEMPLATE} (voxels != 0)",
        "encoding": "NAME.npz holds 'rows' (float64, the distinct 9-tuples of map values, one column per "
        "name in the case's 'maps') and 'index' (one per in-mask voxel, in C order of the "
        "template's array); map j = rows[index, j]",
        "cases": [],
    }
    for case in CASES:
        r = case.get("kernel_r", 6)
        if r not in datasets:
            datasets[r] = Dataset(os.path.join(DATA, DATABASE), masker=os.path.join(DATA, TEMPLATE), r=r)
        entry, maps = run_case(datasets[r], case)
        np.savez_compressed(os.path.join(args.out, f"{case['name']}.npz"), **encode(maps))
        manifest["cases"].append(entry)
        print(f"{case['name']}: {entry['n_selected']} studies selected ({entry['route']})", file=sys.stderr)
    with open(os.path.join(args.out, "cases.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

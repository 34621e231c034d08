"""Shared fixtures: the bundled real sample, its cube, and the loop-based oracle.

Fixtures are named for what they model; builders are private and cached so
the slow oracle runs once per session.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings

import nibabel as nib
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # for `import reference` (the loop-based oracle)

import reference

import xcoact
from xcoact.errors import XcoactWarning

DATA = os.path.join(HERE, "data")

COORD_SEEDS = {
    "dacc": ([[0, 20, 28]], 10),
    "dacc+dlpfc": ([[0, 20, 28], [-40, 20, 28]], 10),
}


def data_file(name: str) -> str:
    """Path of a test fixture file in tests/data."""
    return os.path.join(DATA, name)


@contextlib.contextmanager
def loopback_cluster(silence_logs: int = logging.ERROR):
    """A client of a real 2-worker ``LocalCluster`` (processes, one thread each) on 127.0.0.1, both workers up."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=silence_logs,
        ) as cluster,
        Client(cluster) as c,
    ):
        c.wait_for_workers(2)
        yield c


def sample_cube_chunked(sample_table, study_chunk: int):
    """The sample's cube, r = 6, ``study_chunk`` studies a block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.activations(sample_table, r=6, chunks={"study": study_chunk})


def sample_cube_persisted_warm(cube, seed):
    """``cube`` persisted on the current client, the rows built on the workers by one seed (the next is warm)."""
    import distributed

    cube = cube.persist()
    distributed.wait(cube.data)
    cube.coact.seed(seed, r=10, threshold=0.1).compute()
    return cube


def nimare_sample_dataset():
    """The bundled Neurosynth sample as a NiMARE Dataset (ids '<pmid>-1')."""
    import pandas as pd
    from nimare.dataset import Dataset

    df = pd.read_table(xcoact.datasets.sample_database_path())
    data = {}
    for sid, rows in df.groupby("id", sort=False):
        coords = {"space": rows["space"].iloc[0], **{c: rows[c].tolist() for c in "xyz"}}
        data[str(sid)] = {"contrasts": {"1": {"coords": coords}}}
    return Dataset(data)


@functools.cache
def _sample_table():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        return xcoact.read_database(xcoact.datasets.sample_database_path())


@functools.cache
def _mni_mask() -> np.ndarray:
    return np.asarray(nib.load(xcoact.datasets.template_path()).dataobj) > 0


@functools.cache
def _oracle_study_maps():
    table = _sample_table()
    peaks = list(zip(table.study_id.values.tolist(), table.x.values, table.y.values, table.z.values))
    return reference.study_maps(peaks, _mni_mask(), 6)


@functools.cache
def _oracle(seed_key: str, threshold):
    """Oracle maps and selection for a named seed on the bundled sample (kernel r = 6)."""
    mask = _mni_mask()
    if seed_key in COORD_SEEDS:
        coords, r = COORD_SEEDS[seed_key]
        roi = reference.roi_from_coords(coords, r, mask)
    else:
        path = {"amygdala": xcoact.datasets.amygdala_roi_path(), "sgacc": xcoact.datasets.sgacc_roi_path()}[seed_key]
        roi = reference.roi_from_image(np.asarray(nib.load(path).dataobj, dtype=float), mask)
    maps = _oracle_study_maps()
    selected = reference.select(maps, roi, threshold)
    return reference.coactivation_maps(maps, selected, mask), selected, len(roi)


@pytest.fixture(scope="session")
def sample_table():
    """The bundled real 100-study Neurosynth sample as a coordinate table."""
    return _sample_table()


@pytest.fixture
def sample_cube(sample_table):
    """The lazy activation cube of the sample, kernel r = 6 mm, default chunks."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xcoact.activations(sample_table, r=6)


@pytest.fixture(scope="session")
def mni_mask():
    """Neurosynth's MNI152 2 mm brain mask (228,453 voxels)."""
    return _mni_mask()


@pytest.fixture(scope="session")
def oracle():
    """``oracle(seed_key, threshold) -> (maps, selected_ids, n_roi)`` from tests/reference.py."""
    return _oracle


@pytest.fixture(scope="session")
def affine_mni():
    """The MNI152 2 mm affine (LAS: x descending)."""
    return np.array([[-2.0, 0, 0, 90], [0, 2.0, 0, -126], [0, 0, 2.0, -72], [0, 0, 0, 1]])

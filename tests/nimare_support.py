"""What the tests that run NiMARE itself share: its warnings filtered, its logging quiet, its mask as a Grid."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from xcoact.space import Grid

#: NiMARE 0.22.1 warns about deprecated Datasets and missing metadata; the tests compare numbers, not notes.
NIMARE_MARKS = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@pytest.fixture(scope="module", autouse=True)
def quiet_nimare():
    """NiMARE's log notes and progress bars off for the module."""
    logging.disable(logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    yield
    logging.disable(logging.NOTSET)


def grid_of(img) -> Grid:
    """A NiMARE mask image as xcoact's grid."""
    return Grid(img.shape, img.affine, np.asarray(img.dataobj) > 0, name="NiMARE mask")

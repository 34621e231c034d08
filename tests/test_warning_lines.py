"""xcoact's warnings point at the user's line, however deep inside xcoact they are raised."""

from __future__ import annotations

import warnings

import pytest

import xcoact
from xcoact.errors import DegenerateSeedWarning, OutOfBoxWarning, XcoactWarning


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [w for w in caught if issubclass(w.category, XcoactWarning)]


@pytest.fixture(scope="module")
def act():
    return xcoact.activations(xcoact.read_database(xcoact.datasets.sample_database_path()), r=6)


def test_degenerate_seed_warning_names_this_file(act):
    # a seed in empty space selects no study: the maps are NaN and a warning says so
    found = _caught(lambda: act.coact.seed([[[0, 0, 0]], [[90, 90, 90]]], r=2, threshold=0.99))
    degenerate = [w for w in found if issubclass(w.category, DegenerateSeedWarning)]
    assert degenerate, [str(w.message) for w in found]
    assert all(w.filename == __file__ for w in degenerate), [w.filename for w in degenerate]


def test_out_of_box_warning_names_this_file(tmp_path):
    # a real file with one peak far outside the MNI box: activations() warns, naming this line
    path = tmp_path / "far.txt"
    path.write_text("id\tx\ty\tz\tspace\n1\t0\t0\t0\tMNI\n2\t500\t0\t0\tMNI\n")
    table = xcoact.read_database(str(path))
    found = _caught(lambda: xcoact.activations(table, r=6))
    boxed = [w for w in found if issubclass(w.category, OutOfBoxWarning)]
    assert boxed and all(w.filename == __file__ for w in boxed), [(w.category, w.filename) for w in found]

"""NiMARE objects as inputs: Dataset, Studyset, the coordinates DataFrame; a NiMARE download folder as a mirror.

Real NiMARE 0.22.1 objects built from the files in ``tests/data`` (NiMARE's
own pain dataset and NIMADS studysets), passed straight to
``xcoact.read_database`` and ``xcoact.activations``.
"""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import xcoact
import xcoact.datasets.fetch as fetch
from xcoact.datasets.fetch import fetch_neurosynth
from xcoact.errors import (
    ChecksumError,
    DatabaseError,
    DownloadError,
    EmptyStudyWarning,
    ParameterError,
    SpaceWarning,
    XcoactWarning,
)
from xcoact.table import tal_to_mni

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
PAIN_JSON = os.path.join(DATA, "nimare_pain_dataset.json")
SIZES = os.path.join(DATA, "nimads_sample_size_studyset.json")
PAIN_NIMADS = os.path.join(DATA, "nimads_pain_studyset.json")
RELEASES = os.path.join(DATA, "releases")


def nimare_quiet(factory, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NiMARE's Dataset deprecation and its logging of unknown spaces
        return factory(*args)


@pytest.fixture(scope="module")
def pain_dataset():
    from nimare.dataset import Dataset

    return nimare_quiet(Dataset, PAIN_JSON)


def studyset(path):
    from nimare.studyset import Studyset

    return nimare_quiet(Studyset.from_nimads, path)


def test_a_nimare_dataset_keeps_ids_spaces_coordinates_and_sample_sizes(pain_dataset):
    coords = pain_dataset.coordinates
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpaceWarning)  # NiMARE's "mni152_2mm" is MNI, not an unknown space
        table = xcoact.read_database(pain_dataset)
    assert table.attrs["format"] == "nimare-dataset" and table.attrs["n_studies"] == len(pain_dataset.ids) == 21
    assert table["study_id"].values.tolist() == coords["id"].tolist()
    assert table["space"].values.tolist() == coords["space"].tolist() == ["mni152_2mm"] * len(coords)
    for c in "xyz":
        np.testing.assert_array_equal(table[c].values, coords[c].to_numpy(dtype=float))
    expected = dict(
        zip(pain_dataset.metadata["id"], (float(np.mean(s)) for s in pain_dataset.metadata["sample_sizes"]))
    )
    np.testing.assert_array_equal(table["sample_size"].values, [expected[i] for i in coords["id"]])
    assert expected["pain_01.nidm-1"] == 25.0


def test_a_nimare_dataset_gives_the_cube_of_its_json_file(pain_dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        from_object = xcoact.activations(pain_dataset, r=10)
        from_file = xcoact.activations(PAIN_JSON, r=10)
    ids = sorted(from_file["study"].values.tolist())
    assert sorted(from_object["study"].values.tolist()) == ids
    a = from_object.sel(study=ids).sum(("x", "y", "z")).values
    b = from_file.sel(study=ids).sum(("x", "y", "z")).values
    np.testing.assert_array_equal(a, b)
    assert a.min() > 0


def test_a_studyset_object_reads_as_its_nimads_file():
    ss = studyset(SIZES)
    from_object = xcoact.read_database(ss)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XcoactWarning)
        from_file = xcoact.read_database(SIZES)
    assert (
        from_object.attrs["format"] == "nimare-studyset"
        and from_object.attrs["database"] == "NiMARE Studyset 'zvE8LEQHAJxV'"
    )
    for name in ("study_id", "x", "y", "z", "space", "sample_size", "analysis_name"):
        np.testing.assert_array_equal(from_object[name].values, from_file[name].values, err_msg=name)
    # Talairach points keep their label and are moved by xcoact's rule, not NiMARE's (see docs/nimare.md)
    tal = from_object["space"].values == "TAL"
    assert tal.sum() == 14
    act = xcoact.activations(ss, preset="nimare")
    assert act.sizes["study"] == 15 and act.attrs["preset"] == "nimare"


def test_the_coordinates_dataframe_and_a_hand_made_one(pain_dataset):
    table = xcoact.read_database(pain_dataset.coordinates)
    assert table.attrs["format"] == "dataframe" and "sample_size" not in table
    assert table["study_id"].values.tolist() == pain_dataset.coordinates["id"].tolist()
    frame = pd.DataFrame(
        {
            "study_id": [101, 101, 202],
            "x": [0, 10, -40],
            "y": [20, 20, -60],
            "z": [28, 30, 40],
            "space": ["MNI", "MNI", "TAL"],
            "sample_sizes": [[10, 20], [10, 20], [12]],
        }
    )
    table = xcoact.read_database(frame)
    assert table["study_id"].values.tolist() == [101, 101, 202]  # integer ids stay integers
    np.testing.assert_allclose([table[c].values[2] for c in "xyz"], tal_to_mni([[-40, -60, 40]])[0])
    assert table["sample_size"].values.tolist() == [15.0, 15.0, 12.0]
    act = xcoact.activations(frame, r=6)
    assert act["study"].values.tolist() == [101, 202]


def test_experiments_without_coordinates_are_left_out_with_a_warning():
    import json

    from nimare.io import convert_nimads_to_dataset

    with open(PAIN_NIMADS, encoding="utf-8") as fh:
        raw = json.load(fh)
    raw["studies"][0]["analyses"][0]["points"] = []
    dset = nimare_quiet(convert_nimads_to_dataset, raw)
    assert dset.coordinates["x"].isna().sum() == 1  # NiMARE's placeholder row
    with pytest.warns(
        EmptyStudyWarning,
        match=r"1 row\(s\) without coordinates \(x, y and z all NaN\) were left out, "
        r"of \['pain_01.nidm-1'\]",
    ):
        table = xcoact.read_database(dset)
    assert table.attrs["n_studies"] == 20 and "pain_01.nidm-1" not in set(table["study_id"].values)


def test_bad_in_memory_inputs_are_clear_errors():
    frame = pd.DataFrame({"id": ["a"], "x": [0.0], "y": [0.0], "z": [0.0]})
    with pytest.raises(
        DatabaseError,
        match=r"coordinates DataFrame: no column\(s\) \['space'\]; expected one row per "
        r"peak .* \(add df\['space'\] = 'MNI' if every peak is in MNI\)",
    ):
        xcoact.read_database(frame)
    with pytest.raises(DatabaseError, match=r"no column\(s\) \['id \(or study_id\)', 'x'\]"):
        xcoact.read_database(pd.DataFrame({"y": [0.0], "z": [0.0], "space": ["MNI"]}))
    bad = frame.assign(space="MNI", x=[np.nan])
    with pytest.raises(DatabaseError, match=r"1 peak\(s\) have a NaN or infinite coordinate \(row 0\)"):
        xcoact.read_database(bad)
    with pytest.raises(ParameterError, match=r"format='nimads' applies to files; a DataFrame is read as it is"):
        xcoact.read_database(frame.assign(space="MNI"), format="nimads")
    with pytest.raises(
        ParameterError,
        match=r"a database of type int is not understood; expected a path to a database "
        r"file, .* a NiMARE Dataset or Studyset",
    ):
        xcoact.read_database(42)
    with pytest.raises(ParameterError, match=r"db must be a coordinate table"):
        xcoact.activations(42)


# ----------------------------------------------------------------------------- a NiMARE download folder as a mirror


@pytest.fixture
def nimare_folder(tmp_path, monkeypatch):
    """A NiMARE data_dir as ``nimare.extract.fetch_neurosynth(data_dir)`` leaves it: ``<data_dir>/neurosynth/<files>``."""
    monkeypatch.delenv(fetch.ENV_MIRROR, raising=False)
    monkeypatch.setenv(fetch.ENV_DATA, str(tmp_path / "default-cache"))
    folder = tmp_path / "nimare_data" / "neurosynth"
    shutil.copytree(os.path.join(RELEASES, "neurosynth-v7"), folder)
    return folder


@pytest.mark.parametrize("level", ["data_dir", "dataset folder"])
def test_a_nimare_download_folder_is_a_mirror(nimare_folder, tmp_path, level):
    base = nimare_folder.parent if level == "data_dir" else nimare_folder
    release = fetch_neurosynth(7, tmp_path / "cache", base_url=base, manifest=os.path.join(RELEASES, "MANIFEST.tsv"))
    for role in ("coordinates", "metadata", "features", "vocabulary"):
        name = os.path.basename(release.files[role])
        with open(release.files[role], "rb") as got, open(nimare_folder / name, "rb") as src:
            assert got.read() == src.read(), role
    with pytest.warns(SpaceWarning, match="'UNKNOWN': 269 row"):  # the excerpt's own labels, as from upstream
        assert release.table().attrs["n_studies"] == 20


def test_a_damaged_file_in_a_nimare_folder_is_refused(nimare_folder, tmp_path):
    name = "data-neurosynth_version-7_metadata.tsv.gz"
    with open(nimare_folder / name, "r+b") as fh:
        fh.seek(20)
        fh.write(b"\0\0\0")
    with pytest.raises(ChecksumError, match=rf"{name}: checksum mismatch for {nimare_folder / name}"):
        fetch_neurosynth(
            7,
            tmp_path / "cache",
            base_url=nimare_folder.parent,
            vocab=None,
            manifest=os.path.join(RELEASES, "MANIFEST.tsv"),
        )
    os.remove(nimare_folder / name)
    with pytest.raises(
        DownloadError,
        match=r"no such file in the mirror; expected <mirror>/<dataset>-v<version>/"
        rf"{name} \(or, in a NiMARE download folder, <data_dir>/<dataset>/{name}\)",
    ):
        fetch_neurosynth(
            7,
            tmp_path / "cache",
            base_url=nimare_folder.parent,
            vocab=None,
            manifest=os.path.join(RELEASES, "MANIFEST.tsv"),
        )

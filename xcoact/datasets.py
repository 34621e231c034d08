"""Data that ships with xcoact: the bundled real sample and ROIs.

The files in ``xcoact/data`` are unmodified copies from two MIT-licensed
packages (see ``xcoact/data/README.md``): Neurosynth 0.3.8's 100-study test
database and MNI152 2 mm template, its subgenual ACC mask, and NiMARE
0.22.1's amygdala ROI.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["data_path", "sample_database_path", "amygdala_roi_path", "sgacc_roi_path", "template_path"]


def data_path(name: str) -> str:
    """Absolute path of a bundled data file."""
    path = resources.files("xcoact") / "data" / name
    if not path.is_file():
        available = sorted(p.name for p in (resources.files("xcoact") / "data").iterdir() if p.name != "README.md")
        raise FileNotFoundError(f"no bundled data file {name!r}; available: {available}")
    return str(path)


def sample_database_path() -> str:
    """Neurosynth's real 100-study sample (2,695 peaks; ``database.txt`` format)."""
    return data_path("neurosynth_sample_database.txt")


def amygdala_roi_path() -> str:
    """An amygdala ROI on the 2 mm grid (366 voxels; from NiMARE's tests)."""
    return data_path("amygdala_roi.nii.gz")


def sgacc_roi_path() -> str:
    """A subgenual ACC ROI on the 2 mm grid (1,142 voxels; from Neurosynth's tests)."""
    return data_path("sgacc_mask.nii.gz")


def template_path() -> str:
    """The MNI152 2 mm template whose voxels > 0 are the brain mask."""
    return data_path("MNI152_T1_2mm_brain.nii.gz")

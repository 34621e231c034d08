"""xcoact: meta-analytic coactivation maps with xarray and Dask.

>>> import warnings, xcoact
>>> warnings.simplefilter("ignore", xcoact.errors.XcoactWarning)
>>> db = xcoact.read_database(xcoact.datasets.sample_database_path())
>>> act = xcoact.activations(db, r=6)                      # lazy bool (study, x, y, z)
>>> maps = act.coact.seed([[0, 20, 28]], r=10, threshold=0.1)
>>> maps.attrs["n_selected"], maps.attrs["n_roi"]
(4, 515)
>>> maps.coact.to_nifti("coactivation_from_coords")        # doctest: +SKIP
"""

from . import accessors as _accessors  # noqa: F401  (registers .coact)
from . import datasets  # the modules, as xcoact.progress, xcoact.result
from . import progress as progress
from . import result as result
from ._version import __version__
from .analyses.batch import seed_batch
from .analyses.contrast import contrast
from .analyses.matrix import matrix
from .analyses.meta import meta
from .analyses.seed import coactivation, seed
from .cube import activations
from .errors import (
    ArchiveError,
    ChecksumError,
    DatabaseError,
    DatabaseFileError,
    DatabaseFileNotFoundError,
    DownloadError,
    OutputError,
    ParameterError,
    RoiError,
    SelectionError,
    UnsafeArchiveError,
    XcoactError,
)
from .features import read_features
from .images import from_nibabel, to_nibabel
from .options import get_options, set_options
from .readers import read_database, write_database
from .roi import roi_mask
from .space import Grid, mni152_2mm
from .stats.fwe import fwe
from .stats.neurosynth import map_names
from .versions import show_versions
from .writers import to_netcdf, to_nifti, to_zarr

__all__ = [
    "__version__",
    "activations",
    "coactivation",
    "contrast",
    "meta",
    "read_features",
    "fwe",
    "datasets",
    "read_database",
    "write_database",
    "seed_batch",
    "roi_mask",
    "seed",
    "to_netcdf",
    "to_nifti",
    "to_zarr",
    "to_nibabel",
    "from_nibabel",
    "map_names",
    "show_versions",
    "set_options",
    "get_options",
    "matrix",
    "Grid",
    "mni152_2mm",
    "XcoactError",
    "ArchiveError",
    "ChecksumError",
    "DownloadError",
    "UnsafeArchiveError",
    "DatabaseError",
    "DatabaseFileError",
    "DatabaseFileNotFoundError",
    "OutputError",
    "ParameterError",
    "RoiError",
    "SelectionError",
]

"""The versions of everything that produced a result: :func:`show_versions`, :func:`versions`.

A map is only reproducible with the software that made it, so the same
dictionary goes into the HTML report, each NIfTI's JSON sidecar, and a bug
report (``xcoact.show_versions()``).
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata

from ._version import __version__

__all__ = ["versions", "show_versions", "DEPENDENCIES", "OPTIONAL"]

#: The core dependencies, as named in pyproject.toml's ``dependencies`` (distribution names).
DEPENDENCIES = ("numpy", "scipy", "pandas", "xarray", "dask", "nibabel", "netCDF4", "zarr", "matplotlib", "numba")
#: Optional packages xcoact uses when they are installed (extras, progress bars, the NiMARE preset's checks).
OPTIONAL = ("distributed", "numcodecs", "tqdm", "nilearn", "nimare", "ipykernel")


def _version_of(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(optional: bool = True) -> dict[str, str | None]:
    """Python, platform, xcoact and the version of every dependency, as a dict.

    Parameters
    ----------
    optional : bool, default True
        Also list the optional packages (None when one is not installed).

    Returns
    -------
    dict
        ``{"python": ..., "platform": ..., "xcoact": ..., "numpy": ..., ...}``;
        a package that is not installed maps to None.

    Examples
    --------
    >>> from xcoact.versions import versions
    >>> v = versions()
    >>> v["xcoact"] == __import__("xcoact").__version__, "numpy" in v
    (True, True)
    """
    out: dict[str, str | None] = {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "xcoact": __version__,
    }
    names = DEPENDENCIES + (OPTIONAL if optional else ())
    out.update({name: _version_of(name) for name in names})
    return out


def show_versions(file=None) -> None:
    """Print the versions of Python, the platform, xcoact and every dependency (for bug reports and methods sections).

    Parameters
    ----------
    file : file-like, optional
        Where to print; ``sys.stdout`` by default.

    Examples
    --------
    >>> import xcoact
    >>> xcoact.show_versions()  # doctest: +ELLIPSIS
    INSTALLED VERSIONS
    ------------------
    python: ...
    """
    file = sys.stdout if file is None else file
    info = versions()
    width = max(len(k) for k in info)
    print("INSTALLED VERSIONS", file=file)
    print("------------------", file=file)
    for key, value in info.items():
        print(f"{key + ':':<{width + 1}} {value if value is not None else 'not installed'}", file=file)

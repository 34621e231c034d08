"""The values each option of the public API accepts, as ``Literal`` types.

Type checkers and editors read them from the signatures (``select: SelectRule``);
:func:`typing.get_args` gives the same values at run time, which is what the
checks that list the valid choices in their error messages use.
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "SelectRule",
    "PresetName",
    "MapDtype",
    "Layout",
    "BothRule",
    "Naming",
    "Compressor",
    "PlotKind",
    "PlotView",
    "PlotEngine",
]

#: Study-selection rules of ``seed``, ``contrast`` and ``coactivation`` (``select=``).
SelectRule = Literal["overlap", "focus", "distance", "nearest"]
#: Analysis presets (``preset=``): Neurosynth 0.3.8, or NiMARE 0.22.1's MKDAChi2 MACM.
PresetName = Literal["neurosynth", "nimare"]
#: Storage type of the maps (``dtype=``); they are always computed in float64.
MapDtype = Literal["float64", "float32"]
#: Layout of a batch's maps (``layout=``): ``(seed, x, y, z)`` volumes or in-mask voxels.
Layout = Literal["volume", "voxel"]
#: What ``contrast`` does with a study both seeds select (``both=``).
BothRule = Literal["exclude", "a", "b", "error"]
#: NIfTI file names (``naming=``): Neurosynth's ``{outroot}_{name}`` or BIDS-style entities.
Naming = Literal["neurosynth", "bids"]
#: Compression of a Zarr store's chunks (``compressor=``).
Compressor = Literal["auto", "lz4", "zstd", "none"]
#: Rows of a single seed's figure (``kind=``).
PlotKind = Literal["all", "slices", "glass"]
#: Projection axis of a batch's small multiples (``view=``).
PlotView = Literal["x", "y", "z"]
#: What draws a figure (``engine=``).
PlotEngine = Literal["matplotlib", "nilearn"]

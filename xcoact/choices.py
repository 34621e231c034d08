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
    "NullMethod",
    "FweMethod",
    "KernelName",
    "Combine",
    "CountOp",
    "AleEngine",
    "PoolRule",
    "PoolProfile",
    "FilterRange",
    "ObjectFormat",
    "NeurosynthVocab",
    "NeurosynthSource",
    "NeuroqueryVocab",
    "NeuroquerySource",
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
#: The null of an ALE seed's maps besides the approximate one (``null=``): SCALE.
NullMethod = Literal["scale"]
#: FWE without permutations (``n_iter=`` / ``fwe=``, else a number of iterations).
FweMethod = Literal["bonferroni"]
#: Kernels of ``xcoact.activations`` by name (``kernel=``): binary spheres, KDA, ALE.
KernelName = Literal["mkda", "kda", "ale"]
#: How a study's overlapping kernels combine (``how=`` / ``combine=``).
Combine = Literal["max", "sum"]
#: Reductions of ``grouped_counts`` (``op=``).
CountOp = Literal["sum", "count", "log1m_sum"]
#: What folds ALE's null histograms (``engine=``).
AleEngine = Literal["auto", "numba", "numpy"]
#: Pools of studies in ``parcellate`` (``select=``): the N nearest, or those within a radius.
PoolRule = Literal["nearest", "distance"]
#: Coactivation profile of a pool in ``parcellate`` (``profile=``).
PoolProfile = Literal["mkda", "pFgA", "ale"]
#: Filter sizes ``parcellate`` votes over (``filter_range=``).
FilterRange = Literal["stable", "all"]
#: The ``format`` attr of a table made from an in-memory database (``fmt=``).
ObjectFormat = Literal["dataframe", "nimare-dataset", "nimare-studyset", "nimads"]
#: Features of the Neurosynth releases in the bundled manifest (``vocab=``, ``source=``).
NeurosynthVocab = Literal["terms", "LDA50", "LDA100", "LDA200", "LDA400"]
NeurosynthSource = Literal["abstract"]
#: Features of the NeuroQuery release in the bundled manifest (``vocab=``, ``source=``).
NeuroqueryVocab = Literal["neuroquery7547", "neuroquery156521", "neuroquery6308"]
NeuroquerySource = Literal["abstract", "body", "keywords", "title", "combined"]

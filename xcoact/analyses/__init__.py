"""The named analyses, each composing the stages (ROI -> selection -> grouped counts -> statistics).

* :mod:`~xcoact.analyses.seed` -- ``seed`` (one seed's maps) and ``coactivation`` (computed and written);
* :mod:`~xcoact.analyses.batch` -- ``seed_batch``: many seeds, maps with a ``seed`` dimension;
* :mod:`~xcoact.analyses.contrast` -- ``contrast``: seed A's studies against seed B's;
* :mod:`~xcoact.analyses.meta` -- ``meta``: an explicit study selection;
* :mod:`~xcoact.analyses.pipeline` -- what they share: cube checks, per-study scores, the maps' graph;
* :mod:`~xcoact.analyses.matrix` -- the ROI x ROI coactivation matrix;
* :mod:`~xcoact.analyses.decode` -- term meta-analyses (``term``, ``meta``) and decoding;
* :mod:`~xcoact.analyses.parcellate` -- coactivation-based parcellation.

The result Dataset and its provenance are built by :mod:`xcoact.result`. The public calls are
``xcoact.<verb>`` and the ``.coact`` accessors.
"""

"""The named analyses, each composing the stages (ROI -> selection -> grouped counts -> statistics).

* :mod:`~xcoact.analyses.coactivation` -- ``seed``, ``seed_batch``, ``contrast``, ``coactivation``;
* :mod:`~xcoact.analyses.matrix` -- the ROI x ROI coactivation matrix;
* :mod:`~xcoact.analyses.decode` -- term meta-analyses (``term``, ``meta``) and decoding;
* :mod:`~xcoact.analyses.parcellate` -- coactivation-based parcellation.

The public calls are ``xcoact.<verb>`` and the ``.coact`` accessors.
"""

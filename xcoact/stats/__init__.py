"""Statistics on grouped counts and activation maps, one module per method.

* :mod:`~xcoact.stats.neurosynth` -- Neurosynth 0.3.8's nine maps: chi-square tests, p -> z, FDR;
* :mod:`~xcoact.stats.nimare` -- NiMARE 0.22.1's ``MKDAChi2`` maps, p in log space;
* :mod:`~xcoact.stats.ale` and :mod:`~xcoact.stats.ale_null` -- ALE: the statistic, its null, p and z, FWE;
* :mod:`~xcoact.stats.fwe` -- family-wise error by permutations over the cube's per-study runs; Bonferroni;
* :mod:`~xcoact.stats.clusters` -- cluster tables; :mod:`~xcoact.stats.components` -- the connected-component labeller.
"""

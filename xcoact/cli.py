"""Command line: ``xcoact coactivation --seed ... --threshold ... --outroot ...``.

Parses arguments, calls the public functions, reports; nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import time
import warnings
from typing import Any, get_args

from ._version import __version__
from .choices import Layout, PresetName, SelectRule
from .errors import (
    ArchiveError,
    DatabaseError,
    DatabaseFileError,
    DatabaseFileNotFoundError,
    DownloadError,
    OutputError,
    ParameterError,
    XcoactError,
)

#: One number as a shell user writes it: 40, -40, +4.5, .5, 5., 1e1, -2.5E-1.
_NUMBER = r"\s*[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*"
_COORD = re.compile(rf"^{_NUMBER},{_NUMBER},{_NUMBER}$")


def _get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xcoact",
        description="Meta-analytic coactivation maps (Neurosynth-exact) from a coordinate database.",
    )
    parser.add_argument("--version", action="version", version=f"xcoact {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    co = sub.add_parser(
        "coactivation",
        help="maps of the studies that activate a seed vs all other studies",
        description=(
            "Select the studies whose activation covers more than THRESHOLD of the seed, compare them voxel by "
            "voxel with all other studies, and write the nine maps as {outroot}_{name}.nii.gz."
        ),
    )
    co.add_argument(
        "--seed",
        action="append",
        required=True,
        metavar="ROI.nii.gz|X,Y,Z",
        help="an ROI image, or MNI coordinates x,y,z; repeated coordinates form one seed (as in "
        "Neurosynth) unless --separate; repeated images are separate seeds",
    )
    co.add_argument(
        "--threshold",
        default=None,
        help="--select overlap: proportion of the seed a study must exceed (e.g. 0.1), or an integer voxel "
        "count (default 0.0)",
    )
    co.add_argument(
        "--preset",
        choices=get_args(PresetName),
        default="neurosynth",
        help="reproduce Neurosynth 0.3.8 (default; see docs/semantics.md) or NiMARE 0.22.1's MKDAChi2 MACM "
        "(kernel r = 10 mm, "
        "NiMARE's mask, focus-in-ROI selection, NiMARE's map names)",
    )
    co.add_argument(
        "--select",
        choices=get_args(SelectRule),
        default=None,
        help="study-selection rule (default: the preset's): overlap = activation covers more than --threshold "
        "of the seed (Neurosynth); focus = a reported peak inside the seed (NiMARE); distance = a peak "
        "within --r mm of a seed coordinate; nearest = the --k studies with the nearest peaks",
    )
    co.add_argument("--k", type=int, default=None, help="--select nearest: how many studies to select")
    co.add_argument(
        "--fwe",
        default=None,
        metavar="N|bonferroni",
        help="also write family-wise error corrected maps: N permutation iterations (e.g. 1000) or bonferroni",
    )
    co.add_argument("--fwe-seed", type=int, default=None, help="random seed of the --fwe permutations (reproducible)")
    co.add_argument("--r", type=float, default=6.0, help="sphere radius in mm for coordinate seeds (default 6)")
    co.add_argument("--outroot", required=True, help="output prefix: files are {outroot}_{name}.nii.gz")
    co.add_argument(
        "--database",
        default=None,
        help="coordinate database (Neurosynth, v7, Sleuth or NiMARE JSON); the bundled 100-study sample if omitted",
    )
    co.add_argument(
        "--kernel-r",
        type=float,
        default=None,
        help="radius in mm of each peak's sphere in the database (default: the preset's, 6 for Neurosynth)",
    )
    co.add_argument(
        "--kernel",
        choices=("mkda", "ale"),
        default="mkda",
        help="mkda (default): binary spheres and chi-square maps; ale: an ALE MACM, the ALE of the selected "
        "studies (NiMARE 0.22.1's ALE), written as {outroot}_stat, _p and _z.nii.gz",
    )
    size = co.add_mutually_exclusive_group()
    size.add_argument(
        "--sample-size",
        type=float,
        default=None,
        metavar="N",
        help="--kernel ale: one sample size for every study (default: each study's, from the database)",
    )
    size.add_argument(
        "--fwhm", type=float, default=None, metavar="MM", help="--kernel ale: one kernel FWHM in mm for every study"
    )
    co.add_argument("--q", type=float, default=0.01, help="FDR rate (default 0.01)")
    co.add_argument("--prior", type=float, default=0.5, help="uniform prior for the *_given_pF maps (default 0.5)")
    co.add_argument("--overwrite", action="store_true", help="replace existing output files")
    co.add_argument("--separate", action="store_true", help="each coordinate is its own seed (a batch)")
    co.add_argument("--by-label", action="store_true", help="the seed image is an atlas: one seed per positive label")
    co.add_argument(
        "--labels", default=None, metavar="LUT", help="label names for --by-label: a text file of 'value name' lines"
    )
    co.add_argument(
        "--netcdf", default=None, metavar="PATH", help="also write every map and the provenance to this netCDF file"
    )
    co.add_argument(
        "--zarr", default=None, metavar="PATH", help="also write every map and the provenance to this Zarr store"
    )
    co.add_argument("--no-nifti", action="store_true", help="write no NIfTI files (use with --netcdf or --zarr)")
    co.add_argument(
        "--plot",
        action="store_true",
        help="also draw the association z map (slices and glass brain; a batch as small multiples) to {outroot}.png",
    )
    co.add_argument(
        "--layout",
        choices=get_args(Layout),
        default="volume",
        help="batch maps over x, y, z (default) or over the in-mask voxels only (faster, 4x smaller)",
    )
    co.add_argument(
        "--float32",
        action="store_true",
        help="store the maps as float32, the precision of the NIfTI files (default float64)",
    )
    _add_progress_flags(co, "a progress bar")
    _add_sharing_commands(sub)
    from .analyses.parcellate import add_cli as _add_parcellate

    _add_parcellate(sub)
    return parser


#: Exit status of a run that failed on its data (a database or release that cannot be read or obtained);
#: argparse's 2 and every other refused run (bad arguments, missing input files, outputs in the way) exit 2.
EXIT_DATA = 1
EXIT_USAGE = 2


def _add_progress_flags(p: argparse.ArgumentParser, what: str = "progress") -> None:
    bar = p.add_mutually_exclusive_group()
    help_on = f"show {what} (default: when stderr is a terminal)"
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help=help_on)
    bar.add_argument("--no-progress", dest="progress", action="store_false", help=f"never show {what}")


def _add_sharing_commands(sub) -> None:
    """The ``fetch``, ``report`` and ``matrix`` subcommands."""
    fe = sub.add_parser(
        "fetch",
        help="download (once) and verify a Neurosynth or NeuroQuery release into the cache",
        description="Download a release's files (checksum-verified, resumable, cached) and convert its coordinates "
        "to netCDF once; prints the paths. Offline: --base-url (or $XCOACT_MIRROR) names a mirror "
        "directory or URL holding <dataset>-v<version>/<file>.",
    )
    fe.add_argument("dataset", choices=("neurosynth", "neuroquery"), help="which release")
    fe.add_argument(
        "--version",
        dest="release_version",
        type=int,
        default=None,
        help="release version (default: 7 for neurosynth, 1 for neuroquery)",
    )
    fe.add_argument("--data-dir", default=None, help="cache root (default: $XCOACT_DATA, else ~/.cache/xcoact)")
    fe.add_argument(
        "--vocab",
        default=None,
        help="features to fetch too (default: the dataset's; 'none' for coordinates and metadata only)",
    )
    fe.add_argument("--source", default="abstract", help="text the features come from (default abstract)")
    fe.add_argument("--base-url", default=None, help="a mirror: https:// URL, file:// URL or local directory")
    fe.add_argument("--manifest", default=None, help="a checksum manifest instead of the bundled one")
    fe.add_argument("--retries", type=int, default=3, help="retries of a dropped connection (default 3)")
    fe.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry (default 60)")
    fe.add_argument("--no-convert", action="store_true", help="do not convert the coordinates to netCDF now")
    _add_progress_flags(fe)

    rp = sub.add_parser(
        "report",
        help="write the HTML report of maps saved with --netcdf or --zarr",
        description="Read a result written by 'xcoact coactivation --netcdf' (or --zarr, to_netcdf, to_zarr) and write "
        "a self-contained HTML report: parameters, counts, figure, cluster table, methods (of a parcellation saved "
        "with xcoact.to_netcdf: the labels per K, the criteria per K and the suggested K).",
    )
    rp.add_argument("maps", metavar="MAPS.nc", help="the netCDF file (or Zarr store) of a result")
    rp.add_argument("-o", "--output", required=True, metavar="REPORT.html", help="the HTML file to write")
    rp.add_argument(
        "--map",
        default=None,
        help="the map of the figure and the cluster table (default: the corrected association z map)",
    )
    rp.add_argument("--seed", dest="report_seed", default=None, help="for a batch: the seed to report")
    rp.add_argument("--threshold", type=float, default=None, help="display and cluster threshold (default: the map's)")
    rp.add_argument("--metadata", default=None, help="a metadata table with study titles (Neurosynth metadata.tsv.gz)")
    rp.add_argument("--title", default=None, help="the report's heading")
    rp.add_argument("--subpeaks", type=int, default=0, help="secondary peaks per cluster in the table (default 0)")
    rp.add_argument("--min-distance", type=float, default=8.0, help="minimum distance in mm between peaks (default 8)")
    rp.add_argument(
        "--atlas", default=None, metavar="LABELS.nii.gz", help="a label image: the table names each peak's label"
    )
    rp.add_argument(
        "--atlas-labels", default=None, metavar="LUT", help="names of the atlas's values: 'value name' lines"
    )
    rp.add_argument("--overwrite", action="store_true", help="replace an existing report")

    mx = sub.add_parser(
        "matrix",
        help="ROI x ROI coactivation matrix (n_both, phi, association z) to netCDF",
        description="For every pair of seeds, the studies active in both (a study is active in a seed when it covers "
        "more than THRESHOLD of it), the phi coefficient and the association z; written to netCDF.",
    )
    mx.add_argument(
        "--seed",
        action="append",
        required=True,
        metavar="ROI.nii.gz|X,Y,Z",
        help="an ROI image or MNI coordinates x,y,z; repeat for each ROI (coordinates are separate ROIs), or "
        "one atlas image with --by-label",
    )
    mx.add_argument("-o", "--output", required=True, metavar="MATRIX.nc", help="the netCDF file to write")
    mx.add_argument(
        "--threshold", default="0.1", help="proportion of an ROI a study must exceed (default 0.1), or a voxel count"
    )
    mx.add_argument("--r", type=float, default=6.0, help="sphere radius in mm for coordinate seeds (default 6)")
    mx.add_argument("--database", default=None, help="coordinate database; the bundled 100-study sample if omitted")
    mx.add_argument("--kernel-r", type=float, default=None, help="radius in mm of each peak's sphere (default 6)")
    mx.add_argument("--by-label", action="store_true", help="the seed image is an atlas: one ROI per positive label")
    mx.add_argument("--labels", default=None, metavar="LUT", help="label names for --by-label: 'value name' lines")
    mx.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def _rejoin_negative_coords(argv: list[str]) -> list[str]:
    # argparse reads "--seed -40,20,28" as two options; glue such values to their flag.
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        if argv[i] == "--seed" and i + 1 < len(argv) and argv[i + 1].startswith("-") and _COORD.match(argv[i + 1]):
            out.append(f"--seed={argv[i + 1]}")
            next(it, None)
        else:
            out.append(argv[i])
    return out


def _parse_threshold(text: str):

    try:
        return int(text) if re.fullmatch(r"\s*\d+\s*", text) else float(text)
    except ValueError:
        raise ParameterError(
            f"--threshold {text!r} is not a number; expected a proportion like 0.1 or a voxel count like 5."
        ) from None


def _parse_fwe(text: str | None):

    if text is None or text == "bonferroni":
        return text
    if re.fullmatch(r"\s*\d+\s*", text):
        return int(text)
    raise ParameterError(f"--fwe {text!r} is not valid; expected a number of permutations (e.g. 1000) or 'bonferroni'.")


def _parse_seed(values: list[str]):

    coords = [v for v in values if _COORD.match(v)]
    if coords and len(coords) != len(values):
        raise ParameterError(
            f"--seed mixes coordinates and images ({values}); give either x,y,z coordinates or ROI images."
        )
    if coords:
        return [[float(c) for c in v.split(",")] for v in coords]
    for v in values:
        if "," in v and not v.endswith((".nii", ".nii.gz")):
            raise ParameterError(
                f"--seed {v!r} is neither an image path nor x,y,z coordinates (three numbers, e.g. 0,20,28)."
            )
    return values[0] if len(values) == 1 else list(values)


def _fwe_map_names(fwe) -> list[str]:
    """The maps ``--fwe`` adds (at fwe's default alpha, 0.05), so their files are checked before it runs."""
    from .stats.fwe import TESTS

    if fwe is None:
        return []
    if fwe == "bonferroni":
        return [n for t in TESTS for n in (f"{t}-test_p_bonferroni", f"{t}-test_z_bonferroni_0.05")]
    levels = ("voxel", "cluster-size", "cluster-mass")
    return [
        n
        for t in TESTS
        for n in [f"{t}-test_p_FWE-{lv}" for lv in levels]
        + [f"{t}-test_z_FWE-{lv}_0.05" for lv in levels]
        + [f"{t}-test_cluster"]
    ]


def _outputs(args, ds=None, fwe=None) -> list[tuple[str, str, str]]:
    """Every output of the run as ``(path, kind, label)``; without ``ds`` (maps not known yet) all but the NIfTI."""
    from .writers import _planned_outputs, nifti_paths

    kw = {"netcdf": args.netcdf, "zarr": args.zarr, "png": f"{args.outroot}.png" if args.plot else None}
    if ds is None or args.no_nifti:
        return _planned_outputs(ds, **kw, command_line=True)
    fwe_files = nifti_paths(args.outroot, _fwe_map_names(fwe))
    return _planned_outputs(ds, nifti=args.outroot, **kw, command_line=True) + [
        (path, "file", f"the NIfTI map {name!r}") for name, path in fwe_files.items()
    ]


def _check_outputs(args, ds=None, fwe=None) -> None:
    """Clashes, missing or read-only folders and existing outputs, all before any map is computed."""
    from .writers import _check_folders, check_outputs

    if ds is None and not args.no_nifti:
        # the NIfTI names need the seeds, their folder does not ("out/" as outroot writes out/_pA.nii.gz)
        _check_folders([f"{args.outroot}_"], command_line=True)
    check_outputs(_outputs(args, ds, fwe), overwrite=args.overwrite, command_line=True)


def _coactivation(args) -> int:

    from . import activations, datasets, read_database, seed
    from .writers import write_outputs

    if args.labels and not args.by_label:
        raise ParameterError("--labels names atlas labels and needs --by-label.")
    if args.no_nifti and not (args.netcdf or args.zarr or args.plot):
        raise ParameterError("--no-nifti leaves nothing to write; add --netcdf PATH, --zarr PATH or --plot.")
    ale = args.kernel == "ale"
    if (args.sample_size is not None or args.fwhm is not None) and not ale:
        raise ParameterError("--sample-size and --fwhm size the ALE kernel; add --kernel ale, or drop them.")
    if ale and args.kernel_r is not None:
        raise ParameterError(
            "--kernel-r is a sphere radius; the ALE kernel is sized by --sample-size or --fwhm (or "
            "each study's sample size in the database). Drop --kernel-r."
        )
    _check_outputs(args)  # before the database is read: a typo in a folder fails at once
    database = args.database or datasets.sample_database_path()
    threshold = None if args.threshold is None else _parse_threshold(args.threshold)
    fwe = _parse_fwe(args.fwe)
    seed_arg = _parse_seed(args.seed)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = read_database(database)
        if ale:
            act = activations(db, preset=args.preset, kernel="ale", sample_size=args.sample_size, fwhm=args.fwhm)
        else:
            act = activations(db, r=args.kernel_r, preset=args.preset)
        ds = seed(
            act,
            seed_arg,
            threshold,
            r=args.r,
            q=args.q,
            prior=args.prior,
            by_label=args.by_label,
            labels=args.labels,
            separate=args.separate,
            dtype="float32" if args.float32 else "float64",
            layout=args.layout,
            select=args.select,
            k=args.k,
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    ds.attrs["command"] = args.command_line  # into the sidecars and the netCDF attrs
    print(f"database: {database}{' (bundled sample)' if args.database is None else ''}")
    print(
        f"studies in the database: {db.attrs['n_studies']} ({db.attrs['n_peaks']} peaks, {_kernel_words(act)}, "
        f"preset {args.preset})"
    )
    a = ds.attrs
    if "seed" in ds.dims:
        print(f"seeds: {a['n_seeds']} ({a['n_valid_seeds']} with maps)")
        for name, n_roi, n_sel in list(zip(ds["seed"].values, ds["n_roi"].values, ds["n_selected"].values))[:20]:
            print(f"  {name}: ROI voxels {n_roi}, studies selected {n_sel}")
        if a["n_seeds"] > 20:
            print(f"  ... and {a['n_seeds'] - 20} more")
        print(f"selection rule: {a['selection']}")
    else:
        print(f"seed: {a['seed']}")
        print(f"ROI voxels (in the brain mask): {a['n_roi']}")
        print(f"selection rule: {a['selection']}")
        print(f"studies selected: {a['n_selected']} of {a['n_studies']}")
    if fwe is not None and "seed" in ds.dims:
        raise ParameterError("--fwe applies to one seed; drop --separate/--by-label or run the seeds one by one.")
    _check_outputs(args, ds, fwe)
    show = sys.stderr.isatty() if args.progress is None else args.progress
    with _progress_bar(0.0 if args.progress else 0.5) if show else contextlib.nullcontext():
        if "seed" not in ds.dims:
            ds = ds.compute()  # once, for every writer below
            if fwe is not None:
                from .stats.fwe import fwe as _fwe

                ds = _fwe(ds, act, n_iter=fwe, seed=args.fwe_seed)
                b = ds.attrs
                if b["fwe_method"] == "bonferroni":
                    print(f"FWE: Bonferroni over {b['fwe_n_tested_voxels']} voxels, alpha {b['fwe_alpha']:g}")
                else:
                    print(
                        f"FWE: {b['fwe_n_done']} permutations (seed {b['fwe_seed']}), smallest p {b['fwe_min_p']:.2g}, "
                        f"{b['fwe_seconds']:.1f} s"
                    )
        # every output is written under a temporary name and all are placed together, or none is
        files = write_outputs(
            ds,
            nifti=None if args.no_nifti else args.outroot,
            netcdf=args.netcdf,
            zarr=args.zarr,
            png=f"{args.outroot}.png" if args.plot else None,
            overwrite=args.overwrite,
        )
    print(f"files written ({len(files)}):")
    for f in files[:40]:
        print(f"  {f}")
    if len(files) > 40:
        print(f"  ... and {len(files) - 40} more")
    print(f"done in {time.perf_counter() - t0:.2f} s")
    return 0


def _kernel_words(act) -> str:
    """The cube's kernel for the run's summary line."""
    a = act.attrs
    if a.get("kernel") != "ale":
        return f"kernel r = {a['r']:g} mm"
    if "fwhm" in a and "sample_size" not in a:
        return f"kernel ALE (FWHM {a['fwhm']:g} mm for every study)"
    if isinstance(a.get("sample_size"), float):
        return f"kernel ALE (sample size {a['sample_size']:g} for every study)"
    return "kernel ALE (each study's sample size)"


def _progress_bar(minimum: float):
    from dask.diagnostics import ProgressBar

    # Dask's bar for the threaded scheduler; under dask.distributed use its dashboard or distributed.progress
    return ProgressBar(minimum=minimum, out=sys.stderr)


def _exit_code(err: BaseException) -> int:
    """1 when the data failed (a database or release that cannot be read or obtained), else 2 (usage)."""

    return EXIT_DATA if isinstance(err, (DatabaseError, DownloadError, ArchiveError)) else EXIT_USAGE


def _fetch(args) -> int:
    from .datasets import fetch

    func = fetch.fetch_neurosynth if args.dataset == "neurosynth" else fetch.fetch_neuroquery
    kw: dict[str, Any] = {} if args.vocab is None else {"vocab": None if args.vocab.lower() == "none" else args.vocab}
    if args.release_version is not None:
        kw["version"] = args.release_version
    with _progress_logging(args.progress):
        release = func(
            data_dir=args.data_dir,
            source=args.source,
            base_url=args.base_url,
            manifest=args.manifest,
            convert=not args.no_convert,
            retries=args.retries,
            timeout=args.timeout,
            progress=args.progress,
            **kw,
        )
    print(f"{release.dataset} v{release.version}: {release.directory}")
    for role, path in release.files.items():
        print(f"  {role}: {path}")
    if not args.no_convert:
        print(f"  table (netCDF): {release.table_path}")
    return 0


@contextlib.contextmanager
def _progress_logging(progress: bool | None):
    """Show the fetchers' log lines ("fetching <url>") on stderr when progress is on."""
    if not (sys.stderr.isatty() if progress is None else progress):
        yield
        return
    logger = logging.getLogger("xcoact")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


def _open_result(path: str):
    import xarray as xr

    if not os.path.exists(path):
        raise DatabaseFileNotFoundError(f"{path}: no such file; expected a result written with --netcdf (or --zarr).")
    try:
        if os.path.isdir(path):
            return xr.open_zarr(path).load()
        with xr.open_dataset(path) as ds:
            return ds.load()
    except (OSError, ValueError, KeyError) as err:
        raise DatabaseFileError(
            f"{path}: cannot be read as a result netCDF file or Zarr store ({type(err).__name__}: {err})."
        ) from err


def _report(args) -> int:
    from .report import is_parcellation, report
    from .writers import map_variables

    ds = _open_result(args.maps)
    parcels = is_parcellation(ds)
    if not parcels and not map_variables(ds):
        raise ParameterError(
            f"{args.maps} holds no maps (float (x, y, z) variables); is it a result of xcoact coactivation?"
        )
    options: dict[str, Any] | None = {
        "subpeaks": args.subpeaks,
        "min_distance": args.min_distance,
        "atlas": args.atlas,
        "atlas_labels": args.atlas_labels,
    }
    if parcels:  # only the cluster flags given away from their defaults reach the report, which refuses them
        defaults = {"subpeaks": 0, "min_distance": 8.0, "atlas": None, "atlas_labels": None}
        options = {k: v for k, v in (options or {}).items() if v != defaults[k]} or None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = report(
            ds,
            args.output,
            name=args.map,
            seed=args.report_seed,
            threshold=args.threshold,
            metadata=args.metadata,
            title=args.title,
            overwrite=args.overwrite,
            cluster_options=options,
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"report written: {path}")
    return 0


def _matrix(args) -> int:
    from . import activations, datasets, read_database, to_netcdf
    from .analyses.matrix import matrix

    if os.path.exists(args.output) and not args.overwrite:
        raise OutputError(f"{args.output} already exists; pass --overwrite to replace it.")
    database = args.database or datasets.sample_database_path()
    seeds = _parse_seed(args.seed)
    coords = isinstance(seeds, list) and bool(seeds) and not isinstance(seeds[0], str)
    threshold = _parse_threshold(args.threshold)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        db = read_database(database)
        act = activations(db, r=args.kernel_r)
        m = matrix(
            act,
            seeds if (coords or args.by_label or not isinstance(seeds, str)) else [seeds],
            threshold,
            r=args.r,
            by_label=args.by_label,
            labels=args.labels,
            separate=coords,
        )
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    m.attrs["command"] = args.command_line
    rois = [str(v) for v in m["roi"].values]
    print(f"database: {database}{' (bundled sample)' if args.database is None else ''}")
    print(
        f"ROIs: {len(rois)}; studies active in each: "
        + ", ".join(f"{n} {int(k)}" for n, k in zip(rois[:20], m["n_active"].values))
    )
    written = to_netcdf(m, args.output, overwrite=args.overwrite)
    print(f"matrix written: {written}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xcoact`` command; returns the exit status.

    0 on success; 2 for a usage error (bad arguments, a missing input file, an
    output in the way, a degenerate selection); 1 for a data error (a database
    or release that cannot be read, downloaded or verified).
    """
    import shlex

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _get_parser().parse_args(_rejoin_negative_coords(argv))
    args.command_line = shlex.join(["xcoact", *argv])
    from .analyses.parcellate import run_cli as _parcellate

    handlers = {
        "coactivation": _coactivation,
        "fetch": _fetch,
        "report": _report,
        "matrix": _matrix,
        "parcellate": _parcellate,
    }
    try:
        return handlers[args.command](args)
    except XcoactError as err:
        print(f"xcoact: error: {err}", file=sys.stderr)
        return _exit_code(err)
    except MemoryError:
        # a last line of defence: inputs are bounded where xcoact can see them coming
        print(
            "xcoact: error: out of memory; the database, ROI or radius is too large for this machine. Try a "
            "smaller --r or --kernel-r, a smaller ROI image, or a machine with more memory.",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

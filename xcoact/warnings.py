"""Warning categories, so users can filter xcoact's warnings precisely."""

from __future__ import annotations

import os
import sys

__all__ = [
    "XcoactWarning",
    "SpaceWarning",
    "MixedSpaceWarning",
    "OutOfBoxWarning",
    "OutsideBrainWarning",
    "ResampleWarning",
    "EmptyStudyWarning",
    "DegenerateSeedWarning",
    "LargeRoiWarning",
    "caller_stacklevel",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside xcoact.

    Call it as ``warnings.warn(msg, category, stacklevel=caller_stacklevel())``
    from any depth (a reader, a helper of ``make_table``...): the warning then
    names the user's line, however xcoact's functions called each other.
    """
    frame = sys._getframe(1)  # the function that is about to call warnings.warn
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


class XcoactWarning(UserWarning):
    """Root of xcoact's warnings."""


class SpaceWarning(XcoactWarning):
    """Coordinates in a space xcoact does not know were used untransformed."""


class MixedSpaceWarning(SpaceWarning):
    """One study reports its peaks in more than one space; each row kept its own label's transform."""


class OutOfBoxWarning(XcoactWarning):
    """Peaks or seed coordinates fall outside the grid's box."""


class OutsideBrainWarning(OutOfBoxWarning):
    """Peaks lie far outside any brain (more than 20 mm outside the MNI152 box): likely mistyped rows.

    Raised when the database is read, naming the file lines of the worst
    peaks; such peaks are kept (one bad row must not stop a large database).
    """


class ResampleWarning(XcoactWarning):
    """An ROI on another grid was resampled to the cube's grid."""


class EmptyStudyWarning(XcoactWarning):
    """A study or contrast without any coordinate was left out."""


class DegenerateSeedWarning(XcoactWarning):
    """A seed of a batch selected no study (or every study, or has no voxel); its maps are NaN."""


class LargeRoiWarning(XcoactWarning):
    """A seed covers most of the brain mask (a probabilistic map with a non-zero background, a T1 or brain image)."""

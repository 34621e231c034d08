"""Warning categories, so users can filter xcoact's warnings precisely."""

from __future__ import annotations

__all__ = ["XcoactWarning", "SpaceWarning", "OutOfBoxWarning", "ResampleWarning", "EmptyStudyWarning", "DegenerateSeedWarning"]


class XcoactWarning(UserWarning):
    """Root of xcoact's warnings."""


class SpaceWarning(XcoactWarning):
    """Coordinates in a space xcoact does not know were used untransformed."""


class OutOfBoxWarning(XcoactWarning):
    """Peaks or seed coordinates fall outside the grid's box."""


class ResampleWarning(XcoactWarning):
    """An ROI on another grid was resampled to the cube's grid."""


class EmptyStudyWarning(XcoactWarning):
    """A study or contrast without any coordinate was left out."""


class DegenerateSeedWarning(XcoactWarning):
    """A seed of a batch selected no study (or every study, or has no voxel); its maps are NaN."""

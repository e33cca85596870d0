"""hexrd's adapter registry: ``Registry.adapter_registry`` maps format names to adapter
classes.  A hexrd-style adapter class registered here (by subclassing
:class:`~xrsmap_dask.imageseries.load.ImageSeriesAdapter`) becomes a format that
:func:`xrsmap_dask.imageseries.open` finds."""
from __future__ import annotations


class Registry:
    """Adapter classes by format name (hexrd's ``Registry``)."""

    adapter_registry: dict = {}

    @classmethod
    def register(cls, acls) -> None:
        """Register adapter class ``acls`` under ``acls.format`` (the base class is skipped;
        a later class of the same format replaces the earlier one)."""
        if acls.__name__ != "ImageSeriesAdapter" and acls.format is not None:
            cls.adapter_registry[acls.format] = acls

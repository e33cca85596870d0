"""hexrd's ``load.eiger.decompress_frame``."""
from ..eigerstream import decompress_frame

__all__ = ["decompress_frame"]

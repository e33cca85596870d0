"""hexrd's ``load.metadata.yamlmeta(meta, path=None)``: metadata from a YAML ``meta:``
mapping (``"! load-numpy-array FILE"`` beside ``path``'s directory, then the working
directory; ``'++np.array'`` legacy arrays; unknown ``!`` commands dropped)."""
from .._utils import yaml_meta


def yamlmeta(meta, path=None) -> dict:
    return yaml_meta(meta, None if path is None else str(path))

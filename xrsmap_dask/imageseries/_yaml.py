"""Safe YAML loading for every YAML input (job specs, imageseries YAML).

Only plain YAML is loaded (``yaml.SafeLoader``'s constructor: Python tags refused; libyaml's
parser when PyYAML has it, which is fast and refuses nesting deeper than 1000 levels), and
within bounds, so a hostile document is a quick :class:`~xrsmap_dask.errors.InputError`, never
a memory blow-up or a long stall:

* the document is at most :data:`MAX_YAML_BYTES`;
* aliases may add at most :data:`MAX_ALIAS_NODES` nodes to it when expanded (a "billion
  laughs" alias bomb composes into a small graph of shared nodes, then expands 10^9-fold
  in anything that walks or prints it: it is refused before construction); a recursive alias
  (a node holding itself) is refused;
* nesting deeper than the parser allows is refused.

Error messages name the file (``<yaml text>`` for text) and quote the input cut to a bounded
length.
"""
from __future__ import annotations

import os

import yaml

from ..errors import FrameReadError, InputError, UnsafeInputError, short_repr
from ..io.files import open_regular

#: largest YAML document accepted (bytes)
MAX_YAML_BYTES = 16 << 20
#: most nodes aliases may add to a document when expanded
MAX_ALIAS_NODES = 100_000
_MESSAGE_LIMIT = 300
#: libyaml's parser with the safe constructor (same documents as ``yaml.safe_load``)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_text(name: str) -> str:
    try:
        fd = open_regular(name)
    except FrameReadError as exc:
        raise InputError(exc.reason, path=name) from None
    try:
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            _check_size(size, name)
            data = f.read(size + 1)  # bounded even if the file grows meanwhile
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=name) from None
    _check_size(len(data), name)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", path=name) from None


def _check_size(size: int, name: str) -> None:
    if size > MAX_YAML_BYTES:
        raise InputError(f"YAML document larger than {MAX_YAML_BYTES} bytes", path=name)


def _children(node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_aliases(root, name: str) -> None:
    """Refuse a node graph whose expansion (aliases copied out) exceeds the composed size by
    more than :data:`MAX_ALIAS_NODES`, or that holds itself.  Iterative: O(composed nodes)."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            continue
        if key in size:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                raise InputError("YAML holds a recursive alias (a node that contains itself)",
                                 path=name)
            if id(child) not in size:
                stack.append((child, False))
    if size[id(root)] > len(size) + MAX_ALIAS_NODES:
        raise InputError(f"YAML aliases expand the document to {size[id(root)]} nodes (from "
                         f"{len(size)}; at most {MAX_ALIAS_NODES} more allowed): refused as "
                         "an alias bomb", path=name)


def _message(exc: yaml.YAMLError) -> str:
    text = str(exc)
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "..."


def load_yaml(source, *, is_text: bool = False):
    """Load YAML from a path (or from text with ``is_text=True``), safe constructor only.

    A document holding Python tags (``!!python/object`` ...) raises
    :class:`UnsafeInputError`; invalid, oversized or alias-bomb YAML, a path that is missing
    or not a regular file, and text that is not UTF-8 raise :class:`InputError`; all name
    the file.
    """
    name = "<yaml text>" if is_text else os.fspath(source)
    if is_text:
        _check_size(len(source), name)
        text = source
    else:
        text = _read_text(name)
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node, name)
        return loader.construct_document(node)
    except yaml.constructor.ConstructorError as exc:
        if "constructor for the tag" not in str(exc.problem):
            raise InputError(f"invalid YAML: {_message(exc)}", path=name) from None
        raise UnsafeInputError(f"YAML holds a tag that is not allowed (only plain YAML is "
                               f"loaded, never Python objects): {short_repr(exc.problem, 200)}",
                               path=name) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {_message(exc)}", path=name) from None
    except RecursionError:
        raise InputError("YAML nested too deeply", path=name) from None
    finally:
        loader.dispose()

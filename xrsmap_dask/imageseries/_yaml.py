"""Safe YAML loading for every YAML input (``yaml.safe_load`` only; Python tags refused)."""
from __future__ import annotations

import os

import yaml

from ..errors import InputError, UnsafeInputError


def load_yaml(source, *, is_text: bool = False):
    """Load YAML from a path (or from text with ``is_text=True``) with ``yaml.safe_load``.

    A document holding Python tags (``!!python/object`` ...) raises
    :class:`UnsafeInputError`; invalid YAML raises :class:`InputError`; both name the file.
    """
    name = "<yaml text>" if is_text else os.fspath(source)
    if is_text:
        text = source
    else:
        try:
            with open(name, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise InputError("file not found", path=name) from None
        except (UnicodeDecodeError, OSError) as exc:  # binary content, a directory, ...
            raise InputError(f"not a readable YAML text file: {type(exc).__name__}",
                             path=name) from None
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        raise UnsafeInputError(f"YAML holds a tag that is not allowed (only plain YAML is "
                               f"loaded, never Python objects): {exc.problem}",
                               path=name) from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path=name) from None

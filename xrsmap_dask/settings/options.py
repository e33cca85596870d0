"""The option table: every user-facing setting once, for every face.

An :class:`Option` names a settings field and carries its parse function, default, help
text and how each face spells it: the command-line flag(s) (``--binning``), the YAML key
(``binning``, or ``corrections.mask`` inside a section) and the Python keyword.  The CLI
builds its arguments from this table (:func:`xrsmap_dask.cli`), the job-spec parser takes its
allowed keys from it (:mod:`xrsmap_dask.jobs`) and ``Mapper`` passes its keywords through
the same parse functions, so a new option is one entry here (plus its field in
:class:`~xrsmap_dask.settings.scan_job.ScanJob` when it is a map setting).

Errors raised while parsing name the field (``InputError.argument``); :func:`relabel`
turns that into the face's own words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import InputError
from . import fields as F

#: the faces: CLI map commands (composite, annulus), CLI stats, YAML job specs, Mapper
MAPS, STATS, JOB, MAPPER = "maps", "stats", "job", "mapper"
ALL = frozenset({MAPS, STATS, JOB, MAPPER})
MAP_FACES = frozenset({MAPS, JOB, MAPPER})


@dataclass(frozen=True)
class Context:
    """What parsing needs besides the value: the directory relative paths start from."""

    base_dir: str | None = None


@dataclass(frozen=True)
class Option:
    """One setting.

    Parameters
    ----------
    name : str
        Field name, YAML key (inside ``section``) and ``Mapper`` keyword (unless
        ``keyword`` differs).
    parse : callable
        ``parse(value, ctx) -> value``; raises :class:`InputError` naming ``name``.
    help : str
        One line for ``--help`` and the docs.
    default : object
        Value when not given.
    flags : tuple of str
        Command-line flags (empty: not on the command line).
    text : callable
        Command-line string(s) -> Python value, before ``parse`` (``int``, ``float``...).
    cli : mapping
        Extra ``argparse.add_argument`` keywords (``nargs``, ``metavar``, ``action``...).
    section : str, optional
        YAML sub-mapping holding the key (``corrections``).
    faces : frozenset
        Faces that accept the option.
    keyword : str, optional
        ``Mapper`` keyword when it differs from ``name``.
    flag_help : str, optional
        ``--help`` text when the flag reads differently from the setting
        (``--no-composite``).
    reader : bool
        The option is a keyword of the input readers: it travels with the resolved inputs
        (:func:`read_options`) to every image-series format that accepts it.
    """

    name: str
    parse: Callable[[Any, Context], Any]
    help: str
    default: Any = None
    flags: tuple[str, ...] = ()
    text: Callable[[Any], Any] = lambda value: value
    cli: Mapping[str, Any] = field(default_factory=dict)
    section: str | None = None
    faces: frozenset = MAP_FACES
    keyword: str | None = None
    flag_help: str | None = None
    reader: bool = False

    def label(self, face: str) -> str:
        """How ``face`` spells this option."""
        if face in (MAPS, STATS) and self.flags:
            return self.flags[0]
        if face == JOB and self.section:
            return f"{self.section}.{self.name}"
        if face == MAPPER and self.keyword:
            return self.keyword
        return self.name


# -- command-line text converters ------------------------------------------------------------
def _int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text  # the parse function reports it with the same words as other faces


def _float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _auto_or_int(text: str) -> Any:
    return text if text == "auto" else _int(text)


def _ints(texts) -> Any:
    return [_int(t) for t in texts]


def _one_or_two(texts) -> Any:
    """``--motor-positions``: one table file, or two HDF5 datasets."""
    return texts[0] if len(texts) == 1 else list(texts)


def _floats(texts) -> Any:
    return [_float(t) for t in texts]


# -- parse adapters ------------------------------------------------------------------------------
def _path_of(name: str) -> Callable[[Any, Context], Any]:
    def parse(value, ctx):
        return F.parse_image(value, name, ctx.base_dir)

    return parse


def _frames_of(name: str) -> Callable[[Any, Context], Any]:
    def parse(value, ctx):
        from ..inputs import resolve_inputs

        if value is None or value == [] or value == ():
            return ()
        return resolve_inputs(value, ctx.base_dir, argument=name).paths

    return parse


def _plain(func: Callable[[Any], Any]) -> Callable[[Any, Context], Any]:
    return lambda value, ctx: func(value)


def _bool(name: str) -> Callable[[Any, Context], Any]:
    return lambda value, ctx: F.parse_bool(value, name)


def _int_field(name: str) -> Callable[[Any, Context], Any]:
    return lambda value, ctx: F.parse_int(value, name)


def _stats(value, ctx):
    from .specs import parse_stats

    return parse_stats(value)


def _rings(value, ctx):
    from .specs import parse_rings

    return parse_rings(value)


def _missing_chunks(value, ctx):
    from ..imageseries.zarrseries import parse_missing_chunks

    return parse_missing_chunks(value)


def _invalid(value, ctx):
    from ..invalid import parse_invalid

    return parse_invalid(value)


def _invalid_text(texts) -> Any:
    """``--invalid auto`` / ``none`` / ``V [V ...]`` (ints, or floats) as the YAML value."""
    if len(texts) == 1 and texts[0] in ("auto", "none"):
        return texts[0]
    return [_int(t) if isinstance(_int(t), int) else _float(t) for t in texts]


def _poni(value, ctx):
    from ..geometry import parse_poni

    if value is None:
        return None
    return parse_poni(F.resolve_path(value, "poni", ctx.base_dir, must_exist=True))


def _geometry_field(name: str) -> Callable[[Any, Context], Any]:
    """Adapter calling the parse function of ``name`` in the module that uses it (imported
    when called: :mod:`xrsmap_dask.geometry` and friends import :mod:`.fields`)."""
    def parse(value, ctx):
        from .. import geometry as G
        from .. import radial as R
        from ..maps import coords as C
        from .geometry_settings import parse_centre_coordinate

        funcs = {"unit": G.parse_unit, "chi": G.parse_chi_sector,
                 "polarization": G.parse_polarization, "solid_angle": G.parse_solid_angle,
                 "radial_bins": R.parse_radial_bins, "radial_range": R.parse_radial_range,
                 "step": C.parse_step, "origin": C.parse_origin,
                 "position_units": C.parse_position_units,
                 "cen_y": lambda v: parse_centre_coordinate(v, "cen_y"),
                 "cen_x": lambda v: parse_centre_coordinate(v, "cen_x"),
                 "motor_positions": lambda v: C.parse_motor_positions(v, ctx.base_dir)}
        return funcs[name](value)

    return parse


def _background_pct(value, ctx):
    return None if value is None else F.parse_percent(value, "background_pct")


OPTIONS: tuple[Option, ...] = (
    # scan
    Option("npt_y", _int_field("npt_y"), "scan points along y (map rows, slow axis)",
           flags=("--npt-y",), text=_int), 
    Option("npt_x", _int_field("npt_x"), "scan points along x (map columns, fast axis)",
           flags=("--npt-x",), text=_int),
    Option("scan_order", _plain(F.parse_scan_order), "point order: raster (row-major, x "
           "fastest), snake or column (y fastest)", "raster", flags=("--scan-order",),
           cli={"choices": F.SCAN_ORDERS}, faces=frozenset({MAPS, JOB})),
    Option("allow_incomplete", _bool("allow_incomplete"), "accept fewer frames than scan "
           "points (an interrupted scan): the points no frame reaches are NaN", False,
           flags=("--allow-incomplete",), cli={"action": "store_const", "const": True}),
    # what to compute
    Option("roi", _plain(F.parse_roi), "xrsmap ROI X0 Y0 X1 Y1, bounds inclusive, rows from "
           "the top (default: whole frame)", flags=("--roi",), text=_ints,
           cli={"nargs": 4, "metavar": ("X0", "Y0", "X1", "Y1")}, faces=ALL),
    Option("roi_origin", _plain(F.parse_roi_origin), "'lower': Y counted from the bottom "
           "row (fabio's legacy convention)", "upper", flags=("--roi-origin",),
           cli={"choices": F.ROI_ORIGINS}, faces=ALL),
    Option("binning", _plain(F.parse_binning), "sum of b x b blocks; must divide the ROI", 1,
           flags=("--binning",), text=_int),
    Option("composite", _bool("composite"), "the composite map (binned ROI per point)", True,
           flags=("--no-composite",), cli={"action": "store_const", "const": False},
           faces=frozenset({MAPS, JOB}), flag_help="only the ROI-sum map, no composite"),
    Option("roi_sum", _bool("roi_sum"), "the ROI-sum map", True, faces=frozenset({JOB})),
    Option("rings", _rings, "annuli {cen_y, cen_x, radius|radii, width} in pixels; without "
           "a centre {radius|radii, width} in the unit of the PONI file (or pixels around "
           "cen_y, cen_x)", faces=frozenset({JOB, MAPPER})),
    # detector geometry: rings and radial bins in physical units (docs/geometry.md)
    Option("poni", _poni, "pyFAI PONI file: rings and radial bins in its units (q, 2theta, "
           "r_mm...), tilts and the detector's mask from it", flags=("--poni",),
           cli={"metavar": "FILE"}),
    Option("unit", _geometry_field("unit"), "radial unit of rings and bins: pixel, q_nm^-1, "
           "q_A^-1, 2th_deg, 2th_rad, r_mm, d*2_A^-2 (default: q_nm^-1 with a PONI file, "
           "else pixel)", flags=("--unit",), cli={"metavar": "UNIT"}),
    Option("cen_y", _geometry_field("cen_y"), "centre row of rings and radial bins in pixels "
           "(without a PONI file)", flags=("--cen-y",), text=_float),
    Option("cen_x", _geometry_field("cen_x"), "centre column of rings and radial bins in "
           "pixels (without a PONI file)", flags=("--cen-x",), text=_float),
    Option("radial_bins", _geometry_field("radial_bins"), "number of radial bins: adds the "
           "map 'radial' (bin, y, x) of mean intensity (pyFAI's integrate1d, no pixel "
           "splitting) from the same read", flags=("--radial-bins",), text=_int,
           cli={"metavar": "N"}),
    Option("radial_range", _geometry_field("radial_range"), "bin range LO HI in the unit "
           "(default: min..max of the unmasked pixels)", flags=("--radial-range",),
           text=_floats, cli={"nargs": 2, "metavar": ("LO", "HI")}),
    Option("chi", _geometry_field("chi"), "azimuthal sector START STOP in degrees (pyFAI's "
           "chi, bounds inclusive) for rings and bins", flags=("--chi",), text=_floats,
           cli={"nargs": 2, "metavar": ("START", "STOP")}),
    Option("solid_angle", _geometry_field("solid_angle"), "bin means corrected for the "
           "pixels' solid angle (needs a PONI file)", False, flags=("--solid-angle",),
           cli={"action": "store_const", "const": True}),
    Option("polarization", _geometry_field("polarization"), "bin means corrected for "
           "polarization with this factor in [-1, 1] (needs a PONI file)",
           flags=("--polarization",), text=_float, cli={"metavar": "F"}),
    # scan coordinates of the outputs
    Option("step", _geometry_field("step"), "scan step DY DX: y/x coordinates origin + "
           "index x step (default: point indices)", flags=("--step",), text=_floats,
           cli={"nargs": 2, "metavar": ("DY", "DX")}),
    Option("origin", _geometry_field("origin"), "position Y0 X0 of scan point (0, 0) (with "
           "step; default 0 0)", flags=("--origin",), text=_floats,
           cli={"nargs": 2, "metavar": ("Y0", "X0")}),
    Option("position_units", _geometry_field("position_units"), "units of the scan "
           "positions (default mm)", flags=("--position-units",), cli={"metavar": "UNITS"}),
    Option("motor_positions", _geometry_field("motor_positions"), "measured positions: a "
           ".npy/.csv table of (y, x) per frame, or two HDF5 datasets file.h5:/y file.h5:/x",
           flags=("--motor-positions",), text=_one_or_two,
           cli={"nargs": "+", "metavar": "FILE"}),
    Option("stats", _stats, "pixel-wise statistics over all frames: max, min, mean, median, "
           "{percentile: Q}", faces=frozenset({JOB, STATS})),
    # corrections
    Option("mask", _path_of("mask"), "mask image (image file, .npy or file.h5:/path), "
           "nonzero = pixel excluded",
           flags=("--mask",), section="corrections", faces=ALL),
    Option("detector_mask", _bool("detector_mask"), "apply the detector's own pixel mask "
           "(NeXus/Eiger pixel_mask) on top of mask", True, flags=("--no-detector-mask",),
           cli={"action": "store_const", "const": False}, section="corrections", faces=ALL,
           flag_help="do not apply the detector's own pixel mask (NeXus/Eiger pixel_mask)"),
    Option("invalid", _invalid, "pixels holding a detector's reserved values, excluded in "
           "the frames holding them: auto (unsigned data: the dtype's all-ones value, e.g. "
           "Eiger gaps 4294967295, saturated uint16 65535 too; signed: negative values, "
           "Pilatus -1/-2; float: none), none, or the values", "auto", flags=("--invalid",),
           text=_invalid_text, cli={"nargs": "+", "metavar": "auto|none|V"}, faces=ALL),
    Option("dark", _path_of("dark"), "image subtracted first", flags=("--dark",),
           section="corrections"),
    Option("flat", _path_of("flat"), "image divided next", flags=("--flat",),
           section="corrections"),
    Option("background", _frames_of("background"), "background frames (their mean is "
           "subtracted, or see the background method)", flags=("--background",),
           cli={"nargs": "+", "metavar": "FILE"}, section="corrections",
           keyword="back_files"),
    Option("background_method", _plain(lambda v: F.parse_choice(
        v, "background_method", F.BACKGROUND_METHODS)),
        "how the background frames are combined (exact)", "mean",
        flags=("--background-method",), cli={"choices": F.BACKGROUND_METHODS},
        section="corrections"),
    Option("background_pct", _background_pct, "with the percentile background method: Q in "
           "[0, 100]", flags=("--background-pct",), text=_float, cli={"metavar": "Q"},
           section="corrections"),
    Option("norm", lambda v, ctx: F.parse_norm(v, ctx.base_dir), ".npy or text file (or "
           "array): one value per frame, divided", flags=("--norm",), section="corrections"),
    Option("dummy", _plain(F.parse_dummy), "composite value of masked pixels and unreadable "
           "frames", 0.0, flags=("--dummy",), text=_float, section="corrections"),
    Option("dtype", _plain(F.parse_dtype), "working and composite float dtype", "float32",
           flags=("--dtype",), section="corrections"),
    # reading
    Option("on_error", _plain(F.parse_on_error), "unreadable frame: stop with an error "
           "(raise), or fill it with NaN and list it (fill)", "raise", flags=("--on-error",),
           cli={"choices": F.ON_ERROR}, faces=ALL),
    Option("missing_chunks", _missing_chunks, "a zarr chunk never written: a bad frame "
           "(error), or the array's fill value (fill-value: stores written with "
           "write_empty_chunks=False)", "error", flags=("--missing-chunks",),
           cli={"choices": ("error", "fill-value")}, faces=ALL, reader=True),
    Option("frames_per_chunk", _plain(F.parse_frames_per_chunk), "frames read by one task "
           "('auto': about 32 MiB)", "auto", flags=("--frames-per-chunk",),
           text=_auto_or_int),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


def read_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The reader keywords among parsed ``values`` (options marked ``reader``) whose value
    differs from the default: passed to the image-series formats that accept them."""
    return {o.name: values[o.name] for o in OPTIONS
            if o.reader and o.name in values and values[o.name] != o.default}


def options_for(face: str) -> tuple[Option, ...]:
    """The options ``face`` accepts, in table order."""
    return tuple(o for o in OPTIONS if face in o.faces)


def parse_values(raw: Mapping[str, Any], face: str, ctx: Context = Context(),
                 from_text: bool = False, defaults: bool = True) -> dict[str, Any]:
    """Parse ``raw`` ({option name: value}) with each option's parse function.

    Every option of ``face`` gets a value (its default when absent from ``raw``; defaults
    are not parsed), or only those in ``raw`` when ``defaults`` is false.  ``from_text``: values are command-line strings, converted by each
    option's ``text`` first.  Errors name the field; the face relabels them
    (:func:`relabel`).
    """
    out: dict[str, Any] = {}
    for opt in options_for(face):
        if opt.name not in raw:
            if defaults:
                out[opt.name] = opt.default
            continue
        value = raw[opt.name]
        if from_text and value is not None and value is not True and value is not False:
            value = opt.text(value)
        out[opt.name] = opt.parse(value, ctx)
    return out


_MARKER = re.compile(r"@\{(\w+)\}")


def label(name: str, face: str, aliases: Mapping[str, str] | None = None) -> str:
    """How ``face`` spells field ``name``: ``aliases`` first (a face's names for what is
    not in the option table, e.g. the CLI's ``INPUT``), then the option table, else the
    name itself."""
    if aliases and name in aliases:
        return aliases[name]
    opt = BY_NAME.get(name)
    return opt.label(face) if opt else name


def relabel(exc: InputError, face: str, where: Callable[[str], str] | None = None,
            path: str | None = None, aliases: Mapping[str, str] | None = None) -> InputError:
    """``exc`` with its field names in ``face``'s words.

    The argument (a field name) becomes the face's label (``where(label)`` when given, e.g.
    ``scan 'a', key 'binning'``); ``@{field}`` markers in the reason likewise.  ``path``
    replaces the error's file (a job spec's YAML), the original file then joining the
    reason.
    """
    reason = _MARKER.sub(lambda m: label(m.group(1), face, aliases), exc.reason)
    argument = exc.argument
    if argument is not None:
        argument = label(argument, face, aliases)
        if where is not None:
            argument = where(argument)
    file = exc.path
    if path is not None and file is not None and file != path:
        reason = f"{reason}: {file}"
    return exc.replaced(reason=reason, path=path if path is not None else file,
                        argument=argument)

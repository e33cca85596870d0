"""Validated, frozen job settings shared by the CLI, YAML job specs and ``Mapper``.

* :mod:`.fields` — one ``parse_<field>(value)`` function per field (the single place each
  rule is checked: on_error, ROI order, binning, background method, ...);
* :mod:`.options` — the option table: each setting once, with its parse function, default,
  help, command-line flags, YAML key and Python keyword; faces build themselves from it;
* :mod:`.specs` — small settings objects (statistics requests, background, corrections);
* :mod:`.scan_job` — :class:`ScanJob` and :class:`StatsJob`, built by every face from the
  parsed option values.

How to add an option: see ``docs/ARCHITECTURE.md``.
"""
from .fields import parse_background_method, parse_frames_per_chunk, parse_on_error
from .options import OPTIONS, Context, Option, options_for, parse_values, relabel
from .scan_job import (ScanJob, StatsJob, XrsmapRoi, corrections_from_values,
                       scan_job_from_values, stats_job_from_values)
from .specs import BackgroundSpec, CorrectionSpec, StatRequest, parse_rings, parse_stats

__all__ = ["OPTIONS", "Option", "Context", "options_for", "parse_values", "relabel",
           "ScanJob", "StatsJob", "XrsmapRoi", "BackgroundSpec", "CorrectionSpec",
           "StatRequest", "parse_rings", "parse_stats", "parse_on_error",
           "parse_background_method", "parse_frames_per_chunk", "corrections_from_values",
           "scan_job_from_values", "stats_job_from_values"]

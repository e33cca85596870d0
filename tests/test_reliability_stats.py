"""Bad percentiles (issue 7): ``q`` outside [0, 100] through every face.

The table exercises ``stats.percentile``, ``imageseries.stats.percentile``, the background
estimate (``stats.background``, ``Mapper(background=...)``), ``xrsmap-dask stats`` and the job
spec's ``stats`` key.  The harness is in ``_reliability.py``.
"""
from __future__ import annotations

import textwrap

import _reliability
from _reliability import NX, NY, CaseTable, bad_input_test, cli, jobs, mapper_out, p
from xrsmap_dask import imageseries, stats

# the harness fixtures these tests take (pytest finds fixtures by name in the module)
env, scan = _reliability.env, _reliability.scan

CASES = CaseTable()
case = CASES.case


# -- percentile outside [0, 100] -----------------------------------------------------------
for _q in (101, -1, [5, 100.5], float("nan")):
    def _make(q):
        def setup(env):
            ims = imageseries.from_files(env.files)
            return lambda: stats.percentile(ims, q), r"argument 'q'.*\[0, 100\]"
        return setup
    case(f"percentile-{_q}/stats")(_make(_q))


@case("percentile-150/imageseries.stats")
def _(env):
    from xrsmap_dask.imageseries import stats as istats

    ims = imageseries.from_files(env.files)
    return lambda: istats.percentile(ims, 150), r"argument 'pct'.*\[0, 100\]"


@case("percentile-101/background")
def _(env):
    return (lambda: stats.background(env.scan.background_files, "percentile", 101),
            r"argument '(q|pct)'.*\[0, 100\]")


@case("percentile-120/mapper-background", output=True)
def _(env):
    return (lambda: mapper_out(env, back_files=env.scan.background_files,
                               background=("percentile", 120)).composite_map(env.files),
            r"argument 'background'.*\[0, 100\].*120")


@case("percentile-101/cli", output=True, cli=True)
def _(env):
    argv = ["stats", *env.files, "--percentile", "101", "-o", env.out, "-q"]
    return lambda: cli.main(argv), r"--percentile.*\[0, 100\].*101"


@case("percentile-101/job-yaml", jobs=True)
def _(env):
    spec = env.write("job.yaml", textwrap.dedent(f"""\
        output: {env.out}
        scans:
          - name: s1
            inputs: {env.scan.directory}/scan_*.edf
            mesh: [{NY}, {NX}]
            stats: [{{percentile: 101}}]
        """))
    return lambda: jobs.load_job(spec), rf"(?=.*{p(spec)})(?=.*key 'stats').*\[0, 100\]"


test_bad_input = bad_input_test(CASES)

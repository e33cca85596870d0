#!/bin/bash
# Start `dask scheduler` and `dask worker`s by hand on the nodes of ONE allocation, then run
# a job spec on them.  Use this where dask-jobqueue cannot submit jobs (no sbatch/qsub on
# compute nodes, or a site that wants one big allocation).
#
#   salloc -N 4 --ntasks-per-node=1 --cpus-per-task=32 --time=04:00:00
#   bash deploy/start_dask_manual.sh survey.yaml
# or inside a batch script (SLURM: srun is used; PBS: pbsdsh, see LAUNCH below).
#
# The scheduler runs here (first node) and writes a scheduler file on a shared file system;
# the workers and the xrsmap-dask client find it there, so no port has to be known.
set -euo pipefail

JOB=${1:?usage: start_dask_manual.sh JOB.yaml}
VENV=${VENV:-$HOME/xrsmap-env}
WORKDIR=${WORKDIR:-$PWD/dask-$(date +%Y%m%d-%H%M%S)-$$}     # must be on a shared FS
THREADS=${THREADS:-4}                                     # threads per worker process
NWORKERS=${NWORKERS:-$(( ${SLURM_CPUS_PER_TASK:-${NCPUS:-8}} / THREADS ))}  # per node
MEMORY=${MEMORY:-auto}                                     # per worker process
INTERFACE=${INTERFACE:-}                                   # e.g. ib0
SCHED_FILE="$WORKDIR/scheduler.json"

source "$VENV/bin/activate"
mkdir -p "$WORKDIR"
iface=${INTERFACE:+--interface $INTERFACE}

# Scheduler: reachable from the other nodes (interface), dashboard on loopback only
# (open it with `ssh -L 8787:127.0.0.1:8787 <this node>`).
dask scheduler --scheduler-file "$SCHED_FILE" $iface \
    --dashboard-address 127.0.0.1:8787 > "$WORKDIR/scheduler.log" 2>&1 &
SCHED_PID=$!
cleanup() {
    [ -n "${WORKERS_PID:-}" ] && kill "$WORKERS_PID" 2>/dev/null || true
    kill "$SCHED_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for _ in $(seq 60); do [ -s "$SCHED_FILE" ] && break; sleep 1; done
[ -s "$SCHED_FILE" ] || { echo "scheduler did not start; see $WORKDIR/scheduler.log" >&2; exit 1; }

# One `dask worker` launcher per node of the allocation.
if [ -n "${SLURM_JOB_ID:-}" ]; then
    LAUNCH=(srun --ntasks-per-node=1 --kill-on-bad-exit=0)
elif [ -n "${PBS_NODEFILE:-}" ]; then
    LAUNCH=(pbsdsh -u --)
else
    LAUNCH=()   # no scheduler: a single node (useful for testing this script)
fi
"${LAUNCH[@]}" dask worker --scheduler-file "$SCHED_FILE" $iface \
    --nworkers "$NWORKERS" --nthreads "$THREADS" --memory-limit "$MEMORY" \
    --local-directory "${TMPDIR:-/tmp}" > "$WORKDIR/workers.log" 2>&1 &
WORKERS_PID=$!

xrsmap-dask run "$JOB" --scheduler "$SCHED_FILE"

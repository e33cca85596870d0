#!/bin/bash
# Run an xrsmap-dask survey job spec on PBS Pro / Torque through dask-jobqueue.
#
# The driver job runs the scheduler and submits worker jobs with qsub (as slurm_job.sh).
#
#   qsub -v JOB=$PWD/survey.yaml deploy/pbs_job.sh
#
#PBS -N xrsmap-driver
#PBS -l select=1:ncpus=2:mem=4gb
#PBS -l walltime=12:00:00
#PBS -j oe
set -euo pipefail

cd "${PBS_O_WORKDIR:-$PWD}"
JOB=${JOB:?pass the job spec: qsub -v JOB=/path/survey.yaml pbs_job.sh}
VENV=${VENV:-$HOME/xrsmap-env}
CORES=${CORES:-32}
MEMORY=${MEMORY:-120GiB}
WALLTIME=${WALLTIME:-02:00:00}
QUEUE=${QUEUE:-workq}
ADAPT_MIN=${ADAPT_MIN:-1}
ADAPT_MAX=${ADAPT_MAX:-10}
THREADS=${THREADS:-4}

source "$VENV/bin/activate"
export DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=60s

exec xrsmap-dask run "$JOB" \
    --scheduler pbs \
    --cores "$CORES" --memory "$MEMORY" --walltime "$WALLTIME" --queue "$QUEUE" \
    ${ACCOUNT:+--account "$ACCOUNT"} \
    --threads-per-worker "$THREADS" \
    --adaptive-min "$ADAPT_MIN" --adaptive-max "$ADAPT_MAX"

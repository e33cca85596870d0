#!/bin/bash
# Run an xrsmap-dask survey job spec on SLURM through dask-jobqueue.
#
# This small "driver" job runs the scheduler and submits the worker jobs itself
# (sbatch must be available on the node it runs on: true on most sites; otherwise run the
# driver on a login node with `nohup`).  Workers are scaled adaptively between
# ADAPT_MIN and ADAPT_MAX jobs of CORES cores each; settings not given here come from
# ~/.config/dask/jobqueue.yaml (see deploy/jobqueue.yaml).
#
#   sbatch deploy/slurm_job.sh survey.yaml
#
#SBATCH --job-name=xrsmap-driver
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=12:00:00
#SBATCH --output=xrsmap-driver-%j.log
set -euo pipefail

JOB=${1:?usage: sbatch slurm_job.sh JOB.yaml}
VENV=${VENV:-$HOME/xrsmap-env}
CORES=${CORES:-32}
MEMORY=${MEMORY:-120GiB}
WALLTIME=${WALLTIME:-02:00:00}
QUEUE=${QUEUE:-normal}
ADAPT_MIN=${ADAPT_MIN:-1}
ADAPT_MAX=${ADAPT_MAX:-10}
THREADS=${THREADS:-4}          # threads per dask worker; CORES / THREADS workers per job

source "$VENV/bin/activate"
export DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=60s

# xrsmap-dask turns SIGTERM (sent at the time limit / scancel) into a clean stop: finished
# chunks are kept, the worker jobs are cancelled, and a rerun resumes where it stopped.
exec xrsmap-dask run "$JOB" \
    --scheduler slurm \
    --cores "$CORES" --memory "$MEMORY" --walltime "$WALLTIME" --queue "$QUEUE" \
    ${ACCOUNT:+--account "$ACCOUNT"} \
    --threads-per-worker "$THREADS" \
    --adaptive-min "$ADAPT_MIN" --adaptive-max "$ADAPT_MAX"

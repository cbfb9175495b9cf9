#!/usr/bin/env bash
# Distributed training as one Slurm batch job: `srun fgstp train` with --tasks-per-node tasks on
# each of --nodes nodes, one rank per task (data parallel; Gloo on CPUs, NCCL on GPUs), rank 0's
# store on the job's first node (MASTER_ADDR, from scontrol) at MASTER_PORT = 29500 + job id
# % 1000 (the port fgstp itself derives under srun; the job exports it to show it in the log).
#
#   scripts/slurm/train.sh --config CONFIG [--run-dir DIR] [--nodes 1] [--tasks-per-node 1]
#       [--gpus-per-task 1] [--set KEY=VALUE ...] [--dry-run] [-- SBATCH_OPTION...]
#
# Requeue-safe: the run directory is fixed when the job is submitted (--run-dir DIR, default
# runs/<config stem>-<date>, made absolute). `fgstp train` refuses a directory that holds a run
# (DIR/last.safetensors) unless given --resume DIR, so the job continues DIR's run from its last
# checkpoint (--resume DIR; DIR/config.toml already holds --config and --set) when
# DIR/last.safetensors exists, and starts it (--config CONFIG --set … --run-dir DIR) otherwise.
# A requeued job (-- --requeue) or this script run again with the same --run-dir (--config may
# then be left out) continues the run. DIR must be on a filesystem that every node sees.
#
# srun --kill-on-bad-exit=1 ends the step when one task fails; a rank waiting for the others (to
# start, or a lost one) gives up after train.dist_timeout seconds (default 1800). CPU-only by
# default: each rank uses train.threads threads, else OMP_NUM_THREADS, which the job sets to
# --cpus-per-task when that is given (-- --cpus-per-task=8). --gpus-per-task 1 gives each task a
# GPU (srun --gpu-bind=none: each task sees its node's GPUs of the step and trains on
# cuda:LOCAL_RANK; set train.device to cuda or auto). Log: DIR/logs/slurm-<job id>.out, appended
# to when the job is requeued. Options after `--` go to sbatch (e.g. -- --partition=gpu
# --time=24:00:00 --requeue --signal=TERM@300: on SIGTERM, 300 s before the time limit, every
# rank stops after its step and DIR/last.safetensors is saved; submit again to continue).
# FGSTP names the binary (default: fgstp on PATH). --dry-run prints the sbatch command with its
# job script (as a here-document, runnable as printed) without submitting or creating DIR.
set -euo pipefail

config="" run_dir="" nodes=1 tasks_per_node=1 gpus_per_task=0 mode="submit"
sets=() sbatch_extra=()
die() { echo "train.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --config|--run-dir|--nodes|--tasks-per-node|--gpus-per-task|--set)
      [[ $# -ge 2 && $2 != --* ]] || die "$1 needs a value (see --help)"
      case $1 in
        --config) config=$2 ;;
        --run-dir) run_dir=$2 ;;
        --nodes) nodes=$2 ;;
        --tasks-per-node) tasks_per_node=$2 ;;
        --gpus-per-task) gpus_per_task=$2 ;;
        --set) [[ $2 == ?*=* ]] || die "--set takes KEY=VALUE (e.g. --set train.epochs=5), not $2"
               sets+=(--set "$2") ;;
      esac
      shift 2 ;;
    --dry-run) mode="dry-run"; shift ;;
    --) shift; sbatch_extra=("$@"); break ;;
    -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for opt in nodes tasks_per_node; do
  [[ ${!opt} =~ ^[1-9][0-9]*$ ]] || die "--${opt//_/-} must be a positive number, not ${!opt}"
done
[[ $gpus_per_task =~ ^[0-9]+$ ]] || die "--gpus-per-task must be a number, not $gpus_per_task"
((gpus_per_task <= 1)) || die "--gpus-per-task $gpus_per_task: fgstp trains each rank on one GPU \
(cuda:LOCAL_RANK); give --gpus-per-task 1 and as many --tasks-per-node as GPUs per node"

absolute() { realpath -m -- "$1" 2>/dev/null || { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }; }
if [[ -n $config ]]; then
  [[ -f $config ]] || die "no config file $config"
  config=$(absolute "$config")
  if [[ -z $run_dir ]]; then
    stem=$(basename -- "$config")
    run_dir=runs/${stem%.*}-$(date +%Y%m%d-%H%M%S)
  fi
elif [[ -z $run_dir ]]; then
  die "give --config CONFIG (a new run), or --run-dir DIR of a run to continue"
elif [[ ! -e $run_dir/last.safetensors ]]; then
  die "$run_dir holds no run to continue (no last.safetensors): give --config CONFIG to start one"
else
  config=$(absolute "$run_dir/config.toml")
fi
run_dir=$(absolute "$run_dir")
fgstp=${FGSTP:-fgstp}

# Shell words, quoted for the job's shell.
words() { local quoted; quoted=$(printf ' %q' "$@"); echo "${quoted# }"; }

job_script() {
  local srun=(srun --kill-on-bad-exit=1 --nodes="$nodes" --ntasks=$((nodes * tasks_per_node))
              --ntasks-per-node="$tasks_per_node")
  ((gpus_per_task == 0)) || srun+=(--gpus-per-task="$gpus_per_task" --gpu-bind=none)
  echo '#!/usr/bin/env bash'
  echo "# fgstp train as a Slurm job, made by scripts/slurm/train.sh on $(date '+%Y-%m-%d %H:%M:%S')."
  echo '# Requeue-safe: it continues the run in run_dir when that holds one.'
  echo 'set -euo pipefail'
  echo "run_dir=$(printf %q "$run_dir")"
  cat <<'EOF'
# A launcher's variables left in the submitting shell's environment would win over Slurm's.
unset RANK WORLD_SIZE LOCAL_RANK LOCAL_WORLD_SIZE GROUP_RANK FGSTP_LOCAL_LAUNCH \
  TORCHELASTIC_USE_AGENT_STORE TORCHELASTIC_RESTART_COUNT MASTER_ADDR MASTER_PORT
# Rank 0 (task 0, on the job's first node) hosts the store. Without scontrol, fgstp takes the
# first host of SLURM_STEP_NODELIST itself.
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" 2>/dev/null | awk 'NR == 1') ||
  MASTER_ADDR=""
if [[ -n $MASTER_ADDR ]]; then export MASTER_ADDR; else unset MASTER_ADDR; fi
export MASTER_PORT=$((29500 + SLURM_JOB_ID % 1000))
if [[ -n ${SLURM_CPUS_PER_TASK:-} ]]; then
  export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK # srun 22.05+ does not take it from sbatch
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$SLURM_CPUS_PER_TASK}
fi
echo "job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $SLURM_JOB_NODELIST," \
  "store at ${MASTER_ADDR:-first host of the step}:$MASTER_PORT" >&2
if [[ -e $run_dir/last.safetensors ]]; then
  echo "continuing the run in $run_dir from its last checkpoint" >&2
  train=(--resume "$run_dir")
else
EOF
  echo "  train=($(words --config "$config" "${sets[@]}") --run-dir \"\$run_dir\")"
  echo 'fi'
  echo "${srun[*]} $(printf %q "$fgstp") train \"\${train[@]}\""
}

sbatch=(sbatch --parsable --job-name="fgstp-$(basename -- "$run_dir")" --nodes="$nodes"
        --ntasks-per-node="$tasks_per_node")
((gpus_per_task == 0)) || sbatch+=(--gpus-per-task="$gpus_per_task")
sbatch+=(--output="$run_dir/logs/slurm-%j.out" --open-mode=append "${sbatch_extra[@]}")
if [[ -e $run_dir/last.safetensors ]]; then
  echo "$run_dir holds a run: the job continues it (--resume; --config and --set are not used)" >&2
fi
if [[ $mode == dry-run ]]; then
  printf '%q ' "${sbatch[@]}"
  echo "<<'FGSTP_JOB'"
  job_script
  echo 'FGSTP_JOB'
  exit 0
fi
mkdir -p "$run_dir/logs"
job_id=$(job_script | "${sbatch[@]}")
job_id=${job_id%%;*}
echo "submitted job $job_id: $((nodes * tasks_per_node)) ranks ($nodes node(s) × $tasks_per_node)"
echo "run directory: $run_dir (log: $run_dir/logs/slurm-$job_id.out)"
again=("$0" --config "$config" --run-dir "$run_dir" --nodes "$nodes" --tasks-per-node "$tasks_per_node")
((gpus_per_task == 0)) || again+=(--gpus-per-task "$gpus_per_task")
again+=("${sets[@]}")
((${#sbatch_extra[@]} == 0)) || again+=(-- "${sbatch_extra[@]}")
echo "continue it (after a time limit or a failure) with: $(words "${again[@]}")"

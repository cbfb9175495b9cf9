#!/usr/bin/env bash
# Sharded evaluation as a Slurm job array: N shard jobs, each scoring every N-th video of the
# split (video i, in byte order of names, is in shard i mod N), then one merge job that starts
# only when every shard succeeded (--dependency=afterok) and writes the metrics of the whole
# split — the same JSON, byte for byte, as one unsharded `fgstp eval --json`.
#
#   scripts/slurm/eval-array.sh --config RUN/config.toml --weights RUN/best.safetensors \
#       [--split test] [--shards 8] [--out DIR] [--dry-run | --local] [-- SBATCH_OPTION...]
#
#   scripts/slurm/eval-array.sh --pred 'XMEM_OUT/*' --gt DATA/test \
#       [--pred-kind auto] [--exclude-annotated DIR] [--shards 8] [--out DIR] ...
#                         scores another system's masks the same way (fgstp-score metrics)
#
# Writes under --out (default eval-<date>): states/shard-K.json (each shard's exact metric
# sums), predictions/ (masks/, maps/, overlays/ per video; eval only), logs/, and metrics.json
# from the merge. Each shard writes only its own videos' files and its own state, atomically,
# so a failed shard is rerun alone (`sbatch --array=K …`, or the printed command) and the merge
# resubmitted. Options after `--` go to every sbatch call (e.g. -- --partition=gpu --gres=gpu:1
# --time=02:00:00). FGSTP / FGSTP_SCORE name the binaries (default: fgstp, fgstp-score on PATH).
# --dry-run prints the sbatch commands; --local runs the shards one after another here (to
# check the merge, or without Slurm).
set -euo pipefail

config="" weights="" split="test" shards=4 out="" mode="submit"
pred="" gt="" pred_kind="auto" exclude_annotated=""
sbatch_extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --config) config=$2; shift 2 ;;
    --weights) weights=$2; shift 2 ;;
    --split) split=$2; shift 2 ;;
    --shards) shards=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --pred) pred=$2; shift 2 ;;
    --gt) gt=$2; shift 2 ;;
    --pred-kind) pred_kind=$2; shift 2 ;;
    --exclude-annotated) exclude_annotated=$2; shift 2 ;;
    --dry-run) mode="dry-run"; shift ;;
    --local) mode="local"; shift ;;
    --) shift; sbatch_extra=("$@"); break ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "eval-array.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n $pred ]]; then
  [[ -n $gt ]] || { echo "eval-array.sh: --pred needs --gt" >&2; exit 2; }
elif [[ -z $config || -z $weights ]]; then
  echo "eval-array.sh: give --config and --weights (a model), or --pred and --gt (masks)" >&2
  exit 2
fi
[[ $shards =~ ^[1-9][0-9]*$ ]] || { echo "eval-array.sh: --shards must be a positive number" >&2; exit 2; }
out=${out:-eval-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/states" "$out/logs"
out=$(cd "$out" && pwd)
fgstp=${FGSTP:-fgstp}
score=${FGSTP_SCORE:-fgstp-score}

# The command of shard $1 (a literal task id, or the string $SLURM_ARRAY_TASK_ID).
shard_command() {
  local k=$1 state="$out/states/shard-$1.json"
  if [[ -n $pred ]]; then
    local cmd=("$score" metrics --pred "$pred" --gt "$gt" --pred-kind "$pred_kind")
    [[ -z $exclude_annotated ]] || cmd+=(--exclude-annotated "$exclude_annotated")
  else
    local cmd=("$fgstp" eval --config "$config" --weights "$weights" --split "$split"
               --output "$out/predictions")
  fi
  printf '%q ' "${cmd[@]}"
  # The shard and state are left unquoted for the job's shell to expand $SLURM_ARRAY_TASK_ID.
  printf -- '--shard %s/%s --state %s\n' "$k" "$shards" "$(printf '%q' "$state" | sed 's/\\\$/$/g')"
}

merge_command() {
  local cmd=("$score" metrics merge)
  [[ -n $pred ]] || cmd=("$fgstp" metrics merge)
  for ((k = 0; k < shards; k++)); do cmd+=("$out/states/shard-$k.json"); done
  cmd+=(--json "$out/metrics.json")
  printf '%q ' "${cmd[@]}"
  echo
}

case $mode in
  local)
    for ((k = 0; k < shards; k++)); do
      echo "== shard $k/$shards" >&2
      bash -c "$(shard_command "$k")" >"$out/logs/shard-$k.log"
    done
    echo "== merge" >&2
    bash -c "$(merge_command)" | tee "$out/logs/merge.log"
    ;;
  dry-run|submit)
    array=(sbatch --parsable --job-name=fgstp-shards --array="0-$((shards - 1))"
           --output="$out/logs/shard-%a.log" "${sbatch_extra[@]}"
           --wrap="$(shard_command '$SLURM_ARRAY_TASK_ID')")
    if [[ $mode == dry-run ]]; then
      printf '%q ' "${array[@]}"; echo
      echo "sbatch --parsable --job-name=fgstp-merge --dependency=afterok:<array job id> --output=$(printf '%q' "$out/logs/merge.log") ${sbatch_extra[*]} --wrap=$(printf '%q' "$(merge_command)")"
      exit 0
    fi
    array_id=$("${array[@]}")
    merge_id=$(sbatch --parsable --job-name=fgstp-merge --dependency="afterok:${array_id%%;*}" \
      --output="$out/logs/merge.log" "${sbatch_extra[@]}" --wrap="$(merge_command)")
    echo "submitted shards as job array $array_id (logs: $out/logs/shard-K.log) and the merge as job $merge_id"
    echo "results: $out/metrics.json once job $merge_id finishes"
    echo "rerun a failed shard K: sbatch --array=K … (as above), or: $(shard_command K)"
    ;;
esac

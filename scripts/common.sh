# Shared by train_vtab.sh and train_fgvc.sh (sourced, not run): the model overrides and the launcher.

# model_opts: MODEL.* overrides from METHOD, BACKBONE and MODEL_ROOT.
model_opts=(MODEL.TRANSFER_TYPE "${METHOD:-toast}")
[[ -n "${BACKBONE:-}" ]] && model_opts+=(MODEL.BACKBONE "$BACKBONE")
# A local file (the original release's checkpoints) is fed as the original fed it: ImageNet mean/std.
[[ -n "${MODEL_ROOT:-}" ]] && model_opts+=(MODEL.MODEL_ROOT "$MODEL_ROOT" MODEL.PRETRAINED False DATA.NORMALIZE imagenet)

# launch: plain python for one process, torchrun for NPROC > 1.
if [[ "${NPROC:-1}" -gt 1 ]]; then
  launch=(torchrun --nproc_per_node="$NPROC" -m visual_classification.tune)
else
  launch=(python -m visual_classification.tune)
fi

# is_override_key WORD: whether WORD starts the KEY VALUE overrides (a dotted key, or a top-level config key),
# so that every word before it is a task name, whatever its case (a mistyped name is then named, not run as a key).
is_override_key() {
  [[ "$1" == *.* ]] || grep -qE "^_C\.$1 = " visual_classification/config.py
}

# check_names KIND FOLDER NAME...: stops (exit 2) at a NAME with no FOLDER/NAME.yaml, suggesting the close names.
check_names() {
  local kind="$1" folder="$2" name known close
  shift 2
  for name in "$@"; do
    [[ -f "$folder/$name.yaml" ]] && continue
    known=()
    for f in "$folder"/*.yaml; do
      [[ "$(basename "$f" .yaml)" == base ]] || known+=("$(basename "$f" .yaml)")
    done
    close=$(python -c 'import difflib, sys
name, known = sys.argv[1], sys.argv[2:]
print(", ".join([k for k in known if k.lower() == name.lower()] or difflib.get_close_matches(name.lower(), known)))' \
      "$name" "${known[@]}")
    echo "unknown $kind '$name': no $folder/$name.yaml${close:+; did you mean: $close?} (known: ${known[*]})" >&2
    exit 2
  done
}

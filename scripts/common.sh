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

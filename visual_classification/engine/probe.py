"""The linear probe as the convex problem it is: full-batch L-BFGS on the L2-regularised logistic loss over cached
features (``SOLVER.OPTIMIZER lbfgs``), as scikit-learn's ``LogisticRegression`` solves it.

Mini-batch AdamW for a few epochs stops short of that optimum on small folders (79.9 % where a converged
probe on the same features reaches 96 %); with the features cached the whole train split is one tensor, and
L-BFGS reaches the optimum in tens of iterations. ``SOLVER.WEIGHT_DECAY`` is the L2 strength λ of
``mean CE + λ/2 ‖W‖²`` (the bias is not penalised, as in scikit-learn), chosen on val by ``tune --wds``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ITERS_PER_EPOCH = 20  # L-BFGS iterations per "epoch": evaluation, checkpoints and curves keep their rhythm


def build_lbfgs(params: list[torch.Tensor]) -> torch.optim.LBFGS:
    return torch.optim.LBFGS(params, lr=1.0, max_iter=ITERS_PER_EPOCH, history_size=20, line_search_fn="strong_wolfe")


def l2_penalty(head: nn.Module, weight_decay: float) -> torch.Tensor:
    """λ/2 Σ‖W‖² over the head's matrices (biases are not penalised)."""
    matrices = [p for p in head.parameters() if p.requires_grad and p.ndim > 1]
    return 0.5 * weight_decay * sum(p.pow(2).sum() for p in matrices)


def full_batch_epoch(
    head: nn.Module, optimizer: torch.optim.LBFGS, features: torch.Tensor, labels: torch.Tensor, weight_decay: float
) -> float:
    """``ITERS_PER_EPOCH`` L-BFGS iterations on the whole split; returns the mean cross-entropy afterwards.

    The head runs in eval mode: dropout would make the objective random, and L-BFGS needs a fixed one.
    """
    head.eval()

    def objective() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(features), labels) + l2_penalty(head, weight_decay)
        loss.backward()
        return loss

    optimizer.step(objective)
    with torch.no_grad():
        return F.cross_entropy(head(features), labels).item()


def choose_decay(
    head: nn.Module,
    decays: list[float],
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
) -> tuple[float, dict[float, float]]:
    """The L2 strength λ with the best val top-1 among ``decays`` (ties: the larger λ, the smoother probe), each
    fitted as the run will fit it (``epochs`` × ``ITERS_PER_EPOCH`` iterations from the head's current weights),
    and the score of each. The head is left as it was. Deterministic, so a resumed run chooses the same λ."""
    start = {name: tensor.detach().clone() for name, tensor in head.state_dict().items()}
    scores: dict[float, float] = {}
    for decay in decays:
        head.load_state_dict(start)
        optimizer = build_lbfgs([p for p in head.parameters() if p.requires_grad])
        for _ in range(epochs):
            full_batch_epoch(head, optimizer, *train, decay)
        with torch.no_grad():
            scores[decay] = (head(val[0]).argmax(-1) == val[1]).float().mean().item() * 100
    head.load_state_dict(start)
    best = max(scores, key=lambda decay: (scores[decay], decay))
    return best, scores

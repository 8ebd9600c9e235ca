"""Model soups over the top-k checkpoints of one run (Wortsman et al. 2022).

``best``: the single best checkpoint. ``uniform``: the mean of all k. ``greedy``: from
the best, add each next checkpoint (by validation score) to the uniform average only
if the soup's validation score does not get worse. Works from checkpoint files, so
memory stays at about two models plus the running sum.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .checkpoint import CheckpointRecord, load_state


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform mean of floating tensors; integer buffers come from the first state."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = sum(s[key].double() for s in states).div(len(states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


def make_soup(
    ranked: Sequence[CheckpointRecord],
    method: str,
    evaluate: Callable[[dict[str, torch.Tensor]], float],
    better: Callable[[float, float], bool],
) -> tuple[dict[str, torch.Tensor], dict]:
    """Build the final weights from checkpoints ranked best first.

    Args:
        ranked: checkpoint records, best validation score first.
        method: 'best', 'uniform' or 'greedy'.
        evaluate: validation score of a state dict (used by 'greedy' and 'uniform').
        better: ``better(a, b)`` is True when score a beats score b.

    Returns:
        ``(state, info)``; info lists the members and the soup's validation score.
    """
    best = load_state(ranked[0].path)
    if method == "best" or len(ranked) == 1:
        return best, {"method": method, "members": [ranked[0].step], "score": ranked[0].score}
    if method == "uniform":
        state = average_states([best] + [load_state(r.path) for r in ranked[1:]])
        return state, {"method": method, "members": [r.step for r in ranked], "score": evaluate(state)}
    # greedy: keep a float64 running sum so each candidate is one pass over the weights
    total = {k: v.double() if v.is_floating_point() else v for k, v in best.items()}
    members, score = [ranked[0].step], ranked[0].score
    for rec in ranked[1:]:
        nxt = load_state(rec.path)
        n = len(members) + 1
        candidate = {
            k: ((total[k] + nxt[k].double()) / n).to(best[k].dtype) if best[k].is_floating_point() else best[k]
            for k in best
        }
        cand_score = evaluate(candidate)
        if not better(score, cand_score):  # not worse: keep it in the soup
            for k in total:
                if best[k].is_floating_point():
                    total[k] += nxt[k].double()
            members.append(rec.step)
            score = cand_score
        del nxt, candidate
    n = len(members)
    state = {k: (v / n).to(best[k].dtype) if best[k].is_floating_point() else v for k, v in total.items()}
    return state, {"method": method, "members": members, "score": score}

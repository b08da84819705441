"""The training rows an arm's data becomes: its pairs in file order as TRL rows, chosen and
rejected swapped where it says, each with its weight or ε, in its order when it has one; the key of
that data; and treatments.parquet, what a run wrote of each treated arm."""

from __future__ import annotations

import numpy as np

from ..core.artifacts import stage_key
from ..train.dpo import LossVariant
from ..train.weighted import EPSILON, WEIGHT


def treatments_frame(table, treated: dict):
    """Each pair's id and, per treatment arm, its weight (0: not in the arm's data) and whether its
    chosen and rejected are swapped."""
    out = table[["id", "valid"]].copy()
    for arm, data in treated.items():
        out[f"{arm}:weight"] = data.weight if data.weight is not None else data.mask.astype(float)
        out[f"{arm}:swapped"] = (data.flip if data.flip is not None
                                 else np.zeros(len(table), dtype=bool))
        if data.epsilons is not None:
            out[f"{arm}:epsilon"] = data.epsilons
    return out


def treated_records(pairs, mask: np.ndarray, treated, ids: list, seed: int | None = None,
                    block: int = 1) -> tuple[list[dict], str]:
    """The arm's TRL rows (its pairs in file order, chosen and rejected swapped where it says, each
    with its `pair_weight` when it weights) and the key of that data. An ordered arm's rows are in
    ascending order; with ``seed``, shuffled within consecutive blocks of ``block`` pairs, so that
    the curriculum holds block by block and each training seed still sees its own batches."""
    rows = [i for i, (r, m) in enumerate(zip(pairs.rows, mask)) if m and r.valid]
    records = pairs.records(mask)
    assert len(rows) == len(records) == len(ids)
    for rec, i in zip(records, rows):
        if treated.flip is not None and treated.flip[i]:
            rec["chosen"], rec["rejected"] = rec["rejected"], rec["chosen"]
        if treated.weight is not None:
            rec[WEIGHT] = float(treated.weight[i])
        if treated.epsilons is not None:
            rec[EPSILON] = float(treated.epsilons[i])
    flipped = [r for r, i in zip(ids, rows) if treated.flip is not None and treated.flip[i]]
    weights = ([round(float(treated.weight[i]), 9) for i in rows] if treated.weight is not None
               else None)
    if treated.order is not None:  # ascending, ties in file order (a stable sort)
        ranked = sorted(range(len(rows)), key=lambda j: treated.order[rows[j]])
        if seed is not None and block > 1:
            rng = np.random.default_rng(seed)
            ranked = [j for b in range(0, len(ranked), block)
                      for j in rng.permutation(ranked[b:b + block])]
        records, ids = [records[j] for j in ranked], [ids[j] for j in ranked]
    # (each pair's ε only where the arm has one, so that the other arms' keys stay as they were)
    epsilons = ([round(float(treated.epsilons[i]), 9) for i in rows] if treated.epsilons is not None
                else None)
    return records, stage_key(ids, flipped, weights, *([epsilons] if epsilons is not None else []))


def training_data(pairs, mask: np.ndarray, data, ids: list, seed: int, batch_size: int):
    """(TRL rows, key of that data, loss variant or None) of an arm: its pairs in file order, or,
    with ``data`` (its `ArmData`), with its swaps, weights, loss and order (a curriculum in blocks
    of 4 batches, shuffled within each by ``seed``, so that seeds differ as other arms' do)."""
    if data is None:
        return pairs.records(mask), stage_key(ids), None
    records, data_key = treated_records(pairs, mask, data, ids, seed=seed, block=4 * batch_size)
    variant = None
    if data.loss_type or data.conservative or data.order is not None:
        variant = LossVariant(data.loss_type, data.epsilon, data.conservative,
                              in_order=data.order is not None)
    return records, data_key, variant

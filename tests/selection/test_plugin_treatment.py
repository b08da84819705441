"""docs/guide.md's treatment plugin, as written: one file of the user's registers the treatment, and
a run config lists it as an arm; its data (weights σ(IRM), computed here by scipy), its training
rows, its cost to the planner and its place among the `auto` arm's candidates follow from that one
registration, with no other file touched."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import prefsift  # noqa: F401  (registers every kind of arm)
from prefsift.pipeline import RunConfig
from prefsift.selection.arms import arm_data, check_candidates
from prefsift.selection.kinds import ArmContext, kind_of
from prefsift.selection.rows import training_data
from prefsift.selection.treatments import TREATMENTS
from prefsift.train.weighted import WEIGHT

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"


@pytest.fixture
def guide_plugin(tmp_path, monkeypatch):
    section = GUIDE.read_text(encoding="utf-8").split("### Your own treatment", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    config = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    plugin = re.search(r"^# (\w+\.py)$", code, re.M).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / plugin).write_text(code)
    (tmp_path / "run.yaml").write_text(config)
    yield tmp_path / "run.yaml"
    for name in [n for n in TREATMENTS.names() if n == "trust_irm"]:
        TREATMENTS.unregister(name)


def test_the_guides_treatment_plugin_trains_as_an_arm(guide_plugin):
    cfg = RunConfig.from_yaml(guide_plugin)
    # building a config runs no code
    assert "trust_irm" in cfg.arms and "trust_irm" not in TREATMENTS
    cfg.load_plugins()  # a run does this when it starts
    ctx = ArmContext.of(cfg)
    kind = kind_of("trust_irm", ctx)
    assert kind.name == "treatment" and kind.needs("trust_irm", ctx) == ("irm",)
    cost = kind.cost("trust_irm")
    assert cost.every_pair and cost.per_pair and cost.passes == 1

    irm = np.array([0.3, np.nan, -1.0, 2.0, 0.1, -0.5])
    table = pd.DataFrame({"id": list("abcdef"), "valid": ~np.isnan(irm), "reason": "", "irm": irm})
    data = arm_data(cfg, table, "trust_irm")
    scored = ~np.isnan(irm)
    assert data.mask.tolist() == scored.tolist()
    np.testing.assert_allclose(data.weight[scored], expit(irm[scored]), rtol=1e-12)
    assert data.weight[~scored].tolist() == [0.0]

    class Pairs:  # what training_data reads of a PairSet: its rows and records
        rows = [type("R", (), {"valid": bool(v)})() for v in scored]

        @staticmethod
        def records(mask):
            return [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i, m in enumerate(mask)
                    if m and scored[i]]

    ids = table.loc[data.mask, "id"].tolist()
    records, _, variant = training_data(Pairs, data.mask, data, ids, seed=0, batch_size=2)
    np.testing.assert_allclose([r[WEIGHT] for r in records], expit(irm[scored]), rtol=1e-12)
    assert variant is None  # the run's own loss, weighted pair by pair

    # It may be recommended: a candidate of the auto arm, with the scores it reads asked for.
    check_candidates(["full", "trust_irm"], ArmContext(scores=("irm",)), user_list=True)
    with pytest.raises(prefsift.core.errors.ConfigError, match="needs the irm score"):
        check_candidates(["full", "trust_irm"], ArmContext(scores=("if",)), user_list=True)

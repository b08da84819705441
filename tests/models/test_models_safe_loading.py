"""Model folders load from safetensors only: a pickle checkpoint is refused with the way to convert
it."""

import pytest

from prefsift.cli import main
from prefsift.models.loading import ModelSourceError, load_model, resolve_model_path
from tests.tiny import tiny_model


@pytest.fixture()
def pickle_folder(tmp_path):
    import torch

    folder = tmp_path / "pickled"
    model = tiny_model(40, seed=0)
    # transformers 5 saves safetensors only; write the pickle by hand
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    assert (folder / "pytorch_model.bin").exists() and not list(folder.glob("*.safetensors"))
    return folder


def test_pickle_checkpoint_is_refused_with_the_conversion(pickle_folder):
    with pytest.raises(ModelSourceError) as err:
        load_model(pickle_folder)
    msg = str(err.value)
    assert "pytorch_model.bin" in msg and "safetensors" in msg and "save_pretrained" in msg
    with pytest.raises(ModelSourceError):
        resolve_model_path(pickle_folder)


def test_pickle_checkpoint_refused_by_the_reward_judge(pickle_folder):
    from prefsift.eval.judges import RewardModelJudge

    with pytest.raises(ModelSourceError):
        RewardModelJudge(str(pickle_folder))


def test_cli_refuses_in_one_line(pickle_folder, capsys):
    assert main(["model", str(pickle_folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "pickle" in err[0]


def test_the_same_weights_as_safetensors_load(pickle_folder, tmp_path):
    model = tiny_model(40, seed=0)
    model.save_pretrained(tmp_path / "safe", safe_serialization=True)
    loaded = load_model(tmp_path / "safe")
    assert all((a == b).all() for a, b in zip(model.state_dict().values(),
                                              loaded.state_dict().values()))

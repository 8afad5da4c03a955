"""survey_lib.checkpoints: a save/resume round trip, and a checkpoint whose pickle would run
code is refused before any of it runs."""
from pathlib import Path

import pytest
import torch

from survey_lib.checkpoints import FILENAME, resume_checkpoint, save_checkpoint


def linear(seed: int) -> tuple[torch.nn.Linear, torch.optim.Adam]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def test_resume_restores_what_was_saved(tmp_path):
    """Parameters, Adam's moments, the step, a history of plain dicts and an `extra` of tensors
    and a generator's state all come back; the restored generator continues the same draws."""
    model, optimizer = linear(0)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    generator = torch.Generator().manual_seed(7)
    history = [{"step": 0, "loss": 1.5, "beta": None}, {"step": 1, "loss": 1.25, "beta": 0.1}]
    extra = {"cache": torch.arange(5.0), "generator": generator.get_state()}
    save_checkpoint(tmp_path, model, optimizer, 2, history, "run-a", extra)
    expected_draws = torch.rand(3, generator=generator)

    fresh, fresh_optimizer = linear(1)
    step, resumed_history, resumed_extra = resume_checkpoint(tmp_path, fresh, fresh_optimizer, "run-a")
    assert step == 2 and resumed_history == history
    for name, p in model.named_parameters():
        assert torch.equal(dict(fresh.named_parameters())[name], p)
    for saved, resumed in zip(optimizer.state.values(), fresh_optimizer.state.values()):
        assert torch.equal(saved["exp_avg"], resumed["exp_avg"]) and torch.equal(saved["exp_avg_sq"], resumed["exp_avg_sq"])
    assert torch.equal(resumed_extra["cache"], torch.arange(5.0))
    restored = torch.Generator()
    restored.set_state(resumed_extra["generator"])
    assert torch.equal(torch.rand(3, generator=restored), expected_draws)


class RunsCodeOnLoad:
    """Unpickling this calls Path.write_text(marker, "ran"): what a hostile checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "ran")


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    """Everything a resume needs is there, plus an object whose unpickling runs code: resuming
    raises naming the file, and the code has not run (loading it unsafely shows it would)."""
    model, optimizer = linear(0)
    marker = tmp_path / "marker"
    state = {"model": {n: p.detach() for n, p in model.named_parameters()}, "optimizer": optimizer.state_dict(),
             "step": 1, "history": [], "fingerprint": "run-a", "extra": {"payload": RunsCodeOnLoad(marker)}}
    torch.save(state, tmp_path / FILENAME)
    with pytest.raises(ValueError, match="other than tensors") as info:
        resume_checkpoint(tmp_path, model, optimizer, "run-a")
    assert str(tmp_path / FILENAME) in str(info.value)
    assert not marker.exists()
    torch.load(tmp_path / FILENAME, weights_only=False)
    assert marker.read_text() == "ran"

"""Shared fixtures. No test may touch the network: the Hub is switched to offline mode."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from survey_lib.world.text import TextWorld  # noqa: E402


@pytest.fixture(scope="session")
def world():
    return TextWorld(seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """The zoo model is tiny: one thread is as fast, and a busy CPU cannot stall a thread pool.
    Modules that train zoo models use it with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tok():
    """The text zoo model's tokenizer."""
    from survey_lib.models import load_model

    return load_model("tiny-text-lm")[1]


def crash_at(monkeypatch, crash_step: int) -> None:
    """Make every training loop (each iterates through `checkpoints.TrainingLoop.steps`, which
    wraps `tqdm`) raise KeyboardInterrupt when it reaches step `crash_step`: a crash, for the
    resume tests."""
    from survey_lib import checkpoints

    def steps(iterable, **_):
        for step in iterable:
            if step >= crash_step:
                raise KeyboardInterrupt
            yield step

    monkeypatch.setattr(checkpoints, "tqdm", steps)

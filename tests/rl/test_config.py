import pytest

from rl.config import ConfigError, GRPOConfig, SFTConfig, load_config


def test_batch_not_divisible_by_group_size_names_field():
    with pytest.raises(ConfigError, match="per_device_train_batch_size.*divisible by num_generations"):
        GRPOConfig(model="m", per_device_train_batch_size=10, num_generations=4)
    # a group may span micro-batches of one device: 2 x 4 = 8 completions = 2 groups of 4
    cfg = GRPOConfig(model="m", per_device_train_batch_size=2, gradient_accumulation_steps=4, num_generations=4)
    assert cfg.step_prompts == 2


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_generations": 1, "per_device_train_batch_size": 1}, "num_generations"),
        ({"scale_rewards": "sometimes"}, "scale_rewards"),
        ({"loss_agg_mode": "mean"}, "loss_agg_mode"),
        ({"temperature": 0.0}, "temperature"),
        ({"reward_funcs": ["accuracy", "format"], "reward_weights": [1.0]}, "reward_weights"),
        ({"beta": -0.1}, "beta"),
        ({"report_to": ["tensorboard"]}, "report_to"),
        ({"engine": "sglang"}, "engine"),
        ({"dual_clip_c": 0.5}, "dual_clip_c"),
        ({"rollout_mode": "remote"}, "rollout_mode"),
        ({"rollout_mode": "server"}, "rollout_mode"),  # server mode needs engine: vllm
        ({"engine": "vllm", "rollout_mode": "server", "server_url": "127.0.0.1:8000"}, "server_url"),
        ({"vllm_is_cap": 0.5}, "vllm_is_cap"),
        ({"engine": "vllm", "rollout_mode": "server", "server_weight_transfer": "rdma"}, "server_weight_transfer"),
        ({"vllm_gpu_memory_utilization": 1.5}, "vllm_gpu_memory_utilization"),
        ({"vllm_max_model_len": 100}, "vllm_max_model_len"),
        ({"adam_epsilon": 0.0}, "adam_epsilon"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    base = {"model": "m", "per_device_train_batch_size": 8, "num_generations": 4}
    base.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{field}:"):
        GRPOConfig(**base)


def test_defaults_fill_in():
    cfg = GRPOConfig(model="m", per_device_train_batch_size=8, num_generations=4, epsilon=0.25)
    assert cfg.epsilon_high == 0.25
    assert cfg.step_prompts == 2
    cfg = GRPOConfig(model="m", per_device_train_batch_size=8, num_generations=4, dynamic_sampling=True)
    assert cfg.sampler == "dynamic"


def test_yaml_recipe_plus_cli_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: /some/model\nlearning_rate: 1.0e-5\nnum_generations: 4\nper_device_train_batch_size: 8\n"
        "reward_funcs: [accuracy, length_penalty]\nreward_weights: [1.0, 0.5]\nmethod_kwargs: {length_alpha: 0.1}\n"
    )
    cfg = load_config(GRPOConfig, ["--config", str(recipe), "--learning_rate", "3e-5", "--max_steps", "7"])
    assert cfg.model == "/some/model"
    assert cfg.learning_rate == pytest.approx(3e-5)  # command line beats the recipe
    assert cfg.max_steps == 7
    assert cfg.reward_funcs == ["accuracy", "length_penalty"]
    assert cfg.reward_weights == [1.0, 0.5]
    assert cfg.method_kwargs == {"length_alpha": 0.1}


def test_recipe_unknown_key_is_an_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nlearnig_rate: 1e-5\n")
    with pytest.raises(ConfigError, match="learnig_rate"):
        load_config(GRPOConfig, ["--config", str(recipe)])


def test_recipe_validation_runs(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: m\nnum_generations: 3\nper_device_train_batch_size: 8\n")
    with pytest.raises(ConfigError, match="per_device_train_batch_size"):
        load_config(GRPOConfig, ["--config", str(recipe)])


def test_missing_recipe_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(SFTConfig, ["--config", "/nope.yaml"])


def test_derived_prompts_per_step_follows_a_replaced_batch_size(tmp_path):
    import dataclasses

    from rl.config import GRPOConfig

    cfg = GRPOConfig(model=str(tmp_path), num_generations=4, per_device_train_batch_size=8)
    assert cfg.prompts_per_step == 0 and cfg.step_prompts == 2
    bigger = dataclasses.replace(cfg, per_device_train_batch_size=16)
    assert bigger.step_prompts == 4  # derived again, not the first config's 2
    fixed = GRPOConfig(model=str(tmp_path), num_generations=4, per_device_train_batch_size=3, prompts_per_step=5)
    assert fixed.step_prompts == 5

"""Method settings on the registry side: every built-in piece declares a settings class (rewards/settings.py),
presets take their defaults from those classes, the config checks either declaration form (a class or the
plugins' mapping), and ``parsimony methods`` prints each method's settings table (pasted in docs/extending.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from rewards.settings import MethodSettings, is_settings_class, setting
from rl.config import ConfigError, GRPOConfig
from rl.presets import METHODS, active_pieces, get_method, load_methods, piece_settings, registries

REPO = Path(__file__).resolve().parents[2]
# method_kwargs a preset sets to a value other than its piece's default, on purpose
PRESET_OVERRIDES = {
    "decs": {"decs_kappa_init": 0.5, "decs_kappa_lr": 0.5},  # the settings measured on the embedded task
    "decs_hdpo": {"decs_kappa_init": 0.5, "decs_kappa_lr": 0.5},
}


def grpo(**kw):
    return GRPOConfig(model="m", num_generations=4, per_device_train_batch_size=8, **kw)


@pytest.fixture
def clean_registries():
    """Registries as they were before the test (it registers pieces of its own)."""
    from curriculum.samplers import ASSEMBLERS
    from rewards import REWARDS
    from rl.advantages import ADVANTAGES
    from rl.losses import COMPOSITIONS, LOSSES

    load_methods()
    regs = (ASSEMBLERS, REWARDS, ADVANTAGES, COMPOSITIONS, LOSSES, METHODS)
    saved = [dict(r) for r in regs]
    yield
    for r, s in zip(regs, saved):
        r.clear()
        r.update(s)


def _builtin_pieces():
    load_methods()
    return [(kind, name, piece) for kind, reg in registries().items() for name, piece in reg.items()]


def test_every_builtin_piece_that_reads_method_kwargs_declares_a_settings_class():
    from rl.presets import _declared_settings

    declared = 0
    for kind, name, piece in _builtin_pieces():
        d = _declared_settings(piece)
        if d:
            assert is_settings_class(d), f"{kind} {name!r} declares a mapping, not a settings class"
            assert d.from_kwargs(d.defaults()) == d.from_kwargs({}), name  # the defaults are valid values
            assert all(r["help"] for r in d.help_rows()), f"{kind} {name!r}: a setting without help"
            declared += 1
    assert declared >= 15


def test_each_default_is_stated_once_presets_take_theirs_from_the_settings_classes():
    load_methods()
    for name, preset in METHODS.items():
        own = SimpleNamespace(**{"loss_type": "clipped", **preset.config_fields()})
        piece_defaults = {}
        for _, _, piece in active_pieces(own):
            piece_defaults.update(piece_settings(piece))
        for key, value in preset.method_kwargs.items():
            expected = PRESET_OVERRIDES.get(name, {}).get(key, piece_defaults[key])
            assert value == expected and type(value) is type(expected), (name, key, value, expected)
    from curriculum.decs_kappa import KappaSettings
    from rewards.length.penalties import LengthPenaltySettings
    from rewards.mgrpo import MGRPORewardSettings
    from rl.methods.hdpo import HDPOLossSettings

    assert dict(get_method("hdpo").method_kwargs) == HDPOLossSettings.defaults() == {"hdpo_w_acc": 1.0, "hdpo_w_tool": 0.15}
    assert dict(get_method("length_penalty").method_kwargs) == LengthPenaltySettings.defaults()
    assert dict(get_method("mgrpo").method_kwargs) == {"mgrpo_d_max": "auto", "mgrpo_d_max_cap": 8,
                                                      **MGRPORewardSettings.defaults()}
    assert KappaSettings.defaults()["decs_kappa_init"] == 0.0 and get_method("decs").method_kwargs["decs_kappa_init"] == 0.5


def test_values_are_checked_by_the_settings_classes_at_config_time():
    cfg = grpo(method="hdpo", method_kwargs={"hdpo_w_tool": 1})
    assert cfg.method_kwargs == {"hdpo_w_acc": 1.0, "hdpo_w_tool": 1}
    for method, kw, message in [
        ("hdpo", {"hdpo_tool_eps": 0}, "method_kwargs.hdpo_tool_eps: must be a finite number > 0.0, got 0"),
        ("length_penalty", {"length_alpha": -1}, "method_kwargs.length_alpha: must be a finite number >= 0.0, got -1"),
        ("decs", {"decs_judge_retries": 1.5}, "method_kwargs.decs_judge_retries: must be an integer >= 0, got 1.5"),
        ("decs", {"decs_kappa_init": 0.95}, "method_kwargs.decs_kappa_init: must be <= decs_kappa_max (0.9)"),
        ("mgrpo", {"mgrpo_store": "memory"}, "method_kwargs.mgrpo_train_roles: a store decouples the roles"),
        ("gfpo", {"gfpo_metric": "speed"}, "method_kwargs.gfpo_metric: must be one of ['length', 'token_efficiency']"),
        ("thinkprune", {"thinkprune_schedule": [[0, 0]]}, "method_kwargs.thinkprune_schedule: cap must be a positive"),
    ]:
        with pytest.raises(ConfigError) as e:
            grpo(method=method, method_kwargs=kw)
        assert str(e.value).startswith(message), (method, str(e.value))
    assert grpo(method="decs", method_kwargs={"decs_judge_retries": 3.0}).method_kwargs["decs_judge_retries"] == 3.0


def test_an_unknown_key_names_the_key_and_the_known_keys():
    with pytest.raises(ConfigError) as e:
        grpo(method="hdpo", method_kwargs={"hdpo_w_tol": 0.3})
    msg = str(e.value)
    assert msg.startswith("method_kwargs: unknown key(s) 'hdpo_w_tol' (did you mean 'hdpo_w_tool'?); known keys: [")
    known = re.search(r"known keys: (\[.*?\])", msg).group(1)
    assert eval(known) == ["hdpo_correct_reward", "hdpo_correct_threshold", "hdpo_tool_eps", "hdpo_tool_loss_rows",
                           "hdpo_w_acc", "hdpo_w_tool"]
    assert "advantage estimator 'hdpo'" in msg and "loss composition 'dual'" in msg


@dataclass(frozen=True)
class _PluginSettings(MethodSettings):
    scale: float = setting("tplug_scale", 1.0, "a scale", minimum=0.0)
    mode: str = setting("tplug_mode", "a", "a mode", choices=("a", "b"))


def test_every_registry_takes_a_settings_class_or_a_mapping(clean_registries):
    from curriculum.samplers import BatchAssembler, register_assembler
    from rewards import register_reward
    from rl.advantages import ADVANTAGES, grpo as grpo_estimator, register_advantage
    from rl.losses import LossTerm, clipped_loss, register_composition, register_loss
    from rl.presets import register_method

    calls = []

    def check_old(kwargs):  # the plugins' form: a mapping plus a validator
        calls.append(dict(kwargs))
        if kwargs.get("tplug_old", 0.5) > 1:
            raise ValueError("method_kwargs.tplug_old: must be <= 1")

    register_advantage("tplug_adv", settings=_PluginSettings)(grpo_estimator)
    register_composition("tplug_comp", settings={"tplug_old": 0.5}, validate=check_old)(
        lambda cfg: [LossTerm("main", loss="tplug_loss")])
    register_loss("tplug_loss", settings=_PluginSettings)(clipped_loss)

    @register_reward("tplug_reward")
    class Reward:
        method_settings = {"tplug_reward_w": 1.0}  # mapping, no validator

        def __call__(self, prompts, completions, completion_ids, **kw):
            return [1.0] * len(completions)

    @register_assembler("tplug_sampler")
    class Sampler(BatchAssembler):
        method_settings = _PluginSettings

    register_method("tplug", reward_funcs=["tplug_reward"], advantage_estimator="tplug_adv", loss_composition="tplug_comp",
                    sampler="tplug_sampler", fields={"loss_type": "tplug_loss"}, method_kwargs={"tplug_old": 0.5})
    assert piece_settings(ADVANTAGES["tplug_adv"]) == {"tplug_scale": 1.0, "tplug_mode": "a"}
    cfg = grpo(method="tplug", method_kwargs={"tplug_scale": 2, "tplug_reward_w": 3.0})
    assert cfg.method_kwargs == {"tplug_old": 0.5, "tplug_scale": 2, "tplug_reward_w": 3.0}
    assert calls and calls[-1]["tplug_scale"] == 2  # the mapping form's validator ran
    with pytest.raises(ConfigError, match=r"^method_kwargs\.tplug_old: must be <= 1"):
        grpo(method="tplug", method_kwargs={"tplug_old": 2})
    with pytest.raises(ConfigError, match=r"^method_kwargs\.tplug_mode: must be one of \['a', 'b'\], got 'c'"):
        grpo(method="tplug", method_kwargs={"tplug_mode": "c"})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'tplug_scal' \(did you mean 'tplug_scale'\?\).*'tplug_reward_w'"):
        grpo(method="tplug", method_kwargs={"tplug_scal": 1})
    # a declaration that is neither is refused when it is registered, not when a config is built
    with pytest.raises(TypeError, match="MethodSettings class or a mapping"):
        register_advantage("tplug_bad", settings=["tplug_scale"])(grpo_estimator)
    with pytest.raises(TypeError, match="MethodSettings class or a mapping"):
        register_reward("tplug_bad_reward", settings=3)(lambda prompts, completions, completion_ids, **kw: [])

    from rl.commands.methods import collect, render

    info = collect()
    rows = {r["key"]: r for r in info["methods"]["tplug"]["settings"]}
    assert rows["tplug_scale"]["help"] == "a scale" and rows["tplug_old"]["help"] == ""  # a mapping has no help
    assert rows["tplug_scale"]["piece"] == "advantage estimator 'tplug_adv'"
    assert info["advantage estimators"]["tplug_adv"]["settings"] == {"tplug_scale": 1.0, "tplug_mode": "a"}
    text = render(info)
    assert "      method_kwargs of advantage estimator 'tplug_adv':" in text
    assert re.search(r"\n        tplug_mode +'a' +a mode \(one of \['a', 'b'\]\)\n", text)


def test_the_methods_listing_has_each_methods_settings_table():
    from rl.commands.methods import collect, render

    info = collect()
    rows = {r["key"]: r for r in info["methods"]["decs"]["settings"]}
    assert rows["decs_beta"] == {"key": "decs_beta", "piece": "advantage estimator 'decs'", "default": 0.1,
                                 "piece_default": 0.1, "accepts": "a finite number >= 0.0", "help": "length-reward weight b"}
    assert rows["decs_kappa_init"]["default"] == 0.5 and rows["decs_kappa_init"]["piece_default"] == 0.0
    assert rows["decs_judge"]["piece"] == "reward 'decs_redundancy'"
    assert set(get_method("decs").method_kwargs) <= set(rows)  # every preset default is in the table
    text = render(info)
    assert re.search(r"\n        decs_kappa_init +0\.5\* +initial kappa", text)
    assert "  grpo  [rl.methods.grpo]\n" in text and "      method_kwargs: none" in text
    assert "  decs  [rl.methods.decs]  method_kwargs: decs_beta, decs_l_max, decs_redundancy_reward" in text
    assert len(info["methods"]) >= 16


@pytest.mark.slow
def test_the_listing_in_docs_extending_is_the_commands_output():
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "methods"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = (REPO / "docs" / "extending.md").read_text()
    block = re.search(r"<!-- generated by `parsimony methods`: begin -->\n```\n(.*?)```\n", doc, flags=re.S)
    assert block, "docs/extending.md lost its generated block"
    assert block.group(1) == proc.stdout, "docs/extending.md is stale: run `parsimony methods --update-docs docs/extending.md`"

"""rewards/settings.py: a typed, validated settings dataclass per piece (one field per method_kwargs key)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from rewards.settings import MethodSettings, is_settings_class, render_rows, setting, settings_defaults, settings_rows


def _words(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not all(isinstance(w, str) for w in v):
        raise ValueError(f"must be a list of words, got {v!r}")
    return tuple(v)


@dataclass(frozen=True)
class Demo(MethodSettings):
    alpha: float = setting("demo_alpha", 0.2, "weight", minimum=0.0, maximum=1.0)
    eps: float = setting("demo_eps", 1e-6, "eps", exclusive_minimum=0.0)
    kappa: float = setting("demo_kappa", 0.5, "share", minimum=0.0, exclusive_maximum=1.0)
    mode: str = setting("demo_mode", "linear", "mode", choices=("linear", "log"))
    ref: str | int = setting("demo_ref", "batch", "a mode or a length", choices=("batch",), minimum=1)
    cap: int | None = setting("demo_cap", None, "cap", minimum=1)
    retries: int = setting("demo_retries", 2, "retries", minimum=0, whole_float=True)
    flag: bool = setting("demo_flag", True, "a flag")
    name: str = setting("demo_name", "accuracy", "a reward name")
    words: tuple[str, ...] = setting("demo_words", ("Wait", "But"), "split words", parse=_words)
    items: list = setting("demo_items", [1, 2], "a mutable default", parse=list)

    def check(self):
        if self.mode == "log" and self.cap is None:
            raise self.bad("demo_cap", "is needed with demo_mode 'log'")
        if self.name == "fill":
            return dataclasses.replace(self, name="filled")
        return None


def test_defaults_keys_and_instances():
    assert Demo.keys()[:3] == ("demo_alpha", "demo_eps", "demo_kappa") and len(Demo.keys()) == 11
    d = Demo.defaults()
    assert d["demo_alpha"] == 0.2 and d["demo_cap"] is None and d["demo_words"] == ("Wait", "But")
    assert Demo.defaults("demo_alpha", "demo_mode") == {"demo_alpha": 0.2, "demo_mode": "linear"}
    with pytest.raises(KeyError, match="demo_nope"):
        Demo.defaults("demo_nope")
    assert Demo.from_kwargs(None) == Demo() == Demo.from_kwargs({}) == Demo.from_kwargs(Demo.defaults())
    d["demo_items"].append(3)  # a mutable default is copied, never shared
    assert Demo.defaults()["demo_items"] == [1, 2] and Demo().items == [1, 2]
    assert Demo.from_kwargs({"other_key": 1, "demo_alpha": 1}).alpha == 1.0  # other keys ignored; int -> float
    s = Demo.from_kwargs({"demo_ref": 7, "demo_cap": 3, "demo_retries": 4.0, "demo_words": ["Hmm"]})
    assert (s.ref, s.cap, s.retries, s.words) == (7, 3, 4, ("Hmm",)) and isinstance(s.retries, int)
    assert s.to_kwargs()["demo_ref"] == 7 and Demo.from_kwargs(s.to_kwargs()) == s
    assert is_settings_class(Demo) and not is_settings_class(Demo()) and not is_settings_class({"a": 1})


@pytest.mark.parametrize("key, value, expected", [
    ("demo_alpha", 2, "must be a finite number in [0.0, 1.0], got 2"),
    ("demo_alpha", -0.1, "in [0.0, 1.0]"),
    ("demo_alpha", True, "got True"),  # a bool is no number
    ("demo_alpha", "0.1", "got '0.1'"),
    ("demo_alpha", float("nan"), "a finite number"),
    ("demo_alpha", float("inf"), "a finite number"),
    ("demo_eps", 0, "must be a finite number > 0.0, got 0"),
    ("demo_kappa", 1.0, "must be a finite number in [0.0, 1.0), got 1.0"),
    ("demo_mode", "cubic", "must be one of ['linear', 'log'], got 'cubic'"),
    ("demo_ref", 0, "must be one of ['batch'] or an integer >= 1, got 0"),
    ("demo_ref", "longest", "got 'longest'"),
    ("demo_cap", 0, "must be an integer >= 1 or null, got 0"),
    ("demo_cap", 2.0, "got 2.0"),  # no whole_float: 2.0 is not an int here
    ("demo_retries", 1.5, "must be an integer >= 0, got 1.5"),
    ("demo_retries", -1.0, "got -1.0"),
    ("demo_flag", "yes", "must be true or false, got 'yes'"),
    ("demo_name", "", "must be a non-empty string, got ''"),
    ("demo_name", "  ", "a non-empty string"),
    ("demo_name", None, "got None"),
    ("demo_words", "Wait", "must be a list of words, got 'Wait'"),
    ("demo_mode", "log", "demo_cap: is needed with demo_mode 'log'"),  # the cross-field check
])
def test_a_bad_value_names_the_key_and_what_is_expected(key, value, expected):
    with pytest.raises(ValueError) as e:
        Demo.from_kwargs({key: value})
    msg = str(e.value)
    assert msg.startswith("method_kwargs.demo_") and msg.split(": ", 1)[0] in (f"method_kwargs.{key}", "method_kwargs.demo_cap")
    assert expected in msg, msg


def test_not_a_mapping_and_the_error_class():
    with pytest.raises(ValueError, match="^method_kwargs: must be a mapping, got list$"):
        Demo.from_kwargs([("demo_alpha", 1)])

    class MyError(ValueError):
        pass

    @dataclass(frozen=True)
    class Strict(MethodSettings):
        error = MyError
        beta: float = setting("strict_beta", 0.1, "beta", minimum=0.0)

    with pytest.raises(MyError, match=r"^method_kwargs\.strict_beta: must be a finite number >= 0.0, got -1$"):
        Strict.from_kwargs({"strict_beta": -1})
    assert Strict.from_args(type("Cfg", (), {"method_kwargs": {"strict_beta": 2}})()).beta == 2.0
    assert Strict.from_args(object()) == Strict()  # no method_kwargs: the defaults


def test_check_may_return_a_completed_instance():
    assert Demo.from_kwargs({"demo_name": "fill"}).name == "filled"
    assert Demo.from_kwargs({"demo_mode": "log", "demo_cap": 5}).mode == "log"


def test_declaration_errors_are_reported():
    @dataclass(frozen=True)
    class NoKey(MethodSettings):
        x: float = 1.0

    with pytest.raises(TypeError, match="setting"):
        NoKey.keys()

    @dataclass(frozen=True)
    class Twice(MethodSettings):
        a: float = setting("same_key", 1.0, "a")
        b: float = setting("same_key", 2.0, "b")

    with pytest.raises(TypeError, match="same_key"):
        Twice.from_kwargs({})

    @dataclass(frozen=True)
    class OddType(MethodSettings):
        a: dict = setting("odd_a", 1, "a")

    with pytest.raises(TypeError, match="parse="):
        OddType.defaults()


def test_help_rows_and_table():
    rows = {r["key"]: r for r in Demo.help_rows()}
    assert rows["demo_alpha"] == {"key": "demo_alpha", "default": 0.2, "accepts": "a finite number in [0.0, 1.0]",
                                  "help": "weight"}
    assert rows["demo_words"]["accepts"] == ""  # a parse= field: its help says what it takes
    lines = render_rows(Demo.help_rows(), indent="  ")
    assert lines[0].split() == ["demo_alpha", "0.2", "weight", "(a", "finite", "number", "in", "[0.0,", "1.0])"]
    cap = next(x for x in lines if x.strip().startswith("demo_cap"))
    assert " null " in cap and cap.endswith("cap (an integer >= 1 or null)")
    flag = next(x for x in lines if x.strip().startswith("demo_flag"))
    assert " true " in flag
    assert len({x.index(x.split()[1], len(x.split()[0]) + 2) for x in lines}) == 1  # the default column is aligned
    marked = render_rows([dict(rows["demo_alpha"], mark=True)])
    assert marked[0].split()[1] == "0.2*"


def test_either_declaration_form():
    assert settings_defaults(Demo) == Demo.defaults()
    assert settings_defaults({"a": 1}) == {"a": 1} and settings_defaults(None) == {}
    assert settings_rows({"a": 1}) == [{"key": "a", "default": 1, "accepts": "", "help": ""}]
    with pytest.raises(TypeError, match="MethodSettings class or a mapping"):
        settings_defaults(["a"])

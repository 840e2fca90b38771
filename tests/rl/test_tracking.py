import json

from rl.tracking import Tracker


def test_jsonl_and_offline_wandb_without_key(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    tr = Tracker(str(tmp_path / "run"), ["jsonl", "wandb"], total_steps=2, config={"a": 1}, run_name="t")
    tr.log(1, {"reward": 0.5, "nan_metric": float("nan")})
    tr.log_completions(1, [{"prompt": "p", "completion": "c", "reward": 1.0}])
    tr.close()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 1 and rows[0]["reward"] == 0.5 and rows[0]["nan_metric"] == "nan"
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*")), "W&B should have written an offline run"
    assert (tmp_path / "run" / "completions.jsonl").is_file()


def test_non_main_process_writes_nothing(tmp_path):
    tr = Tracker(str(tmp_path / "run"), ["jsonl"], total_steps=1, is_main_process=False)
    tr.log(1, {"x": 1.0})
    tr.close()
    assert not (tmp_path / "run").exists()

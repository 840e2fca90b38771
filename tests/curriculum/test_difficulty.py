"""Difficulty scoring: the score parser, the judge scorer against a real OpenAI-compatible HTTP server
on 127.0.0.1 (good answers, garbage, 500s, a hang, a dead port), the append-only cache and resuming
an interrupted run, the pass-rate scorer on the tiny model, the column scorer, the split and the CLI."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from datasets import Dataset

from curriculum.dereason.difficulty import (
    ColumnScorer,
    JudgeScorer,
    ScoreCache,
    ScoreParseError,
    cache_key,
    difficulty_from_pass_rate,
    parse_score,
    score_dataset,
    score_rows,
    split_by_difficulty,
)

REPO = Path(__file__).resolve().parents[2]


# --- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("Needs two dependent steps.\nScore: 3", 3),
    ("**Score:** 4", 4),
    ("score = 2/5", 2),
    ("The difficulty is 5.", 5),
    ("4", 4),
    ('{"score": 1, "why": "recall"}', 1),
    ("```json\n{\"score\": 2}\n```", 2),
    ("<think>maybe 5? or 2, 3</think>Score: 2", 2),
    ("Score: 3. On reflection the final Score: 4", 4),  # the last labelled score wins
    ("Rating: 3 out of 5", 3),
])
def test_parse_score_reads_good_answers(text, want):
    assert parse_score(text) == want


@pytest.mark.parametrize("text,msg", [
    ("", "empty"),
    ("This one is hard.", "0 numbers"),
    ("Steps 2 and 3 are needed", "2 numbers"),
    ("Score: 7", "outside"),
    ("Score: 0", "outside"),
    ("Score: 3.5", "not an integer"),
    ("Score: 8/10", "not on the 1-5 scale"),
    ("<think>Score: 4", "0 numbers"),  # an unterminated reasoning block is not an answer
    (None, "empty"),
])
def test_parse_score_rejects_malformed_and_out_of_range(text, msg):
    with pytest.raises(ScoreParseError, match=msg):
        parse_score(text)


def test_pass_rate_mapping():
    assert [difficulty_from_pass_rate(p) for p in (1.0, 0.8, 0.79, 0.6, 0.5, 0.4, 0.25, 0.2, 0.19, 0.0)] == \
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert difficulty_from_pass_rate(3 / 8) == 4 and difficulty_from_pass_rate(5 / 8) == 2
    with pytest.raises(ValueError):
        difficulty_from_pass_rate(1.5)


# --- a real OpenAI-compatible server -------------------------------------------------------------
class FakeJudge:
    """Answers /v1/chat/completions by the problem's text: ``level N`` -> "Score: N"; ``GARBAGE`` -> no
    score; ``RANGE`` -> "Score: 9"; ``FAIL`` -> HTTP 500 always; ``FLAKY`` -> 500 once, then fine;
    ``HANG`` -> sleeps past the client's timeout; ``NOJSON`` -> a 200 that is not JSON."""

    def __init__(self, hang_s: float = 3.0):
        self.requests: list[str] = []
        self.inflight = self.max_inflight = 0
        self.lock = threading.Lock()
        self.hang_s = hang_s
        self.flaky_seen: set[str] = set()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/chat/completions", self.path
                problem = body["messages"][-1]["content"]
                assert body["messages"][0]["role"] == "system" and "Score: N" in body["messages"][0]["content"]
                with judge.lock:
                    judge.requests.append(problem)
                    judge.inflight += 1
                    judge.max_inflight = max(judge.max_inflight, judge.inflight)
                try:
                    time.sleep(0.05)  # overlapping requests show the concurrency
                    self.answer(problem)
                finally:
                    with judge.lock:
                        judge.inflight -= 1

            def send(self, code, payload: bytes, ctype="application/json"):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def chat(self, text):
                self.send(200, json.dumps({"id": "x", "object": "chat.completion",
                                           "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                        "finish_reason": "stop"}]}).encode())

            def answer(self, problem):
                if "FAIL" in problem:
                    return self.send(500, b'{"error": "boom"}')
                if "FLAKY" in problem:
                    with judge.lock:
                        first = problem not in judge.flaky_seen
                        judge.flaky_seen.add(problem)
                    if first:
                        return self.send(500, b'{"error": "once"}')
                if "HANG" in problem:
                    time.sleep(judge.hang_s)
                    return self.chat("Score: 3")
                if "NOJSON" in problem:
                    return self.send(200, b"<html>proxy error</html>", "text/html")
                if "GARBAGE" in problem:
                    return self.chat("Hmm, it depends on many things.")
                if "RANGE" in problem:
                    return self.chat("Very hard. Score: 9")
                level = re.search(r"level (\d)", problem)
                return self.chat(f"It needs some steps.\nScore: {level.group(1)}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, word):
        return sum(1 for r in self.requests if word in r)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def judge_server():
    j = FakeJudge()
    yield j
    j.close()


def _rows(*texts):
    return [{"prompt": [{"role": "user", "content": t}]} for t in texts]


def _judge(url, **kw):
    base = dict(concurrency=4, timeout=0.5, retries=1, backoff=0.01, parse_retries=1, breaker_failures=50)
    base.update(kw)
    return JudgeScorer(url, "judge-model", **base)


def test_judge_scores_good_rows_and_marks_every_failure(judge_server, tmp_path):
    rows = _rows(*[f"problem {i}, level {i % 5 + 1}" for i in range(8)],
                 "GARBAGE answer", "RANGE answer", "FAIL server", "FLAKY server level 2", "HANG server", "NOJSON proxy")
    scores, report = score_rows(rows, _judge(judge_server.url), tmp_path / "cache.jsonl")
    assert [s.difficulty for s in scores[:8]] == [i % 5 + 1 for i in range(8)]
    assert all(s.raw["answer"].endswith(f"Score: {s.difficulty}") for s in scores[:8])
    by = {r["prompt"][0]["content"].split()[0]: s for r, s in zip(rows, scores)}
    assert by["FLAKY"].difficulty == 2  # a 500 is retried
    for name, msg in (("GARBAGE", "unparseable score"), ("RANGE", "outside 1-5"), ("FAIL", "request failed (status)"),
                      ("HANG", "request failed (timeout)"), ("NOJSON", "not JSON")):
        s = by[name]
        assert s.difficulty is None and msg in s.error, (name, s)  # marked, never a default
    assert by["GARBAGE"].raw["answers"] == ["Hmm, it depends on many things."] * 2  # asked twice, both kept
    assert judge_server.count("GARBAGE") == 2 and judge_server.count("FAIL") == 2  # parse retry; HTTP retry
    assert judge_server.count("HANG") == 1  # a timed-out POST is not re-sent
    assert report.failed == 5 and report.scored == 14 and report.cached == 0
    assert sorted(f["row"] for f in report.failures) == [8, 9, 10, 12, 13]
    assert report.counts == {1: 2, 2: 3, 3: 2, 4: 1, 5: 1}
    assert judge_server.max_inflight > 1  # concurrent requests


def test_the_cache_skips_finished_rows_and_retries_failed_ones(judge_server, tmp_path):
    cache = tmp_path / "cache.jsonl"
    rows = _rows("a level 1", "b level 2", "GARBAGE c")
    score_rows(rows, _judge(judge_server.url), cache)
    before = len(judge_server.requests)
    scores, report = score_rows(rows + _rows("d level 4"), _judge(judge_server.url), cache)
    new = judge_server.requests[before:]
    assert sorted(new) == sorted(["PROBLEM:\nGARBAGE c"] * 2 + ["PROBLEM:\nd level 4"])  # only new + failed rows
    assert report.cached == 2 and report.scored == 2
    assert [s.difficulty for s in scores] == [1, 2, None, 4]
    # other scorer settings are another key: nothing is reused
    scores2, report2 = score_rows(rows, _judge(judge_server.url, max_tokens=99), cache)
    assert report2.cached == 0
    # a torn last line (a crash mid-write) is skipped
    with open(cache, "a") as f:
        f.write('{"key": "abc", "diffic')
    c = ScoreCache(cache)
    assert c.torn_lines == 1 and len(c.done) == 5
    c.close()


def test_an_interrupted_run_keeps_its_work_and_resumes_to_the_same_result(judge_server, tmp_path):
    rows = _rows(*[f"p{i} level {i % 5 + 1}" for i in range(12)])
    straight, _ = score_rows(rows, _judge(judge_server.url), tmp_path / "straight.jsonl")

    class Interrupted(JudgeScorer):
        def score_many(self, rs):
            for n, item in enumerate(super().score_many(rs)):
                if n == 5:
                    raise KeyboardInterrupt
                yield item

    cache = tmp_path / "cache.jsonl"
    with pytest.raises(KeyboardInterrupt):
        score_rows(rows, Interrupted(judge_server.url, "judge-model", concurrency=2, timeout=2), cache)
    assert len(cache.read_text().splitlines()) == 5  # every finished row was flushed
    time.sleep(0.5)  # the requests in flight at the interrupt finish (their answers are dropped: lost work)
    before = len(judge_server.requests)
    resumed, report = score_rows(rows, _judge(judge_server.url), cache)
    assert report.cached == 5 and report.scored == 7 and len(judge_server.requests) - before == 7
    assert [s.difficulty for s in resumed] == [s.difficulty for s in straight]


def test_a_dead_endpoint_trips_the_breaker_and_fails_fast(tmp_path):
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scorer = _judge(f"http://127.0.0.1:{port}/v1", breaker_failures=2, breaker_cooldown=60, concurrency=1, retries=0)
    t0 = time.time()
    scores, report = score_rows(_rows(*[f"q{i} level 1" for i in range(20)]), scorer, tmp_path / "c.jsonl")
    assert report.failed == 20 and all(s.difficulty is None for s in scores)
    assert sum("circuit" in s.error for s in scores) >= 17  # after 2 real failures the rest fail without I/O
    assert scorer.breaker.trips >= 1 and time.time() - t0 < 10


def test_score_dataset_writes_the_columns(judge_server, tmp_path):
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "x level 3"}], "id": 0},
                            {"prompt": [{"role": "user", "content": "GARBAGE"}], "id": 1}])
    out, report = score_dataset(ds, _judge(judge_server.url, parse_retries=0), tmp_path / "c.jsonl")
    assert out["difficulty"] == [3, None] and out["difficulty_scorer"] == ["judge"] * 2
    assert json.loads(out["difficulty_raw"][0])["answer"].endswith("Score: 3")
    assert out["difficulty_error"][0] is None and "unparseable" in out["difficulty_error"][1]
    assert out["id"] == [0, 1]


# --- column, split, pass rate --------------------------------------------------------------------
def test_column_scorer_reads_task_difficulty_and_math_levels(tmp_path):
    from curriculum.tasks import get_task_dataset

    ds = get_task_dataset("overthink", 20, seed=0, split="train")
    out, report = score_dataset(ds, ColumnScorer("extra_info.difficulty"), tmp_path / "c.jsonl")
    assert out["difficulty"] == [r["extra_info"]["difficulty"] for r in ds] and report.failed == 0
    rows = [{"prompt": "p1", "level": "Level 3"}, {"prompt": "p2", "level": "Level ?"}, {"prompt": "p3", "level": 9}]
    scores, report = score_rows(rows, ColumnScorer("level"), tmp_path / "m.jsonl")
    assert [s.difficulty for s in scores] == [3, None, None] and report.failed == 2
    scaled, _ = score_rows([{"prompt": str(v), "n": v} for v in (0, 5, 10)], ColumnScorer("n", 0, 10), tmp_path / "s.jsonl")
    assert [s.difficulty for s in scaled] == [1, 3, 5]


def test_split_by_threshold_and_fraction():
    d = [1, 5, 3, None, 4, 2, 5, 1]
    sft, rl, rep = split_by_difficulty(d, threshold=4)
    assert rl == [1, 4, 6] and sft == [0, 2, 5, 7] and rep["failed"] == 1
    assert rep["counts"] == {"1": 2, "2": 1, "3": 1, "4": 1, "5": 2} and rep["rl_counts"] == {"4": 1, "5": 2}
    sft, rl, rep = split_by_difficulty(d, rl_fraction=0.5, seed=0)
    assert len(rl) == 4 and {1, 6, 4} <= set(rl) and 3 not in sft + rl and len(sft) == 3
    with pytest.raises(ValueError):
        split_by_difficulty(d)


def test_pass_rate_scorer_on_the_tiny_model(tiny_model_dir, tmp_path):
    from curriculum.tasks import get_task_dataset
    from rl.eval.pass_rate import PassRateScorer
    from rl.modeling import load_model, load_tokenizer

    ds = get_task_dataset("overthink", 6, seed=0, split="train")
    rows = [ds[i] for i in range(len(ds))] + [{"prompt": "no answer here"}]
    model, tok = load_model(str(tiny_model_dir)).eval(), load_tokenizer(str(tiny_model_dir))

    def scorer():
        return PassRateScorer(model, tok, k=4, max_new_tokens=12, batch_size=8, seed=3, model_name="tiny")

    scores, report = score_rows(rows, scorer(), tmp_path / "a.jsonl")
    assert report.failed == 1 and "no ground truth" in scores[-1].error
    for s in scores[:-1]:
        assert s.raw["k"] == 4 and s.difficulty == difficulty_from_pass_rate(s.raw["correct"] / 4)
    # the untrained model solves nothing: every problem is as hard as it gets
    assert [s.difficulty for s in scores[:-1]] == [5] * 6
    # seeded per problem: the same samples in another order and cache, and nothing re-generated from the cache
    rev, _ = score_rows(rows[:-1][::-1], scorer(), tmp_path / "b.jsonl")
    assert [s.raw for s in rev[::-1]] == [s.raw for s in scores[:-1]]
    again, rep2 = score_rows(rows[:-1], scorer(), tmp_path / "a.jsonl")
    assert rep2.cached == 6 and rep2.scored == 0
    assert cache_key(scorer(), rows[0]) != cache_key(PassRateScorer(model, tok, k=8, model_name="tiny"), rows[0])


def test_pass_rate_follows_the_graded_samples(tiny_model_dir, tmp_path):
    """Through the real generation and grading path, with an engine whose samples are right a known
    number of times per problem (problem j: j of 4 right): the difficulty follows the pass rate."""
    from rl.eval.pass_rate import PassRateScorer
    from rl.modeling import load_tokenizer
    from rollout.types import Trajectory

    tok = load_tokenizer(str(tiny_model_dir))
    rows = [{"prompt": f"Compute: {j}+1", "reward_model": {"ground_truth": str(j + 1)}} for j in range(5)]

    class Scripted:
        calls = 0

        def generate(self, prompt_ids, n, sampling):
            Scripted.calls += 1
            out = []
            for g, ids in enumerate(prompt_ids):
                j = int(re.search(r"Compute: (\d)", tok.decode(ids)).group(1))
                texts = [f"\\boxed{{{j + 1}}}" if s < j else "\\boxed{0}" for s in range(n)]
                out.append([Trajectory(prompt_ids=list(ids), completion_ids=tok(t, add_special_tokens=False)["input_ids"],
                                       text=t, group_index=g) for t in texts])
            return out

        def sync_weights(self, model):
            pass

    scorer = PassRateScorer(None, tok, k=4, batch_size=8, model_name="scripted", engine=Scripted())
    scores, report = score_rows(rows, scorer, tmp_path / "p.jsonl")
    assert [s.raw["correct"] for s in scores] == [0, 1, 2, 3, 4]
    assert [s.difficulty for s in scores] == [5, 4, 3, 2, 1]  # 0, .25, .5, .75, 1
    assert Scripted.calls == 3  # batch_size 8 // k 4 = 2 problems per call, each call's rows cached at once
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 5


def test_cli_scores_splits_and_reports(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts/score_difficulty.py"), "--dataset", "task:overthink",
           "--dataset_num_examples", "30", "--scorer", "column", "--out", str(out), "--threshold", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    import pandas as pd

    scored, sft, rl = (pd.read_parquet(out / f"{n}.parquet") for n in ("scored", "sft", "rl"))
    assert len(scored) == 30 and len(sft) + len(rl) == 30
    assert (rl["difficulty"] >= 3).all() and (sft["difficulty"] < 3).all()
    assert report["split"]["rl"] == len(rl) and report["rows"] == 30 and "SFT" in proc.stdout
    proc2 = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert json.loads((out / "report.json").read_text())["cached"] == 30 and "30 cached" in proc2.stdout

"""NRP judges: the rule judge, and the endpoint judge against real local HTTP servers."""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace

import pytest

from tests.helpers import closed_port_url, local_http_server

from rewards.decs.judges import (
    DEFAULT_JUDGE_TEMPLATE,
    PAPER_JUDGE_TEMPLATE,
    PARSIMONY_JUDGE_TEMPLATE,
    EndpointJudge,
    JudgeItem,
    RuleJudge,
    chat_completions_url,
    parse_verdict,
    render_template,
    rule_candidates,
    verdict_contains_yes,
)

# --------------------------------------------------------------------------- rule judge


def test_rule_candidates():
    assert rule_candidates("So the answer is 15.\n") == ["15"]
    assert rule_candidates("Thus \\boxed{\\frac{3}{4}} done") == ["\\frac{3}{4}"]
    assert rule_candidates("3 + 4 = 7\n7 * 2 = 14\n") == ["14"]
    # explicit statement decides alone (the "=" of the line above is not a candidate)
    assert rule_candidates("x = 15\nSo the answer is 14.") == ["14"]
    # no explicit statement: last number and the right-hand side of the last "=" on the last line
    assert rule_candidates("so x = \\frac{1}{2}.") == ["2", "\\frac{1}{2}"]
    assert rule_candidates("") == [] and rule_candidates("no numbers here") == []


@pytest.mark.parametrize("use_grader", [False, True])
def test_rule_judge(use_grader, math_grader):
    judge = RuleJudge(grader=math_grader if use_grader else None)
    items = [
        JudgeItem("p", "Let me compute.\n3 + 4 = 7\nSo the answer is 7.\n", "7"),
        JudgeItem("p", "Wait, check.\n3 + 4 = 7\nYes, the answer is 7.\n", "8"),
        JudgeItem("p", "x = 15\nSo the answer is 14.", "15"),
        JudgeItem("p", "Therefore $x = \\dfrac{1}{2}$\n", "0.5"),
        JudgeItem("p", "Hmm, I am not sure yet.\n", "3"),
        JudgeItem("p", "the answer is 3", ""),
        JudgeItem("p", "1" * 1_000_000, "1"),  # pathological: bounded, no hang
    ]
    t0 = time.monotonic()
    assert judge.judge(items) == [True, False, False, True, False, False, False]
    assert time.monotonic() - t0 < 10
    s = judge.pop_stats()
    assert s["calls"] == len(items) and s["latency_s"] >= 0
    assert judge.pop_stats()["calls"] == 0


# --------------------------------------------------------------------------- helpers


def test_render_template_and_parse_verdict():
    t = "P={problem} S={segment} G={ground_truth} \\boxed{yes} {other}"
    got = render_template(t, problem="a{segment}", segment="\\frac{1}{2}", ground_truth="{x}")
    assert got == "P=a{segment} S=\\frac{1}{2} G={x} \\boxed{yes} {other}"
    d = render_template(DEFAULT_JUDGE_TEMPLATE, "PROB", "SEG", "GT")
    assert "PROB" in d and "SEG" in d and "GT" in d and "\\boxed{yes}" in d and "{" + "segment}" not in d
    assert parse_verdict("\\boxed{yes}") is True
    assert parse_verdict("thinking... \\boxed{no}") is False
    assert parse_verdict("\\boxed{no} hmm, actually \\boxed{ YES }") is True
    assert parse_verdict("\\boxed{\\text{yes}}") is True
    assert parse_verdict("yes") is None and parse_verdict("\\boxed{maybe}") is None and parse_verdict(None) is None


def test_chat_completions_url():
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_endpoint_judge_config(monkeypatch):
    monkeypatch.delenv("PARSIMONY_DECS_JUDGE_URL", raising=False)
    with pytest.raises(ValueError, match="url"):
        EndpointJudge()
    monkeypatch.setenv("PARSIMONY_DECS_JUDGE_URL", "http://127.0.0.1:10041")
    j = EndpointJudge()
    assert j.url == "http://127.0.0.1:10041/v1/chat/completions" and j.model == "DECS_NRP_DETECTOR"
    assert j.fallback == "rule" and j.deadline == pytest.approx(3 * 30 + 0.5 + 1.0)
    assert (j.breaker.failures, j.breaker.cooldown, j.breaker.max_cooldown) == (5, 30.0, 300.0)
    assert EndpointJudge(breaker_failures=0).breaker is None
    # the paper's prompt and decoding by default, ours on request; each can be set on its own
    assert (j.prompt, j.template, j.max_tokens, j.verdict, j.max_prompt_tokens, j.max_segment_chars) == (
        "paper", PAPER_JUDGE_TEMPLATE, 5, "contains_yes", 17_990, 0)
    o = EndpointJudge(prompt="parsimony")
    assert (o.template, o.max_tokens, o.verdict, o.max_prompt_tokens, o.max_segment_chars) == (
        PARSIMONY_JUDGE_TEMPLATE, 128, "boxed", 0, 20_000)
    o = EndpointJudge(prompt="parsimony", max_tokens=9, verdict="contains_yes", max_prompt_tokens=7, max_segment_chars=0)
    assert (o.template, o.max_tokens, o.verdict, o.max_prompt_tokens, o.max_segment_chars) == (
        PARSIMONY_JUDGE_TEMPLATE, 9, "contains_yes", 7, 0)
    for kw in ({"fallback": "x"}, {"timeout": 0}, {"retries": -1}, {"concurrency": 0}, {"template": "{problem}"},
               {"max_segment_chars": -1}, {"deadline": 0}, {"breaker_failures": -1}, {"breaker_cooldown": 0},
               {"breaker_cooldown": 10, "breaker_max_cooldown": 5}, {"prompt": "mine"}, {"verdict": "maybe"},
               {"max_tokens": 0}, {"max_prompt_tokens": -1}):
        with pytest.raises(ValueError):
            EndpointJudge(**kw)


# --------------------------------------------------------------------------- local servers

TEST_TEMPLATE = "SEG<<{segment}>> GT<<{ground_truth}>> PROB<<{problem}>>"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):  # quiet
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        with srv.lock:
            srv.requests.append({"body": body, "auth": self.headers.get("Authorization"), "path": self.path})
        mode = srv.mode
        if mode == "sleep_or_500":  # segments marked FAIL fail at once, the others hang
            mode = "500" if "FAIL" in body["messages"][-1]["content"] else "sleep"
        if mode == "sleep":
            time.sleep(srv.sleep)
        if mode == "500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"boom")
            return
        content = body["messages"][-1]["content"]
        if mode == "garbage":
            reply = "I think so."
        elif mode == "reply":  # a fixed reply
            reply = srv.reply
        elif mode == "bad_json":
            raw = b"not json"
            self.send_response(200)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
            return
        else:  # inspect the segment: yes iff it states "the answer is <ground truth>"
            seg = re.search(r"SEG<<(.*?)>> GT<<", content, re.S)
            gt = re.search(r"GT<<(.*?)>>", content, re.S)
            if seg is None:  # the paper's template (the default)
                seg = re.search(r"\*\*Reasoning segment\*\*:\n(.*?)\n\*\*Ground Truth\*\*: ", content, re.S)
                gt = re.search(r"\*\*Ground Truth\*\*: (.*)$", content, re.S)
            if seg is None:  # ours
                seg = re.search(r"Reasoning segment:\n(.*?)\n\nGround-truth answer:", content, re.S)
                gt = re.search(r"Ground-truth answer:\n(.*?)\n\n", content, re.S)
            ok = seg is not None and gt is not None and f"answer is {gt.group(1)}" in seg.group(1)
            reply = "\\boxed{yes}" if ok else "\\boxed{no}"
        raw = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture()
def server():
    with local_http_server(_Handler, path="/v1", mode="ok", sleep=0.0, requests=[], reply="") as srv:
        yield srv


def _closed_port_url() -> str:
    return closed_port_url()


ITEMS = [
    JudgeItem("3 + 4", "Let me compute.\n3 + 4 = 7\nSo the answer is 7.\n", "7"),
    JudgeItem("3 + 4", "Wait, check.\n3 + 4 = 7\nthat is 7.\n", "7"),
    JudgeItem("2 * 5", "Hmm.\nYes, the answer is 10.\n", "10"),
    JudgeItem("2 * 5", "Alternatively the answer is 11.\n", "10"),
]
# what the test server says (segment states "answer is <gt>") and what the rule judge says
SERVER_VERDICTS = [True, False, True, False]
RULE_VERDICTS = [True, True, True, False]


def test_endpoint_judge_answers(server, monkeypatch):
    monkeypatch.setenv("PARSIMONY_DECS_JUDGE_API_KEY", "sekret")
    j = EndpointJudge(server.url, model="my-detector", template=TEST_TEMPLATE, timeout=5, concurrency=4)
    verdicts, fell_back = j.judge_detailed(ITEMS)
    assert verdicts == SERVER_VERDICTS and fell_back == [False] * 4
    assert len(server.requests) == 4
    r = server.requests[0]
    assert r["path"] == "/v1/chat/completions" and r["auth"] == "Bearer sekret"
    assert r["body"]["model"] == "my-detector" and r["body"]["temperature"] == 0.0
    contents = sorted(q["body"]["messages"][0]["content"] for q in server.requests)
    assert render_template(TEST_TEMPLATE, ITEMS[0].problem, ITEMS[0].segment, ITEMS[0].ground_truth) in contents
    s = j.pop_stats()
    assert (s["calls"], s["requests"], s["fallbacks"], s["timeouts"], s["errors"], s["unparseable"]) == (4, 4, 0, 0, 0, 0)
    assert s["latency_s"] > 0


def test_endpoint_default_template(server, monkeypatch):
    monkeypatch.delenv("PARSIMONY_DECS_JUDGE_API_KEY", raising=False)
    monkeypatch.setenv("PARSIMONY_DECS_JUDGE_URL", server.url)
    j = EndpointJudge(timeout=5)
    assert j.judge(ITEMS) == SERVER_VERDICTS
    assert server.requests[0]["auth"] is None and server.requests[0]["body"]["model"] == "DECS_NRP_DETECTOR"


# --------------------------------------------------------------------------- the paper's protocol (issue 30 item 3)

# the released detector's prompt for SAMPLE, written out by hand (its typo "segement" included)
PAPER_PROMPT_SAMPLE = (
    "Given a math problem and a segement of a long reasoning process to solve the problem, your task is to identify "
    "whether this segment has presented a correct final answer. If the segment contains information that can serve "
    "as the final answer to the problem and the answer is semantically correct when referring to the ground truth, "
    "simply explain the reason and output \\boxed{yes}. Otherwise, directly output \\boxed{no}.\n"
    "**Problem**:\nWhat is 3 + 4?\n**Reasoning segment**:\n3 + 4 = 7, so the answer is 7.\n**Ground Truth**: 7"
)
SAMPLE = JudgeItem("What is 3 + 4?", "3 + 4 = 7, so the answer is 7.", "7")


class _WordTokenizer:
    """Counts whitespace-separated words as tokens (the judge only needs a count); a text or a batch."""

    def __call__(self, text, add_special_tokens=False):
        if isinstance(text, list):
            return {"input_ids": [self(t)["input_ids"] for t in text]}
        return {"input_ids": [0] * len(text.split())}


def test_paper_prompt_renders_the_released_template():
    assert DEFAULT_JUDGE_TEMPLATE == PAPER_JUDGE_TEMPLATE
    assert render_template(PAPER_JUDGE_TEMPLATE, SAMPLE.problem, SAMPLE.segment, SAMPLE.ground_truth) == PAPER_PROMPT_SAMPLE
    j = EndpointJudge("http://127.0.0.1:9", tokenizer=_WordTokenizer())
    assert j.render(SAMPLE) == PAPER_PROMPT_SAMPLE
    assert j.render(JudgeItem("  What is 3 + 4?\n", SAMPLE.segment, "7")) == PAPER_PROMPT_SAMPLE  # stripped, as the code does
    assert render_template("{answer}|{ground_truth}", "p", "s", "7") == "7|7"  # the released template's name for it


def test_verdict_rules():
    # the paper's: "yes" anywhere (case-sensitive); neither yes nor no -> None (unparseable, then no)
    assert [verdict_contains_yes(t) for t in ("The answer is yes", "\\boxed{yes}", "yes", "\\boxed{no}", "Yes", "", None)] == [
        True, True, True, False, None, None, None]
    # ours: the last \boxed{yes|no}
    assert parse_verdict("The answer is yes") is None and parse_verdict("\\boxed{yes}") is True


def test_endpoint_speaks_the_paper_protocol_by_default(server):
    server.mode, server.reply = "reply", "The answer is yes"
    j = EndpointJudge(server.url, timeout=5, tokenizer=_WordTokenizer())
    assert j.judge([SAMPLE]) == [True]
    body = server.requests[0]["body"]
    assert body["max_tokens"] == 5 and body["temperature"] == 0.0 and body["model"] == "DECS_NRP_DETECTOR"
    assert body["messages"] == [{"role": "user", "content": PAPER_PROMPT_SAMPLE}]
    for reply, want in (("\\boxed{yes}", True), ("yes", True), ("\\boxed{no}", False), ("The segment", False)):
        server.reply = reply
        assert j.judge([SAMPLE]) == [want], reply
    s = j.pop_stats()
    assert (s["requests"], s["unparseable"], s["fallbacks"]) == (5, 1, 0)
    # ours, on request: 128 new tokens, the last \boxed{yes|no}, so a bare "yes" is unreadable (no)
    server.reply = "The answer is yes"
    o = EndpointJudge(server.url, prompt="parsimony", timeout=5)
    assert o.judge([SAMPLE]) == [False] and o.pop_stats()["unparseable"] == 1
    body = server.requests[-1]["body"]
    assert body["max_tokens"] == 128
    assert body["messages"][0]["content"] == render_template(PARSIMONY_JUDGE_TEMPLATE, SAMPLE.problem, SAMPLE.segment, "7")


def test_over_long_prompt_counts_as_no_without_a_request(server):
    server.mode, server.reply = "reply", "\\boxed{yes}"
    tokenizer = _WordTokenizer()
    j = EndpointJudge(server.url, timeout=5, tokenizer=tokenizer)  # the paper's limit: 17,990 judge tokens

    def item(extra_words: int) -> JudgeItem:
        return JudgeItem("p", "the answer is 7" + " x" * extra_words, "7")

    base = len(tokenizer(j.render(item(0)))["input_ids"])
    at_limit, over = item(17_990 - base), item(17_991 - base)
    assert len(tokenizer(j.render(over))["input_ids"]) == 17_991
    assert j.judge([over, at_limit]) == [False, True]
    assert len(server.requests) == 1 and server.requests[0]["body"]["messages"][0]["content"] == j.render(at_limit)
    s = j.pop_stats()
    assert (s["skipped_long"], s["requests"], s["fallbacks"], s["calls"]) == (1, 1, 0, 2)
    # 0 turns the limit off; the paper's prompt has no character limit (the segments above are 36k characters)
    assert EndpointJudge(server.url, timeout=5, tokenizer=tokenizer, max_prompt_tokens=0).judge([over]) == [True]


def test_endpoint_unparseable_and_bad_json(server):
    server.mode = "garbage"
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=5, retries=0)
    assert j.judge(ITEMS) == [False] * 4
    s = j.pop_stats()
    assert s["unparseable"] == 4 and s["fallbacks"] == 0
    server.mode = "bad_json"  # the server answered: a malformed reply is not retried
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=5, retries=1, backoff=0.01, fallback="no_penalty")
    verdicts, fell_back = j.judge_detailed(ITEMS)
    assert verdicts == [None] * 4 and fell_back == [True] * 4
    s = j.pop_stats()
    assert s["errors"] == 4 and s["requests"] == 4 and s["fallbacks"] == 4


def test_endpoint_long_segments_not_sent(server):
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=5, max_segment_chars=50)  # ITEMS[0]: 45 chars
    long_yes = JudgeItem("p", "x" * 50 + " the answer is 7", "7")
    assert j.judge([long_yes, ITEMS[0]]) == [False, True]
    assert len(server.requests) == 1
    s = j.pop_stats()
    assert s["skipped_long"] == 1 and s["fallbacks"] == 0


@pytest.mark.serial
@pytest.mark.parametrize("fallback", ["rule", "no_penalty"])
def test_endpoint_timeout_fallback(server, fallback):
    server.mode, server.sleep = "sleep", 3.0
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=0.3, retries=2, backoff=0.05, fallback=fallback)
    t0 = time.monotonic()
    verdicts, fell_back = j.judge_detailed(ITEMS)
    elapsed = time.monotonic() - t0
    assert elapsed < 0.9  # one attempt of 0.3 s per request, all concurrent: a timed-out verdict is not re-asked
    assert fell_back == [True] * 4
    assert verdicts == (RULE_VERDICTS if fallback == "rule" else [None] * 4)
    s = j.pop_stats()
    assert s["fallbacks"] == 4 and s["timeouts"] == 4 and s["requests"] == 4
    assert len(server.requests) == 4


def test_endpoint_http_500(server):
    server.mode = "500"
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=2, retries=2, backoff=0.01, fallback="rule",
                      breaker_failures=0)  # 5xx is retried (the breaker, off here, would stop it earlier)
    verdicts, fell_back = j.judge_detailed(ITEMS)
    assert verdicts == RULE_VERDICTS and fell_back == [True] * 4
    s = j.pop_stats()
    assert s["errors"] == 4 and s["requests"] == 12 and s["fallbacks"] == 4 and s["timeouts"] == 0


@pytest.mark.serial
def test_endpoint_connection_refused():
    j = EndpointJudge(_closed_port_url(), timeout=2, retries=2, backoff=0.01, fallback="no_penalty")
    t0 = time.monotonic()
    verdicts, fell_back = j.judge_detailed(ITEMS)
    assert time.monotonic() - t0 < 2.0
    assert verdicts == [None] * 4 and fell_back == [True] * 4
    s = j.pop_stats()
    assert s["errors"] == 4 and s["fallbacks"] == 4


@pytest.mark.serial
def test_endpoint_overall_deadline(server):
    # 12 items, one thread, each request hangs: without the deadline this would take ~12 x 1 s
    server.mode, server.sleep = "sleep", 5.0
    items = ITEMS * 3
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=1.0, retries=3, backoff=0.05, concurrency=1,
                      deadline=0.6, fallback="rule")
    t0 = time.monotonic()
    verdicts, fell_back = j.judge_detailed(items)
    assert time.monotonic() - t0 < 1.5
    assert verdicts == RULE_VERDICTS * 3 and fell_back == [True] * 12
    s = j.pop_stats()
    assert s["fallbacks"] == 12 and s["timeouts"] == 12 and s["requests"] <= 2


@pytest.mark.serial
def test_endpoint_breaker_closed_port_then_batches_short_circuit():
    """Defect 11: a dead judge cost every step a full timeout budget. With the breaker, the
    first batch trips it; the next batches fall back at once, without a request."""
    j = EndpointJudge(_closed_port_url(), timeout=2, retries=2, backoff=0.01, fallback="rule",
                      breaker_failures=3, breaker_cooldown=60)
    items = ITEMS * 8
    verdicts, fell_back = j.judge_detailed(items)
    assert verdicts == RULE_VERDICTS * 8 and fell_back == [True] * 32
    s = j.pop_stats()
    assert s["breaker_trips"] == 1 and s["breaker_open"] == 1.0 and s["errors"] + s["short_circuits"] >= 32
    assert s["requests"] < 32 * 3  # the open breaker refused the rest
    t0 = time.perf_counter()
    verdicts, fell_back = j.judge_detailed(items)
    elapsed = time.perf_counter() - t0
    assert verdicts == RULE_VERDICTS * 8 and fell_back == [True] * 32
    assert elapsed < 0.5, elapsed
    s = j.pop_stats()
    assert (s["requests"], s["short_circuits"], s["errors"], s["timeouts"], s["fallbacks"]) == (0, 32, 0, 0, 32)
    assert s["breaker_trips"] == 0 and s["breaker_open"] == 1.0


@pytest.mark.serial
def test_endpoint_breaker_hanging_server_then_recovery(server):
    server.mode, server.sleep = "sleep", 5.0
    cooldown = 0.6
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=0.3, retries=2, backoff=0.01, fallback="no_penalty",
                      breaker_failures=2, breaker_cooldown=cooldown)
    t0 = time.monotonic()
    assert j.judge(ITEMS) == [None] * 4
    assert time.monotonic() - t0 < 0.9  # one timeout, no retry
    assert len(server.requests) == 4 and j.breaker.state == "open"
    t0 = time.monotonic()
    assert j.judge(ITEMS) == [None] * 4
    assert time.monotonic() - t0 < 0.1  # short-circuited: not even one timeout
    assert len(server.requests) == 4
    server.mode = "ok"  # the server recovers; after the cool-down one probe goes through and closes the breaker
    time.sleep(cooldown + 0.1)
    verdicts, fell_back = j.judge_detailed(ITEMS)
    assert j.breaker.state == "closed"
    assert sum(fell_back) <= 3 and len(server.requests) >= 5  # the probe's item got the server's verdict
    assert j.judge_detailed(ITEMS) == (SERVER_VERDICTS, [False] * 4)
    s = j.pop_stats()
    assert s["breaker_trips"] == 1 and s["breaker_probes"] == 1 and s["breaker_open"] == 0.0
    assert s["timeouts"] == 4 and s["short_circuits"] >= 4


@pytest.mark.serial
def test_endpoint_half_open_probe_to_a_hanging_judge_does_not_block_the_step(server):
    """Issue 29 item 5: steps longer than the cool-down each met a half-open breaker whose probe
    the step awaited for the whole request timeout. Now a step waits probe_wait at most; the
    items fall back (counted) and the probe's timeout reopens the breaker in the background."""
    server.mode, server.sleep = "sleep", 10.0
    cooldown = 0.3
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=2.0, retries=0, fallback="rule", deadline=5.0,
                      breaker_failures=2, breaker_cooldown=cooldown, breaker_max_cooldown=cooldown)
    j.breaker.probe_wait = 0.3
    t0 = time.monotonic()
    assert j.judge(ITEMS) == RULE_VERDICTS  # the first step: one timeout, the breaker opens
    assert 1.5 < time.monotonic() - t0 < 3.5 and j.breaker.state == "open"
    j.pop_stats()
    for step in range(2):
        time.sleep(cooldown + 0.05)  # the rest of a step longer than the cool-down
        t0 = time.monotonic()
        verdicts, fell_back = j.judge_detailed(ITEMS)
        elapsed = time.monotonic() - t0
        assert elapsed < 1.2, f"step {step}: {elapsed:.1f} s (the probe's timeout is 2 s)"
        assert verdicts == RULE_VERDICTS and fell_back == [True] * 4
        s = j.pop_stats()
        assert s["fallbacks"] == 4 and s["timeouts"] + s["short_circuits"] == 4
        if step == 0:
            assert s["breaker_probes"] == 1 and s["timeouts"] == 1 and s["short_circuits"] == 3
            # the probe times out in the background (2 s) and opens the breaker again; polled, not
            # slept on: the breaker reads half-open again 0.3 s after it reopens, so a fixed sleep races
            trips = j.breaker.trips
            deadline = time.monotonic() + 6.0
            while j.breaker.trips == trips and time.monotonic() < deadline:
                time.sleep(0.02)
            assert j.breaker.trips == trips + 1 and j.breaker.state in ("open", "half_open")
    j.close()


@pytest.mark.serial
def test_endpoint_breaker_opening_abandons_the_requests_still_out(server):
    """Two requests fail at once and open the breaker while two others hang: the call returns
    without waiting for the hanging ones (they fall back)."""
    server.mode, server.sleep = "sleep_or_500", 5.0
    items = [JudgeItem("p", "hangs, the answer is 7", "7"), JudgeItem("p", "hangs too", "7"),
             JudgeItem("p", "FAIL, the answer is 7", "7"), JudgeItem("p", "FAIL", "7")]
    j = EndpointJudge(server.url, template=TEST_TEMPLATE, timeout=3.0, retries=0, concurrency=4, fallback="rule",
                      breaker_failures=2, breaker_cooldown=60)
    t0 = time.monotonic()
    verdicts, fell_back = j.judge_detailed(items)
    assert time.monotonic() - t0 < 1.5  # not the 3 s timeout of the hanging requests
    assert verdicts == [True, False, True, False] and fell_back == [True] * 4
    s = j.pop_stats()
    assert (s["errors"], s["abandoned"], s["timeouts"], s["breaker_trips"]) == (2, 2, 0, 1)


# --------------------------------------------------------------------------- with the reward


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _overthink(tok, k_wanted=2):
    from curriculum.tasks.overthink import REDUNDANT_PHRASES, generate_examples

    row = next(r for r in generate_examples(60, seed=3, redundancy="heavy") if r["extra_info"]["redundant_chunks"] == k_wanted)
    text = row["completion"][0]["content"]
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    first = min(text.index(p) for p in REDUNDANT_PHRASES if p in text)
    a = len(tok(text[:first], add_special_tokens=False)["input_ids"])
    b = len(tok(text[: text.index("</think>")], add_special_tokens=False)["input_ids"])
    return row, text, ids, a, b


def test_reward_with_endpoint_judge(server, tok, math_grader):
    from rewards.decs.reward import DECSRedundancyReward

    row, text, ids, a, b = _overthink(tok)
    r = DECSRedundancyReward(grader=math_grader)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={
        "decs_judge": "endpoint", "decs_judge_url": server.url, "decs_judge_model": "m",
        "decs_judge_template": TEST_TEMPLATE, "decs_judge_timeout": 5, "decs_judge_retries": 0,
        "decs_judge_concurrency": 2,
    }))
    out = r(prompts=[row["prompt"]], completions=[text], completion_ids=[ids], reward_model=[row["reward_model"]])
    assert out == [[1.0 if a <= i < b else 0.0 for i in range(len(ids))]]
    assert len(server.requests) == 3  # one per chunk of the (correct) response
    assert "PROB<<Compute left to right:" in server.requests[0]["body"]["messages"][0]["content"]
    m = r.pop_metrics()
    assert m["decs/judge_calls"] == 3 and m["decs/judge_fallbacks"] == 0 and m["decs/judge_latency_s"] > 0
    assert r.pop_meta()[0]["decs/judge_fallback"] is False


@pytest.mark.serial
@pytest.mark.parametrize("fallback", ["rule", "no_penalty"])
def test_reward_with_dead_endpoint(tok, math_grader, fallback):
    from rewards.decs.reward import DECSRedundancyReward

    row, text, ids, a, b = _overthink(tok)
    r = DECSRedundancyReward(grader=math_grader)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={
        "decs_judge": "endpoint", "decs_judge_url": _closed_port_url(), "decs_judge_retries": 1,
        "decs_judge_timeout": 1, "decs_judge_fallback": fallback,
    }))
    r.judge.backoff = 0.01
    t0 = time.monotonic()
    out = r(prompts=[row["prompt"]], completions=[text], completion_ids=[ids], reward_model=[row["reward_model"]])
    assert time.monotonic() - t0 < 5
    if fallback == "rule":
        assert out == [[1.0 if a <= i < b else 0.0 for i in range(len(ids))]]
    else:
        assert out == [[0.0] * len(ids)]
    meta = r.pop_meta()[0]
    assert meta["decs/judge_fallback"] is True and meta["decs/correct"] is True
    assert meta["decs/nrp_chunk"] == (0 if fallback == "rule" else None)
    m = r.pop_metrics()
    assert m["decs/judge_fallbacks"] == 3 and m["decs/judge_errors"] == 3
    assert m["decs/judge_breaker_trips"] == 1  # default: 5 consecutive failures (3 items x 2 attempts)
    # the next batch is short-circuited, and the reward's metrics say so
    t0 = time.monotonic()
    r(prompts=[row["prompt"]], completions=[text], completion_ids=[ids], reward_model=[row["reward_model"]])
    assert time.monotonic() - t0 < 1
    m = r.pop_metrics()
    assert m["decs/judge_fallbacks"] == 3 and m["decs/judge_short_circuits"] == 3 and m["decs/judge_errors"] == 0
    assert m["decs/judge_breaker_trips"] == 0


def test_reward_endpoint_judge_defaults_to_the_paper_protocol_and_chunking(server, tok, math_grader):
    from rewards.decs.reward import DECSRedundancyReward

    row, text, ids, a, b = _overthink(tok)
    r = DECSRedundancyReward(grader=math_grader)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "endpoint", "decs_judge_url": server.url}))
    assert r.resolved_chunking() == "paper" and r.judge.tokenizer is tok  # the policy's tokenizer counts the prompt
    out = r(prompts=[row["prompt"]], completions=[text], completion_ids=[ids], reward_model=[row["reward_model"]])
    assert out == [[1.0 if a <= i < b else 0.0 for i in range(len(ids))]]
    chunks = r.analyze(prompts=[row["prompt"]], completions=[text], completion_ids=[ids],
                       reward_model=[row["reward_model"]])[0].chunks
    assert [c.text for c in chunks] == [tok.decode(ids[c.start_token:c.end_token], skip_special_tokens=True) for c in chunks]
    bodies = [q["body"] for q in server.requests[:3]]
    assert {q["max_tokens"] for q in bodies} == {5}
    problem = row["prompt"][-1]["content"].strip()
    assert sorted(q["messages"][0]["content"] for q in bodies) == sorted(
        render_template(PAPER_JUDGE_TEMPLATE, problem, c.text, str(row["reward_model"]["ground_truth"])) for c in chunks)
    # the rule judge keeps its line chunking
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={"decs_judge": "rule"}))
    assert r.resolved_chunking() == "lines"


def test_over_long_prompt_with_a_real_tokenizer(server, tok):
    server.mode, server.reply = "reply", "\\boxed{yes}"
    j = EndpointJudge(server.url, timeout=5, tokenizer=tok)
    n = len(tok(j.render(SAMPLE), add_special_tokens=False)["input_ids"])
    j.max_prompt_tokens = n
    assert j.judge([SAMPLE]) == [True]
    j.max_prompt_tokens = n - 1
    assert j.judge([SAMPLE]) == [False]
    assert len(server.requests) == 1 and j.pop_stats()["skipped_long"] == 1


def test_judge_tokenizer_setting_loads_the_judges_own(server, tok, tiny_model_dir, math_grader):
    from rewards.decs.reward import DECSRedundancyReward

    r = DECSRedundancyReward(grader=math_grader)
    r.setup(tokenizer=tok, args=SimpleNamespace(method_kwargs={
        "decs_judge": "endpoint", "decs_judge_url": server.url, "decs_judge_tokenizer": str(tiny_model_dir),
        "decs_judge_prompt": "parsimony", "decs_judge_max_prompt_tokens": 40}))
    j = r.judge
    assert j.tokenizer is not tok and j.tokenizer("a b")["input_ids"] == tok("a b")["input_ids"]
    assert (j.prompt, j.max_tokens, j.verdict, j.max_prompt_tokens, j.max_segment_chars) == (
        "parsimony", 128, "boxed", 40, 20_000)
    assert j.judge([SAMPLE]) == [False] and server.requests == [] and j.pop_stats()["skipped_long"] == 1

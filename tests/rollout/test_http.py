"""The shared HTTP client (rollout/http.py) against real local servers on 127.0.0.1: retries and
backoff, what is never retried, the circuit breaker, timeouts."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import closed_port_url, local_http_server

from rollout.http import CircuitBreaker, CircuitOpenError, HTTPClient, HTTPRequestError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's server does

    def log_message(self, *a):
        pass

    def do_GET(self):
        self._serve()

    def do_POST(self):
        self._serve()

    def _serve(self):
        srv = self.server
        n = int(self.headers.get("Content-Length", 0) or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        with srv.lock:
            srv.hits.append({"method": self.command, "path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            step = srv.script.pop(0) if srv.script else srv.default
        if step == "hang":
            time.sleep(srv.hang)
            step = 200
        if step == "drop":  # read the request, then close without an answer
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        code, extra = (step, {}) if isinstance(step, int) else step
        raw = json.dumps({"hits": len(srv.hits), "echo": body}).encode() if code < 400 else f"error {code}".encode()
        self.send_response(code)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture()
def server():
    with local_http_server(_Handler, hits=[], script=[], default=200, hang=5.0) as srv:
        yield srv


def _closed_port_url() -> str:
    return closed_port_url()


def test_5xx_and_429_are_retried_with_backoff_then_succeed(server):
    server.script = [503, (429, {"Retry-After": "0"}), 502]
    c = HTTPClient(server.url, timeout=5, retries=3, backoff=0.05, jitter=0.0)
    t0 = time.monotonic()
    out = c.post_json("/v1/x", {"a": 1}, what="test")
    elapsed = time.monotonic() - t0
    assert out == {"hits": 4, "echo": {"a": 1}}
    assert [h["body"] for h in server.hits] == [{"a": 1}] * 4
    assert elapsed >= 0.05 + 0.1 + 0.2 - 0.02  # the exponential pauses were taken
    assert c.pop_stats() == {"requests": 4.0, "retries": 3.0}
    # more failures than retries: the last answer is the error
    server.script = [500, 500]
    with pytest.raises(HTTPRequestError) as e:
        HTTPClient(server.url, timeout=5, retries=1, backoff=0.0).post_json("/v1/x", {})
    assert e.value.kind == "status" and e.value.status == 500 and e.value.attempts == 2 and "error 500" in str(e.value)


def test_4xx_is_not_retried(server):
    server.default = 400
    c = HTTPClient(server.url, timeout=5, retries=3, backoff=0.0, breaker=CircuitBreaker(failures=1, cooldown=60))
    for _ in range(3):
        with pytest.raises(HTTPRequestError) as e:
            c.post_json("/v1/x", {"a": 1})
        assert e.value.kind == "status" and e.value.status == 400 and e.value.attempts == 1
        assert "error 400" in e.value.body
    assert len(server.hits) == 3
    assert c.breaker.state == "closed"  # a 4xx proves the server is alive


def test_headers_and_get(server, monkeypatch):
    monkeypatch.setenv("T_KEY", "k1")
    import os

    c = HTTPClient(server.url, timeout=5, headers_fn=lambda: {"Authorization": f"Bearer {os.environ['T_KEY']}"})
    assert c.get_json("/v1/models")["hits"] == 1
    assert server.hits[0]["method"] == "GET" and server.hits[0]["auth"] == "Bearer k1"


def test_closed_port_trips_the_breaker_then_calls_short_circuit_in_milliseconds():
    K = 3
    c = HTTPClient(_closed_port_url(), timeout=2, retries=1, backoff=0.01,
                   breaker=CircuitBreaker(failures=K, cooldown=60))
    with pytest.raises(HTTPRequestError) as e:
        c.post_json("/v1/x", {})
    assert e.value.kind == "connect" and e.value.attempts == 2  # connection refused: retried
    with pytest.raises(HTTPRequestError) as e:  # the 3rd consecutive failure trips it; the retry is refused
        c.post_json("/v1/x", {})
    assert e.value.kind == "connect" and e.value.attempts == 1 and e.value.short_circuited
    assert c.breaker.state == "open"
    times = []
    for _ in range(50):
        t0 = time.perf_counter()
        with pytest.raises(CircuitOpenError):
            c.post_json("/v1/x", {})
        times.append(time.perf_counter() - t0)
    assert sum(times) / len(times) < 0.005 and max(times) < 0.05, times
    s = c.pop_stats()
    assert s["requests"] == 3 and s["breaker_trips"] == 1 and s["short_circuits"] == 51 and s["breaker_open"] == 1.0
    assert c.pop_stats()["short_circuits"] == 0  # counters reset on pop


def test_an_open_breaker_sends_nothing_then_a_probe_closes_it(server):
    server.default = 500
    cooldown = 0.4
    c = HTTPClient(server.url, timeout=5, retries=0, breaker=CircuitBreaker(failures=2, cooldown=cooldown))
    for _ in range(2):
        with pytest.raises(HTTPRequestError):
            c.post_json("/v1/x", {})
    assert c.breaker.state == "open" and len(server.hits) == 2
    for _ in range(5):
        with pytest.raises(CircuitOpenError):
            c.post_json("/v1/x", {})
    assert len(server.hits) == 2  # short-circuited: no request reached the server
    time.sleep(cooldown + 0.05)
    assert c.breaker.state == "half_open"
    with pytest.raises(HTTPRequestError) as e:  # the probe goes out and fails: open again
        c.post_json("/v1/x", {})
    assert e.value.kind == "status" and len(server.hits) == 3 and c.breaker.state == "open"
    with pytest.raises(CircuitOpenError):
        c.post_json("/v1/x", {})
    server.default = 200  # the server recovers
    time.sleep(cooldown + 0.05)
    assert c.post_json("/v1/x", {"ok": 1})["echo"] == {"ok": 1}  # the probe succeeds
    assert c.breaker.state == "closed"
    assert c.post_json("/v1/x", {})["hits"] == 5
    s = c.pop_stats()
    assert (s["breaker_trips"], s["breaker_probes"], s["short_circuits"], s["breaker_open"]) == (2, 2, 6, 0.0)


def test_half_open_lets_exactly_one_probe_through(server):
    server.default = 500
    c = HTTPClient(server.url, timeout=5, retries=0, breaker=CircuitBreaker(failures=1, cooldown=0.2))
    with pytest.raises(HTTPRequestError):
        c.post_json("/v1/x", {})
    server.default, server.script, server.hang = 200, ["hang"], 0.5
    time.sleep(0.25)
    probe = threading.Thread(target=c.post_json, args=("/v1/x", {}))
    probe.start()
    time.sleep(0.1)  # the probe is being answered slowly
    t0 = time.perf_counter()
    with pytest.raises(CircuitOpenError):
        c.post_json("/v1/x", {})
    assert time.perf_counter() - t0 < 0.05
    probe.join()
    assert c.breaker.state == "closed" and len(server.hits) == 2


@pytest.mark.serial
def test_a_hanging_probe_costs_the_caller_probe_wait_not_the_timeout(server):
    """Issue 29 item 5: the half-open probe to a server that never answers was awaited for the whole
    request timeout. The caller now waits ``probe_wait`` at most; the probe goes on in the background
    and its outcome (here a timeout) opens the breaker again."""
    server.default, server.hang = 500, 5.0
    c = HTTPClient(server.url, timeout=2.0, retries=0,
                   breaker=CircuitBreaker(failures=1, cooldown=0.2, probe_wait=0.3))
    with pytest.raises(HTTPRequestError):
        c.post_json("/v1/x", {})
    assert c.breaker.state == "open"
    server.default = "hang"  # the server hangs now: accepts, never answers (within the timeout)
    time.sleep(0.25)
    t0 = time.monotonic()
    with pytest.raises(HTTPRequestError) as e:  # the probe: not answered within probe_wait
        c.post_json("/v1/x", {})
    assert time.monotonic() - t0 < 1.0, "the caller waited for the probe's full timeout"
    assert e.value.kind == "timeout" and e.value.short_circuited and e.value.attempts == 1
    assert len(server.hits) == 2
    t0 = time.monotonic()
    with pytest.raises(CircuitOpenError):  # while the probe is out, the others fail fast
        c.post_json("/v1/x", {})
    assert time.monotonic() - t0 < 0.05 and c.breaker.state == "half_open"
    time.sleep(2.0)  # the probe's own timeout (2 s) ends: a failed probe opens the breaker again
    assert c.breaker.trips == 2 and c.breaker.state != "closed"
    s = c.pop_stats()
    assert (s["breaker_trips"], s["breaker_probes"], s["breaker_probes_detached"], s["short_circuits"]) == (2, 1, 1, 1)
    c.close()


def test_a_slow_probe_closes_the_breaker_from_the_background(server):
    """A live but slow server (answers after probe_wait, within the timeout): the caller falls back,
    the probe's late success closes the breaker, the next request goes through."""
    server.default = 500
    c = HTTPClient(server.url, timeout=3.0, retries=0,
                   breaker=CircuitBreaker(failures=1, cooldown=0.2, probe_wait=0.2))
    with pytest.raises(HTTPRequestError):
        c.post_json("/v1/x", {})
    server.default, server.script, server.hang = 200, ["hang"], 0.6
    time.sleep(0.25)
    with pytest.raises(HTTPRequestError) as e:
        c.post_json("/v1/x", {})
    assert e.value.kind == "timeout" and e.value.short_circuited
    time.sleep(0.7)
    assert c.breaker.state == "closed"
    assert c.post_json("/v1/x", {"ok": 1})["echo"] == {"ok": 1}
    # a probe answered within probe_wait is the caller's answer, as before
    server.default = 500
    with pytest.raises(HTTPRequestError):
        c.post_json("/v1/x", {})
    server.default, server.script, server.hang = 200, ["hang"], 0.05
    time.sleep(0.25)
    assert c.post_json("/v1/x", {"probe": 1})["echo"] == {"probe": 1}
    assert c.breaker.state == "closed"
    c.close()


@pytest.mark.serial
def test_a_timed_out_generation_is_surfaced_not_retried(server):
    server.default, server.hang = "hang", 3.0
    c = HTTPClient(server.url, timeout=0.3, retries=3, backoff=0.01)
    t0 = time.monotonic()
    with pytest.raises(HTTPRequestError) as e:
        c.post_json("/v1/completions", {"prompt": [1, 2]})
    assert time.monotonic() - t0 < 1.0
    assert e.value.kind == "timeout" and e.value.attempts == 1
    assert len(server.hits) == 1
    # an idempotent request (GET) is retried after a timeout
    with pytest.raises(HTTPRequestError) as e:
        c.get_json("/v1/models")
    assert e.value.kind == "timeout" and e.value.attempts == 4
    assert len(server.hits) == 5


def test_a_connection_dropped_after_sending_is_not_retried_for_post(server):
    server.default = "drop"
    c = HTTPClient(server.url, timeout=5, retries=3, backoff=0.01)
    with pytest.raises(HTTPRequestError) as e:
        c.post_json("/v1/completions", {})
    assert e.value.kind == "disconnect" and len(server.hits) == 1
    server.script, server.default = ["drop"], 200
    assert c.get_json("/v1/models")["hits"] == 3  # GET: retried on a fresh connection


@pytest.mark.serial
def test_deadline_and_cancel_bound_the_retries():
    c = HTTPClient(_closed_port_url(), timeout=5, retries=50, backoff=0.2, jitter=0.0)
    t0 = time.monotonic()
    with pytest.raises(HTTPRequestError) as e:
        c.post_json("/v1/x", {}, deadline=time.monotonic() + 0.5)
    assert time.monotonic() - t0 < 1.0 and e.value.kind == "connect"
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(HTTPRequestError):
        c.post_json("/v1/x", {}, cancel=cancel)
    assert time.monotonic() - t0 < 1.0


def test_bad_settings():
    for kw in ({"timeout": 0}, {"retries": -1}, {"backoff": -1}):
        with pytest.raises(ValueError):
            HTTPClient("http://127.0.0.1:1", **kw)
    with pytest.raises(ValueError):
        HTTPClient("127.0.0.1:1")
    for kw in ({"failures": 0}, {"cooldown": 0}, {"probe_wait": -1}):
        with pytest.raises(ValueError):
            CircuitBreaker(**kw)
    assert CircuitBreaker().probe_wait == 2.0  # the documented default


def test_cooldown_doubles_after_failed_probes_up_to_the_cap():
    now = [0.0]
    b = CircuitBreaker(failures=1, cooldown=1.0, max_cooldown=3.0, clock=lambda: now[0])
    b.record_failure()
    assert b.state == "open" and not b.allow()
    now[0] = 1.0
    assert b.allow()  # the probe
    b.record_failure()
    assert b.cooldown == 2.0
    now[0] = 2.9
    assert not b.allow()
    now[0] = 3.0
    assert b.allow()
    b.record_failure()
    assert b.cooldown == 3.0  # capped
    now[0] = 6.0
    assert b.allow()
    b.record_success()
    assert b.state == "closed" and b.cooldown == 1.0 and b.trips == 3


# --------------------------------------------------------------------------- the vLLM server client


class _FakeVLLM(BaseHTTPRequestHandler):
    """Just enough of `parsimony vllm-serve`: model listing, the weight-update ping, completions."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, code, obj):
        raw = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        self._send(200, {"data": [{"id": "m"}]})

    def do_POST(self):
        srv = self.server
        n = int(self.headers.get("Content-Length", 0) or 0)
        body = json.loads(self.rfile.read(n))
        if self.path == "/collective_rpc":
            return self._send(200, {"results": ["parsimony"]})
        with srv.lock:
            srv.generations.append(body)
            step = srv.script.pop(0) if srv.script else "ok"
        if step == "hang":
            time.sleep(3.0)
        if isinstance(step, int):
            return self._send(step, b"engine overloaded")
        choices = [{"index": i, "text": "x", "token_ids": [5, 6], "finish_reason": "stop"}
                   for i in range(len(body["prompt"]) * body["n"])]
        self._send(200, {"choices": choices})


@pytest.fixture()
def fake_vllm():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVLLM)
    srv.daemon_threads = True
    srv.handle_error = lambda request, client_address: None
    srv.lock, srv.generations, srv.script = threading.Lock(), [], []
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.serial
def test_vllm_server_client_retries_a_503_but_not_a_timed_out_generation(fake_vllm):
    from types import SimpleNamespace

    from rollout.types import SamplingConfig
    from rollout.vllm_server import RolloutServerError, VLLMServerEngine

    tok = SimpleNamespace(pad_token_id=0, eos_token_id=1)
    engine = VLLMServerEngine(fake_vllm.url, tok, timeout=0.5, retries=3, backoff=0.01)
    assert engine.model_name == "m" and engine.retries == 3
    sc = SamplingConfig(max_new_tokens=4)
    fake_vllm.script = [503]
    groups = engine.generate([[1, 2], [3]], 2, sc)
    assert [len(g) for g in groups] == [2, 2] and len(fake_vllm.generations) == 2  # the 503 was retried
    fake_vllm.script = ["hang"]
    t0 = time.monotonic()
    with pytest.raises(RolloutServerError) as e:
        engine.generate([[1, 2]], 2, sc)
    assert time.monotonic() - t0 < 1.5
    msg = str(e.value)
    assert "timed out" in msg and fake_vllm.url in msg and "--resume_from_checkpoint" in msg
    assert len(fake_vllm.generations) == 3  # sent once: the server may still be generating it
    fake_vllm.script = [400]
    with pytest.raises(RolloutServerError, match="answered 400 to the generation request: engine overloaded"):
        engine.generate([[1]], 1, sc)
    assert len(fake_vllm.generations) == 4
    engine.close()

"""`parsimony train --engine vllm` as a user runs it (colocated engine built by the trainer),
`parsimony vllm-serve`'s command line, and the server client's errors without a vLLM server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from argparse import Namespace
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import free_port
from tests.conftest import REPO, require_vllm
from tests.scripts.test_cli import _env, _train_args

from rollout.vllm_server import RolloutServerError, VLLMServerEngine


@pytest.mark.slow
def test_parsimony_train_with_colocated_vllm(tiny_model_dir, tmp_path):
    require_vllm()
    out = tmp_path / "run"
    args = _train_args(tiny_model_dir, out, 2, extra=["--engine", "vllm", "--vllm_is_cap", "2.0", "--vllm_dtype", "bfloat16"])
    proc = subprocess.run([sys.executable, "-m", "rl.commands.cli", "train", *args],
                          capture_output=True, text=True, env=_env(), cwd=REPO, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["time/weight_sync"] > 0
        # bf16 engine vs float32 trainer: a real, small mismatch, and IS weights near 1
        assert 0 < r["rollout/logp_mismatch_mean"] < 0.05
        assert r["rollout/logp_mismatch_max"] >= r["rollout/logp_mismatch_mean"]
        assert r["rollout/is_weight_mean"] == pytest.approx(1.0, abs=0.05)


def test_vllm_serve_command_line():
    from rl.commands.vllm_serve import parse_args, vllm_serve_argv
    args, extra = parse_args(["--model", "/m", "--port", "9001", "--", "--max-num-seqs", "64"])
    cpu = vllm_serve_argv(args, extra, on_cpu=True)
    assert cpu[:3] == ["vllm", "serve", "/m"]
    assert cpu[cpu.index("--port") + 1] == "9001"
    assert cpu[cpu.index("--worker-extension-cls") + 1] == "rollout.vllm_worker.WeightSyncExtension"
    assert cpu[cpu.index("--logprobs-mode") + 1] == "processed_logprobs"
    assert "--no-enable-prefix-caching" in cpu and "--enforce-eager" in cpu
    assert cpu[-2:] == ["--max-num-seqs", "64"]
    gpu = vllm_serve_argv(args, [], on_cpu=False)
    assert "--enforce-eager" not in gpu and gpu[gpu.index("--gpu-memory-utilization") + 1] == "0.9"
    assert "--weight-transfer-config" not in gpu
    nccl_args, _ = parse_args(["--model", "/m", "--weight-transfer", "nccl"])
    nccl = vllm_serve_argv(nccl_args, [], on_cpu=False)
    assert json.loads(nccl[nccl.index("--weight-transfer-config") + 1]) == {"backend": "nccl"}


class _Tok(Namespace):
    pad_token_id = 0
    eos_token_id = 2


def test_no_server_is_a_clear_error_not_a_hang():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.time()
    with pytest.raises(RolloutServerError, match=rf"127.0.0.1:{port}.*3 attempts.*parsimony vllm-serve"):
        VLLMServerEngine(f"http://127.0.0.1:{port}", _Tok(), timeout=5, backoff=0.05)
    assert time.time() - t0 < 10


@contextmanager
def _stub_server(routes: dict[tuple[str, str], tuple[int, bytes]]):
    """A stand-in HTTP server on 127.0.0.1: (method, path) -> (status, body); records the requests."""
    hits: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, method):
            hits.append((method, self.path))
            status, body = routes.get((method, self.path), (404, b""))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._answer("GET")

        def do_POST(self):
            self._answer("POST")

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    finally:
        httpd.shutdown()


def test_server_error_status_is_reported_5xx_after_retries_4xx_at_once():
    with _stub_server({("GET", "/v1/models"): (500, b"engine dead")}) as (url, hits):
        with pytest.raises(RolloutServerError, match="answered 500 to the model listing after 3 attempts: engine dead"):
            VLLMServerEngine(url, _Tok(), timeout=5, backoff=0.01)
        assert hits == [("GET", "/v1/models")] * 3
    with _stub_server({("GET", "/v1/models"): (403, b"forbidden")}) as (url, hits):
        with pytest.raises(RolloutServerError, match="answered 403 to the model listing: forbidden"):
            VLLMServerEngine(url, _Tok(), timeout=5, backoff=0.01)
        assert hits == [("GET", "/v1/models")]


def test_a_plain_openai_server_is_refused():
    """A server without parsimony's weight-update extension cannot keep the policy in sync."""
    models = json.dumps({"data": [{"id": "m"}]}).encode()
    with _stub_server({("GET", "/v1/models"): (200, models)}) as (url, hits):
        with pytest.raises(RolloutServerError, match="answered 404"):
            VLLMServerEngine(url, _Tok(), timeout=5)
        assert hits == [("GET", "/v1/models"), ("POST", "/collective_rpc")]


@pytest.mark.slow
def test_parsimony_eval_with_vllm(tiny_model_dir, tmp_path):
    require_vllm()
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "rl.commands.cli", "eval", "--models", f"base={tiny_model_dir}", "--benchmarks", "task:overthink",
           "--limit", "3", "--max-new-tokens", "8", "--n", "2", "--temperature", "1.0", "--output-dir", str(out),
           "--task-examples", "10", "--threads", "1", "--engine", "vllm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 * 2  # one row per completion
    assert all(r["tokens"] == 8 or r["finish_reason"] == "stop" for r in rows)
    assert (out / "results.json").is_file()


@pytest.mark.slow
def test_two_process_accelerate_launch_with_colocated_vllm(tiny_model_dir, tmp_path):
    """Each DDP process owns a colocated engine (seeded seed + rank) inside accelerate's process group."""
    from pathlib import Path

    require_vllm()
    out = tmp_path / "ddp"
    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--config_file", str(REPO / "recipes/accelerate/cpu_2proc.yaml"),
           "--main_process_port", str(free_port()),
           str(REPO / "scripts/train_grpo.py"), *_train_args(tiny_model_dir, out, 2, ["--engine", "vllm"])]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=REPO, timeout=500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "processes: 2" in proc.stdout + proc.stderr
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["time/weight_sync"] > 0 and "rollout/logp_mismatch_mean" in r for r in rows)

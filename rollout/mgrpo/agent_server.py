"""A small OpenAI-style completions server over any :class:`rollout.types.RolloutEngine` (e.g. the HF
engine of the executor's own model), for decoupled M-GRPO where vLLM is not installed: the executor's
process serves generation for the planner's ``executor`` calls on 127.0.0.1.

    server = CompletionServer(engine, lock=trainer_lock).start()   # server.url: http://127.0.0.1:<port>
    engine = server_engine(server.url, tokenizer)                 # the planner's client engine

It answers the subset of the OpenAI API that :class:`rollout.vllm_server.VLLMServerEngine` sends:
``GET /v1/models`` and ``POST /v1/completions`` with token-id prompts (``prompt``: list of id lists,
``n``, ``max_tokens``, ``temperature`` (0 = greedy), ``top_p``, ``top_k``, ``stop``, ``logprobs``),
answering ``choices`` with ``index``, ``token_ids``, ``text``, ``finish_reason`` and
``logprobs.token_logprobs``. So the planner's client is the same one it uses for ``vllm serve``
(``is_sender=False``: the planner never pushes weights to the executor's server). ``lock`` is held
around each generation; the executor's trainer holds it around its update, so a request never reads
weights mid-step.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rollout.types import RolloutEngine, SamplingConfig


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": self.server.model_name, "object": "model"}]})
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") != "/v1/completions":
            self._send(404, {"error": f"no route {self.path}"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            prompts = body["prompt"]
            if not isinstance(prompts, list) or not all(isinstance(p, list) for p in prompts):
                raise ValueError("prompt must be a list of token-id lists")
            n = int(body.get("n", 1))
            temperature = float(body.get("temperature", 1.0))
            sampling = SamplingConfig(
                max_new_tokens=int(body.get("max_tokens", 16)), temperature=temperature if temperature > 0 else 1.0,
                top_p=float(body.get("top_p", 1.0)), top_k=int(body.get("top_k", 0) or 0),
                stop=tuple(body.get("stop") or ()), greedy=temperature == 0, return_logprobs=body.get("logprobs") is not None,
            )
        except (KeyError, TypeError, ValueError) as e:
            self._send(400, {"error": f"bad request: {e}"})
            return
        try:
            with self.server.lock:
                groups = self.server.engine.generate(prompts, n, sampling)
        except Exception as e:  # the caller sees a 500 with the reason
            self._send(500, {"error": f"{type(e).__name__}: {e}"})
            return
        choices = []
        for g, group in enumerate(groups):
            for j, t in enumerate(group):
                choices.append({
                    "index": g * n + j, "token_ids": list(t.completion_ids), "text": t.text,
                    "finish_reason": "length" if t.finish_reason == "length" else "stop",
                    "logprobs": None if t.logprobs is None else {"token_logprobs": list(t.logprobs)},
                })
        self.server.requests += 1
        self.server.prompts += len(prompts)
        self._send(200, {"object": "text_completion", "model": self.server.model_name, "choices": choices})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    engine: RolloutEngine
    lock: Any
    model_name: str
    requests: int
    prompts: int


class CompletionServer:
    """Serves ``engine`` on ``host:port`` (0 = a free port) from a daemon thread."""

    def __init__(self, engine: RolloutEngine, host: str = "127.0.0.1", port: int = 0, lock: Any = None,
                 model_name: str = "executor") -> None:
        self.engine, self.host, self.port = engine, host, int(port)
        self.lock = lock if lock is not None else threading.Lock()
        self.model_name = model_name
        self._srv: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._srv is None:
            raise RuntimeError("the completion server is not started")
        return f"http://{self.host}:{self._srv.server_address[1]}"

    @property
    def requests(self) -> int:
        return 0 if self._srv is None else self._srv.requests

    @property
    def prompts(self) -> int:
        return 0 if self._srv is None else self._srv.prompts

    def start(self) -> "CompletionServer":
        srv = _Server((self.host, self.port), _Handler)
        srv.engine, srv.lock, srv.model_name, srv.requests, srv.prompts = self.engine, self.lock, self.model_name, 0, 0
        srv.handle_error = lambda request, client_address: None
        self._srv = srv
        self._thread = threading.Thread(target=srv.serve_forever, name="parsimony-completion-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        srv, self._srv = self._srv, None
        if srv is not None:
            srv.shutdown()
            srv.server_close()

    def __enter__(self) -> "CompletionServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_CLIENTS: dict[tuple[str, int], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def server_engine(url: str, tokenizer: Any, timeout: float = 600.0) -> RolloutEngine:
    """The client engine of a completions server at ``url`` (one per url and tokenizer per process;
    it never pushes weights)."""
    from rollout.vllm_server import VLLMServerEngine

    key = (url.rstrip("/"), id(tokenizer))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = VLLMServerEngine(url, tokenizer, timeout=timeout, is_sender=False)
        return _CLIENTS[key]


__all__ = ["CompletionServer", "server_engine"]

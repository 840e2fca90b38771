#!/usr/bin/env python
"""What a dead DECS judge endpoint costs per training step: one judge batch of ``--items``
chunks per step, with the judge's default settings (30 s timeout, 2 retries, 16 threads,
fallback "rule"), against a closed port and against a server that accepts requests and never
answers ("hang"). The judge object is kept across steps, as in training.

    python scripts/bench_dead_judge.py [--items 128] [--steps 3] [--modes closed,hang] [--gap 0]
    # training steps longer than the breaker's cool-down (every step after the first meets a
    # half-open breaker, whose probe the step may wait for):
    python scripts/bench_dead_judge.py --modes hang --steps 4 --cooldown 2 --max-cooldown 2 --gap 3
    # the code before the circuit breaker, for comparison:
    git show <commit>:rewards/decs/judges.py > /tmp/old_judges.py
    python scripts/bench_dead_judge.py --judges-module /tmp/old_judges.py

Prints one line per step and a JSON summary (seconds per step, requests, fallbacks, short-circuits).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class _Hang(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        self.server.stop.wait(3600)  # never answers (until the benchmark ends)


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def _load_judges(path: str | None):
    if not path:
        import rewards.decs.judges as mod

        return mod
    spec = importlib.util.spec_from_file_location("bench_judges_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def run(mod, url: str, items: int, steps: int, gap: float = 0.0, probe_wait: float | None = None, **judge_kw) -> dict:
    judge = mod.EndpointJudge(url, **judge_kw)
    if probe_wait is not None:
        judge.breaker.probe_wait = probe_wait  # rollout.http.CircuitBreaker's (no such setting before it existed)
    batch = [mod.JudgeItem(f"{i} + 1", f"so the answer is {i + 1}.", str(i + 1)) for i in range(items)]
    times, stats = [], []
    for step in range(steps):
        if step and gap:
            time.sleep(gap)  # the rest of a training step (rollout, update)
        t0 = time.monotonic()
        verdicts, fell_back = judge.judge_detailed(batch)
        times.append(time.monotonic() - t0)
        s = judge.pop_stats()
        stats.append(s)
        assert all(fell_back) and all(v is True for v in verdicts), "every item falls back to the rule judge"
        print(f"  step {step + 1}: {times[-1]:7.3f} s  requests {s['requests']:.0f}  fallbacks {s['fallbacks']:.0f}  "
              f"short-circuits {s.get('short_circuits', 0):.0f}  breaker trips {s.get('breaker_trips', 0):.0f}", flush=True)
    return {"seconds_per_step": times, "mean_s": sum(times) / len(times),
            "requests": [s["requests"] for s in stats], "short_circuits": [s.get("short_circuits", 0.0) for s in stats]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=128, help="judge requests per step (chunks of correct responses)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--modes", default="closed,hang")
    ap.add_argument("--timeout", type=float, default=30.0, help="the judge's per-request timeout (default: its default)")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between judge batches (the rest of a training step)")
    ap.add_argument("--cooldown", type=float, default=None, help="the breaker's cool-down (default: the judge's default)")
    ap.add_argument("--max-cooldown", type=float, default=None, help="the breaker's longest cool-down (default: the judge's)")
    ap.add_argument("--probe-wait", type=float, default=None,
                    help="seconds a step waits for the half-open breaker's probe (default: the breaker's default)")
    ap.add_argument("--judges-module", default=None, help="a rewards/decs/judges.py file to measure instead of the installed one")
    args = ap.parse_args(argv)
    mod = _load_judges(args.judges_module)
    summary = {"judges": args.judges_module or "rewards.decs.judges", "items": args.items, "gap": args.gap}
    kw = {"timeout": args.timeout, "probe_wait": args.probe_wait}
    if args.cooldown is not None:
        kw["breaker_cooldown"] = args.cooldown
    if args.max_cooldown is not None:
        kw["breaker_max_cooldown"] = args.max_cooldown
    for mode in args.modes.split(","):
        print(f"{mode}: {args.items} items x {args.steps} steps", flush=True)
        if mode == "closed":
            summary[mode] = run(mod, _closed_port_url(), args.items, args.steps, args.gap, **kw)
        elif mode == "hang":
            srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
            srv.daemon_threads = True
            srv.stop = threading.Event()
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            try:
                summary[mode] = run(mod, f"http://127.0.0.1:{srv.server_address[1]}/v1", args.items, args.steps,
                                    args.gap, **kw)
            finally:
                srv.stop.set()
                srv.shutdown()
                srv.server_close()
        else:
            raise SystemExit(f"--modes: unknown mode {mode!r} (closed | hang)")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The multi-agent store contract on both backends, the Redis one against a real ``redis-server``
started on 127.0.0.1 with its own port and data directory (no mock)."""

from __future__ import annotations

import re
import threading

import pytest
import torch

from tests.helpers import require_redis_server
from rollout.mgrpo.store import InProcessStore, RedisServer, RedisStore, make_store


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return InProcessStore()
    srv = request.getfixturevalue("redis_server")
    s = RedisStore(srv.url)
    s.client.flushdb()
    return s


def rec(i):
    return {"completion_ids": [[1, 2, i]], "completion_mask": [[1, 0, 1]], "parent_reward": [0.1 * i]}


def test_put_commit_get(store):
    assert store.get_step("run1", 0) is None and store.committed("run1", 0) is None
    assert store.put_group("run1", 0, "p7", rec(7)) is True
    assert store.put_group("run1", 0, "p3", rec(3)) is True
    assert store.put_group("run1", 0, "p3", rec(4)) is True  # rewritable until committed
    assert store.get_step("run1", 0) is None  # not committed: invisible to the consumer
    with pytest.raises(ValueError, match=r"no group for prompts \['p9'\]"):
        store.commit_step("run1", 0, ["p3", "p9"])
    assert store.commit_step("run1", 0, ["p7", "p3"]) is True
    assert store.committed("run1", 0) == ["p7", "p3"]
    got = store.get_step("run1", 0)
    assert list(got) == ["p7", "p3"] and got == {"p7": rec(7), "p3": rec(4)}
    # a committed step is immutable: a replayed producer cannot change or extend it
    assert store.put_group("run1", 0, "p3", rec(5)) is False
    assert store.commit_step("run1", 0, ["p3"]) is False
    assert store.get_step("run1", 0) == {"p7": rec(7), "p3": rec(4)}
    # other runs and steps are separate keys
    assert store.get_step("run1", 1) is None and store.get_step("run2", 0) is None


def test_cursor_delete_and_keys(store):
    assert store.cursor("r", "executor") == -1
    store.set_cursor("r", "executor", 4)
    assert store.cursor("r", "executor") == 4 and store.cursor("r", "planner") == -1
    store.put_group("r", 12, "0", rec(0))
    store.commit_step("r", 12, ["0"])
    # keys are run, step, prompt / role only: no date, so a group written before midnight is read after it
    assert store.keys() == ["parsimony:r:cursor:executor", "parsimony:r:step:12:commit", "parsimony:r:step:12:groups"]
    assert not any(re.search(r"\d{4}-?\d{2}-?\d{2}", k) for k in store.keys())
    store.delete_step("r", 12)
    assert store.get_step("r", 12) is None and store.keys() == ["parsimony:r:cursor:executor"]


def test_only_json_data_crosses_and_names_are_checked(store):
    with pytest.raises(TypeError, match="only JSON data"):
        store.put_group("r", 0, "p", {"logits": torch.zeros(2)})
    for bad in ("a:b", "", "x y"):
        with pytest.raises(ValueError, match="store run"):
            store.put_group(bad, 0, "p", rec(0))
    with pytest.raises(ValueError, match="store step"):
        store.put_group("r", -1, "p", rec(0))


def test_wait_step_sees_a_commit_from_another_thread(store):
    def produce():
        store.put_group("w", 3, "a", rec(1))
        store.commit_step("w", 3, ["a"])

    assert store.wait_step("w", 3, timeout=0.1) is None
    t = threading.Timer(0.2, produce)
    t.start()
    got = store.wait_step("w", 3, timeout=10.0)
    t.join()
    assert got == {"a": rec(1)}


def test_concurrent_commits_of_one_step_commit_once(store):
    store.put_group("c", 0, "a", rec(1))
    store.put_group("c", 0, "b", rec(2))
    results = []
    threads = [threading.Thread(target=lambda ps=ps: results.append(store.commit_step("c", 0, ps)))
               for ps in (["a"], ["b"], ["a", "b"], ["b", "a"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert store.committed("c", 0) in (["a"], ["b"], ["a", "b"], ["b", "a"])


def test_redis_two_clients_and_a_server_restart_keep_committed_groups(tmp_path):
    require_redis_server()
    srv = RedisServer(tmp_path / "data").start()
    try:
        producer, consumer = RedisStore(srv.url), make_store(srv.url)
        assert isinstance(consumer, RedisStore)
        producer.put_group("run", 0, "p0", rec(0))
        producer.commit_step("run", 0, ["p0"])
        producer.set_cursor("run", "executor", 0)
        assert consumer.get_step("run", 0) == {"p0": rec(0)}
        port = srv.port
        srv.stop()  # SIGTERM: the append-only file is flushed
        srv = RedisServer(tmp_path / "data", port=port).start()
        again = RedisStore(srv.url)
        assert again.get_step("run", 0) == {"p0": rec(0)} and again.cursor("run", "executor") == 0
        assert again.put_group("run", 0, "p0", rec(9)) is False
    finally:
        srv.stop()


def test_make_store_specs():
    assert isinstance(make_store(None), InProcessStore) and isinstance(make_store("memory"), InProcessStore)
    with pytest.raises(ValueError, match="redis:// URL"):
        make_store("postgres://x")


# --- faults: an outage, a refused password, an unreachable server, a corrupt record ---------------------


@pytest.mark.serial
def test_a_redis_restart_mid_wait_is_ridden_out(tmp_path):
    """The executor waits for a step while the server restarts (3 s down): it reconnects and gets it."""
    import time

    from rollout.mgrpo.store import RedisServer, RedisStore

    require_redis_server()
    srv = RedisServer(tmp_path / "data").start()
    port = srv.port
    try:
        store = RedisStore(srv.url, reconnect_s=20)
        store.put_group("run", 0, "p0", rec(0))
        srv.stop()
        restarted: list = []

        def restart():
            time.sleep(3.0)
            restarted.append(RedisServer(tmp_path / "data", port=port).start())
            RedisStore(restarted[0].url).commit_step("run", 0, ["p0"])

        th = threading.Thread(target=restart)
        th.start()
        t0 = time.monotonic()
        got = store.wait_step("run", 0, timeout=30)
        th.join()
        assert got == {"p0": rec(0)} and 3.0 <= time.monotonic() - t0 < 20
    finally:
        srv.stop()
        for s in restarted:
            s.stop()


@pytest.mark.serial
def test_an_unreachable_store_fails_after_its_limit_in_one_line_without_the_password():
    import time

    from rollout.mgrpo.store import RedisStore, StoreError, free_port

    store = RedisStore(f"redis://:hunter2@127.0.0.1:{free_port()}/0", timeout=0.5, reconnect_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(StoreError) as e:
        store.check()
    msg = str(e.value)
    assert time.monotonic() - t0 < 6 and "\n" not in msg
    assert "unreachable for 1 s" in msg and "hunter2" not in msg and "redis://:***@127.0.0.1" in msg


@pytest.mark.serial
def test_a_wrong_password_is_one_line_at_once(tmp_path):
    import time

    from rollout.mgrpo.store import RedisServer, RedisStore, StoreError

    require_redis_server()
    with RedisServer(tmp_path / "data", password="right") as srv:
        RedisStore(srv.url).check()
        t0 = time.monotonic()
        for url in (srv.url.replace(":right@", ":wrong@"), srv.url.replace(":right@", "")):
            with pytest.raises(StoreError, match="refused the credentials") as e:
                RedisStore(url, reconnect_s=30).check()
            assert "wrong" not in str(e.value) or ":***@" in str(e.value)
        assert time.monotonic() - t0 < 5  # no reconnect loop for a refusal


def test_a_corrupt_record_names_the_run_step_and_prompt(redis_server):
    from rollout.mgrpo.store import StoreError

    s = RedisStore(redis_server.url)
    s.client.flushdb()
    s.put_group("r1", 3, "p7", rec(1))
    s.commit_step("r1", 3, ["p7"])
    s.client.hset("parsimony:r1:step:3:groups", "p7", "{not json")
    with pytest.raises(StoreError, match=r"run 'r1' step 3 prompt 'p7': corrupt record"):
        s.get_step("r1", 3)
    s.client.set("parsimony:r1:step:3:commit", "[oops")
    with pytest.raises(StoreError, match=r"run 'r1' step 3: corrupt commit marker"):
        s.get_step("r1", 3)


def test_secrets_are_redacted_wherever_a_config_is_saved():
    from rl.redaction import redact

    cfg = {"model": "m", "tokenizer": "t", "max_tokens": 5, "method_kwargs": {
        "mgrpo_store": "redis://:hunter2@10.0.0.1:6379/0", "decs_judge_api_key": "sk-123",
        "decs_judge_api_key_env": "MY_KEY", "hf_token": "hf_abc"}, "urls": ["https://u:pw@h/x"]}
    out = redact(cfg)
    assert out["method_kwargs"] == {"mgrpo_store": "redis://:***@10.0.0.1:6379/0", "decs_judge_api_key": "***",
                                    "decs_judge_api_key_env": "MY_KEY", "hf_token": "***"}
    assert out["urls"] == ["https://u:***@h/x"] and out["tokenizer"] == "t" and out["max_tokens"] == 5
    assert cfg["method_kwargs"]["mgrpo_store"].startswith("redis://:hunter2")  # a copy; the config is unchanged

"""GPU weight push to a ``parsimony vllm-serve --weight-transfer nccl`` server, over NCCL.

This drives vLLM's own weight-transfer API (vLLM >= 0.32): the trainer's main process opens an
NCCL group with every server worker (``NCCLTrainerWeightTransferEngine.trainer_init`` over the
server's ``/init_weight_transfer_engine``), then each push broadcasts the policy's tensors while
the workers receive and load them (``/start_weight_update``, ``/update_weights``,
``/finish_weight_update``). Nothing touches disk, and the server may sit on another node.

Status: written against vLLM 0.32's source; it needs GPUs and was not run in this project's CI
(CPU-only). ``server_weight_transfer: file`` (the default) is the tested path.
"""

from __future__ import annotations

import socket
from typing import Any, Iterator

from rollout.weights import is_sharded_model, policy_weights, unwrap


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _routable_address() -> str:
    """This host's address as other nodes see it (the interface of the default route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent; this only picks an interface
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def make_policy_source(model: Any) -> Any:
    """A vLLM ``WeightSource`` over the policy's checkpoint-format weights (LoRA deltas added)."""
    from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource

    class PolicySource(WeightSource):
        def metadata(self) -> list:
            if is_sharded_model(model):  # FSDP2: global shapes without a gather (only the sender runs this)
                return [ParamMeta(n, t.dtype, tuple(t.shape)) for n, t in unwrap(model).state_dict().items()]
            with policy_weights(model) as weights:
                return [ParamMeta(n, t.dtype, tuple(t.shape)) for n, t in weights]

        def __iter__(self) -> Iterator:
            with policy_weights(model) as weights:
                yield from weights

    return PolicySource()


class NCCLWeightPusher:
    """Opens the NCCL group on the first push; later pushes broadcast the current weights."""

    def __init__(self, base_url: str, num_workers: int, timeout: float = 600.0, master_address: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.num_workers = int(num_workers)
        self.timeout = timeout
        self.master_address = master_address or _routable_address()
        self._engine = None

    def push(self, model: Any) -> None:
        if self._engine is None:
            from vllm.distributed.weight_transfer.clients import HTTPVLLMWeightSyncClient
            from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo, NCCLTrainerWeightTransferEngine

            info = NCCLTrainerInitInfo(
                master_address=self.master_address,
                master_port=_free_port(),
                world_size=1 + self.num_workers,  # this process (rank 0, the sender) + every server worker
                rank=0,
            )
            self._engine = NCCLTrainerWeightTransferEngine.trainer_init(
                info, client=HTTPVLLMWeightSyncClient(self.base_url, timeout=self.timeout), source=make_policy_source(model)
            )
        self._engine.send_weights()

    def close(self) -> None:
        if self._engine is not None:
            shutdown = getattr(self._engine, "shutdown", None)
            if callable(shutdown):
                shutdown()
            self._engine = None

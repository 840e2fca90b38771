"""Worker-side weight loading for ``parsimony vllm-serve`` (a vLLM worker extension).

vLLM mixes this class into its GPU/CPU worker (``--worker-extension-cls``), so its methods run
inside every engine worker and are reachable through the server's ``/collective_rpc`` endpoint.
The trainer writes the policy's weights to one safetensors file in shared memory (``/dev/shm``)
and asks the workers to load it in place with vLLM's own ``reload_weights``.
"""

from __future__ import annotations

import os


class WeightSyncExtension:
    """Methods added to vLLM's worker (``self`` is the worker)."""

    def parsimony_load_weights_file(self, path: str) -> int:
        """Load the tensors of the safetensors file at ``path`` in place; returns how many."""
        from safetensors.torch import load_file

        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights file {path} does not exist on the server's machine")
        tensors = load_file(path)
        self.reload_weights(weights_iterator=list(tensors.items()), is_checkpoint_format=True)
        return len(tensors)

    def parsimony_ping(self) -> str:
        """Lets the client check that the server was started with this extension."""
        return "parsimony"

"""Run by tests/rollout/test_vllm_tools.py in its own process (a second in-process vLLM engine
would tear down the distributed state of the session's shared engine when it closes).

    python prefix_cache_worker.py MODEL_DIR [--no-reset]  -> prints a JSON line
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rollout.hf import HFEngine
    from rollout.types import SamplingConfig
    from rollout.vllm import VLLMEngine

    model_dir, no_reset = sys.argv[1], "--no-reset" in sys.argv
    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    # long prompts (~490 tokens): they span full KV blocks, which is what the prefix cache keeps
    prompts = [tok("<|im_start|>user\n" + f"Compute {a} + {b}. " * 60 + "<|im_end|>\n<|im_start|>assistant\n",
                   add_special_tokens=False)["input_ids"] for a, b in [(1, 2), (3, 4)]]
    greedy = SamplingConfig(max_new_tokens=16, greedy=True)
    engine = VLLMEngine(model_dir, dtype="float32", max_model_len=512, seed=0, enable_prefix_caching=True)
    if no_reset:
        engine.llm.reset_prefix_cache = lambda *a, **k: True  # what a sync without the reset would do
    first = [g[0].completion_ids for g in engine.generate(prompts, 1, greedy)]  # fills the cache
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    engine.sync_weights(model)
    after = [g[0].completion_ids for g in engine.generate(prompts, 1, greedy)]
    ref = [g[0].completion_ids for g in HFEngine(model, tok).generate(prompts, 1, greedy)]
    engine.close()
    print(json.dumps({"prompt_lengths": [len(p) for p in prompts], "matches_reference": after == ref,
                      "changed": after != first}))


if __name__ == "__main__":
    main()

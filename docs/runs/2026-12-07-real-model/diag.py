"""Why do re-checks vanish within 5 steps of accuracy-only GRPO on the real model?
Two arms from the same SFT start and seed, logging every step (text/rechecks/mean, text/rechecks/adv_corr):
  acc:    the accuracy reward (as the compare run);
  random: a coin with the start's sampled accuracy (p = 0.36) per completion, independent of its text's length or
          re-checks (a hash of the completion and the step), so any drift of re-checks there is not the reward's.
"""
import hashlib, json, sys, time
from pathlib import Path
import torch
from rl.config import GRPOConfig
from rl.grpo_trainer import GRPOTrainer

START = "/tmp/rm2/sft/final"
OUT = Path("/tmp/rm3/diag")
STEP = {"n": 0}

def coin(prompts, completions, **kw):
    STEP["n"] += 1
    return [float(int(hashlib.sha256(f"{STEP['n']}|{i}|{c}".encode()).hexdigest(), 16) % 100 < 36)
            for i, c in enumerate(completions)]

def run(arm, steps):
    torch.set_num_threads(2)
    cfg = GRPOConfig(overwrite_output_dir=True, model=START, dataset="task:word_problems_think", dataset_num_examples=4096,
                     learning_rate=2e-5, num_generations=4, per_device_train_batch_size=32, max_completion_length=256,
                     temperature=1.0, max_steps=steps, warmup_steps=2, lr_scheduler_type="constant_with_warmup", beta=0.0,
                     hf_decode="generate" if arm.endswith("_plain") else "compact",
                     split_by_length=1 if arm.endswith("_plain") else 4, output_dir=str(OUT / arm), report_to=["jsonl"],
                     logging_steps=1, save_steps=0, save_final=False, seed=0, run_name=f"diag-{arm}",
                     )
    t0 = time.time()
    tr = GRPOTrainer(cfg.model, reward_funcs=None if arm.startswith("acc") else [coin], args=cfg)
    tr.train(); tr.close()
    print(arm, "seconds", round(time.time() - t0), flush=True)

if __name__ == "__main__":
    for arm in sys.argv[1].split(","):
        run(arm, int(sys.argv[2]))

"""Direct check of the two speed paths on the real model (SFT start of the real-model run):
1. each path's sampler log-probs equal the teacher-forced log-probs of the trainer (completion_logprobs);
2. greedy: compact gives generate's tokens;
3. T=1 samples: length / truncation / re-check distribution per path (same prompts, 16 per prompt);
4. split update: per-row log-probs of the trimmed length-sorted pieces equal the whole batch's."""
import json, re, sys, time
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from curriculum.tasks import get_task_dataset
from curriculum.data import render_prompt
from rollout.hf import HFEngine
from rollout.types import SamplingConfig
from rl.modeling import completion_logprobs
from rl.update_padding import length_sorted_chunks

torch.set_num_threads(2)
START = sys.argv[1]
NP, K = int(sys.argv[2]), int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(START)
model = AutoModelForCausalLM.from_pretrained(START, torch_dtype=torch.float32).eval()
ds = get_task_dataset("word_problems_think", 4096, seed=0)
prompts = [tok(render_prompt(tok, ds[i]["prompt"]), add_special_tokens=False)["input_ids"] for i in range(NP)]
print("prompt lengths", [len(p) for p in prompts], flush=True)

def batch_of(trajs):
    P = max(len(t.prompt_ids) for t in trajs); T = max(len(t.completion_ids) for t in trajs)
    pid = torch.full((len(trajs), P), tok.pad_token_id); pm = torch.zeros((len(trajs), P), dtype=torch.long)
    cid = torch.full((len(trajs), T), tok.pad_token_id); cm = torch.zeros((len(trajs), T), dtype=torch.long)
    for i, t in enumerate(trajs):
        pid[i, P - len(t.prompt_ids):] = torch.tensor(t.prompt_ids); pm[i, P - len(t.prompt_ids):] = 1
        cid[i, :len(t.completion_ids)] = torch.tensor(t.completion_ids); cm[i, :len(t.completion_ids)] = 1
    return pid, pm, cid, cm

def tf_logps(trajs):
    pid, pm, cid, cm = batch_of(trajs)
    with torch.no_grad():
        lp, _ = completion_logprobs(model, pid, pm, cid, cm)
    return lp, cm

RE = re.compile(r"double-check|verify", re.I)
res = {}
for decode in ("compact", "generate"):
    eng = HFEngine(model, tok, decode=decode)
    torch.manual_seed(0)
    g = eng.generate(prompts, 1, SamplingConfig(max_new_tokens=256, greedy=True, temperature=1.0, top_p=1.0, top_k=0))
    res[decode + "_greedy"] = [t.completion_ids for grp in g for t in grp]
    torch.manual_seed(1)
    t0 = time.time()
    groups = eng.generate(prompts, K, SamplingConfig(max_new_tokens=256, temperature=1.0, top_p=1.0, top_k=0, return_logprobs=True))
    dt = time.time() - t0
    trajs = [t for grp in groups for t in grp]
    lp, cm = tf_logps(trajs)
    diffs = [max(abs(a - float(b)) for a, b in zip(t.logprobs, lp[i, :len(t.completion_ids)])) for i, t in enumerate(trajs)]
    L = [len(t.completion_ids) for t in trajs]
    res[decode] = dict(seconds=round(dt, 1), n=len(trajs), mean_len=sum(L) / len(L),
                       truncated=sum(t.finish_reason == "length" for t in trajs) / len(trajs),
                       rechecks=sum(len(RE.findall(t.text)) for t in trajs) / len(trajs),
                       max_lp_diff=max(diffs), mean_lp=float((lp * cm).sum() / cm.sum()))
    print(decode, json.dumps(res[decode]), flush=True)
    if decode == "compact":
        # 4. split: per-row log-probs of trimmed, length-sorted pieces vs the whole batch
        from rl.update_padding import trim_padding
        pid, pm, cid, cm = batch_of(trajs)
        chunks = length_sorted_chunks(torch.tensor(L), 1, 4)
        worst = 0.0
        for idx in chunks:
            sp, sm, sc, scm = pid[idx], pm[idx], cid[idx], cm[idx]
            keep_p = sm.sum(0) > 0; p0 = int(keep_p.nonzero()[0]); t1 = int(scm.sum(1).max())
            with torch.no_grad():
                lpp, _ = completion_logprobs(model, sp[:, p0:], sm[:, p0:], sc[:, :t1], scm[:, :t1])
            d = ((lpp - lp[idx, :t1]).abs() * scm[:, :t1]).max().item()
            worst = max(worst, d)
        res["split_max_row_lp_diff"] = worst
        print("split max per-token log-prob diff", worst, flush=True)
same = sum(a == b for a, b in zip(res["compact_greedy"], res["generate_greedy"]))
print("greedy identical rows", same, "of", len(prompts))
for a, b in zip(res["compact_greedy"], res["generate_greedy"]):
    if a != b:
        j = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        print("  first difference at token", j, "lens", len(a), len(b))
json.dump({k: v for k, v in res.items() if not k.endswith("greedy")}, open("/tmp/s5/check_decode.json", "w"), indent=1)

"""Regenerate docs/leaderboard.md from ``parsimony compare`` outputs (never by hand):

    parsimony compare --task explore --methods efficiency --seeds 3 --out outputs/lb-explore
    parsimony compare --task overthink --methods efficiency --seeds 3 --out outputs/lb-overthink
    parsimony leaderboard --from outputs/lb-explore --from outputs/lb-overthink --out docs/leaderboard.md

Each ``--from DIR`` holds ``summary.json`` (and ``summary_meta.json``: task, command, machine,
date, budget). The plot of each run is redrawn next to the output as
``img_leaderboard_<task>.png``, with the Pareto frontier. Sections of other tasks already in the
output page are kept (``--replace`` drops them), so one task can be rerun and regenerated alone.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from rl.cli_flags import FlagParser


def parse_args(argv=None) -> argparse.Namespace:
    p = FlagParser(prog="parsimony leaderboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="sources", action="append", required=True,
                   help="a `parsimony compare` output directory (repeat for several tasks)")
    p.add_argument("--out", default="docs/leaderboard.md")
    p.add_argument("--replace", action="store_true",
                   help="write only the --from tasks (default: keep the sections of other tasks already in --out)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from rl.experiments.leaderboard import load_run, plot_frontier, render_doc, task_sections

    args = parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runs, images, tasks = [], [], []
    for src in args.sources:
        d = Path(src)
        if not (d / "summary.json").is_file():
            raise FileNotFoundError(f"{d / 'summary.json'} not found: run `parsimony compare --out {d}` first")
        rows, meta = load_run(d)
        task = meta.get("task", d.name)
        img = f"img_leaderboard_{task}.png"
        plot_frontier(rows, out.parent / img, title=task)
        runs.append((d, rows, meta))
        images.append(img)
        tasks.append(task)
    keep = {} if args.replace or not out.is_file() else task_sections(out.read_text())
    kept = sorted(set(keep) - set(tasks))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.write_text(render_doc(runs, images, stamp, keep=keep))
    print(f"[leaderboard] wrote {out} ({len(runs)} task(s) from runs"
          + (f"; kept the sections of {', '.join(kept)} from the page already there)" if kept else ")"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

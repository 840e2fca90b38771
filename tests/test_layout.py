"""The layout rules of docs/architecture.md that a file count can check: no module of the library past
~450 lines (split along a seam instead), and no folder holding more than a third of the library's lines
(counting the modules directly in it), so that `rl/` stays the engine and not a drawer."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rl", "rewards", "curriculum", "rollout")
MAX_MODULE_LINES = 460  # "~450": a few lines of slack, not a second limit


def library_modules() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))]


def lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_past_the_limit():
    big = {str(p.relative_to(REPO)): lines(p) for p in library_modules() if lines(p) > MAX_MODULE_LINES}
    assert not big, f"modules past {MAX_MODULE_LINES} lines (split them along a seam): {big}"


def test_no_folder_holds_more_than_a_third_of_the_library():
    per_folder: dict[str, int] = {}
    for p in library_modules():
        folder = str(p.parent.relative_to(REPO))
        per_folder[folder] = per_folder.get(folder, 0) + lines(p)
    total = sum(per_folder.values())
    folder, biggest = max(per_folder.items(), key=lambda kv: kv[1])
    assert biggest <= total / 3, f"{folder}/ holds {biggest} of {total} lines ({biggest / total:.0%})"


def test_the_engine_folder_is_measured():
    """The rule above counts rl/'s own modules, not its subfolders (methods, experiments, bench, ...)."""
    top = sum(lines(p) for p in (REPO / "rl").glob("*.py"))
    everything = sum(lines(p) for p in (REPO / "rl").rglob("*.py"))
    assert 0 < top < everything

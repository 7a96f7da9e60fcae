"""Mutation-test the safety core with mutmut and print a score per module.

    python scripts/mutation.py                 # the safety core: 3,816 mutants, ~1 h on 2 cores
    python scripts/mutation.py risk.checks     # one or more modules, named under gateway.
    python scripts/mutation.py --report        # the table of the last run, without running

mutmut copies the tree to ./mutants, runs tests/unit and tests/integration once to learn which
tests reach which function, then runs only those tests against each mutant. A mutant that
survives is either a missing test or written down in tests/mutation/equivalent/*.toml with the
reason it cannot change behaviour. One kind is recognised without a list: a mutant that only
changes the words of a human-readable sentence (a string literal with a space in it, wrapped in
XX or changed in case). Tests pin what a message must name, not its every letter.

The last line is one JSON object with the figures. Exit status 1 when a module marked as a
target has a survivor that is neither killed nor explained.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Module (under gateway.) -> must it reach no unexplained survivor?
SAFETY_MODULES: dict[str, bool] = {
    "risk.checks": True,
    "risk.quotes": True,
    "risk.state": True,
    "risk.monitor": True,
    "risk.book": True,
    "safety.halt": True,
    "safety.halt_state": True,
    "safety.halt_resume": True,
    "safety.failures": True,
    "safety.killswitch": True,
    "pipeline.engine": True,
    "pipeline.sender": True,
    "pipeline.ratelimit": True,
    "pipeline.gates": True,
    "store.transactions": True,
    "store.journal": True,
    "pipeline.recovery": True,
}

WORDING = re.compile(r"[\"'](XX)?[^\"']* [^\"']*(XX)?[\"']")


def load_equivalents() -> dict[str, str]:
    """Mutant name -> why it cannot change behaviour, from every file of the list."""
    reasons: dict[str, str] = {}
    for path in sorted((ROOT / "tests" / "mutation" / "equivalent").glob("*.toml")):
        for name, reason in tomllib.loads(path.read_text("utf-8")).get("mutants", {}).items():
            reasons[name] = str(reason)
    return reasons


def mutant_diff(name: str) -> str:
    out = subprocess.run(
        ["mutmut", "show", name], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return out.stdout


def only_rewords(diff: str) -> bool:
    """True when the mutant changes nothing but the words of one human-readable sentence."""
    removed = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    added = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    if len(removed) != 1 or len(added) != 1:
        return False
    before, after = removed[0], added[0]
    if after.replace("XX", "") == before.replace("XX", "") or after.lower() == before.lower():
        # A sentence has a space; an identifier, a reason code or a key does not.
        return all(WORDING.search(text) for text in (before, after))
    return False


def module_results(module: str) -> dict[str, str]:
    """Mutant name -> mutmut's status, from the .meta file mutmut keeps beside the mutant."""
    from mutmut.stats import status_by_exit_code

    meta = ROOT / "mutants" / "gateway" / (module.replace(".", "/") + ".py.meta")
    if not meta.exists():
        return {}
    exit_codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in exit_codes.items()}


def score(module: str, equivalents: dict[str, str]) -> tuple[dict[str, int], list[str]]:
    counts: Counter[str] = Counter()
    unexplained: list[str] = []
    for name, status in sorted(module_results(module).items()):
        counts["mutants"] += 1
        if status in ("killed", "timeout", "caught by type check", "segfault"):
            counts["killed"] += 1
        elif name in equivalents:
            counts["equivalent"] += 1
        elif status == "survived" and only_rewords(mutant_diff(name)):
            counts["wording"] += 1
        elif status == "not checked":
            counts["not_checked"] += 1
        else:
            counts["survived"] += 1
            unexplained.append(f"{name} ({status})")
    return dict(counts), unexplained


def run_mutmut(modules: list[str]) -> None:
    patterns = [f"gateway.{module}.*" for module in modules]
    subprocess.run(["mutmut", "run", *patterns], cwd=ROOT, check=False)


def report(modules: list[str]) -> int:
    equivalents = load_equivalents()
    figures: dict[str, dict[str, int]] = {}
    failing: list[str] = []
    columns = ("mutants", "killed", "equiv", "wording", "survived", "score")
    print(f"{'module':28} " + " ".join(f"{c:>8}" for c in columns))
    for module in modules:
        counts, unexplained = score(module, equivalents)
        figures[module] = counts
        total = counts.get("mutants", 0)
        explained = counts.get("killed", 0) + counts.get("equivalent", 0) + counts.get("wording", 0)
        pct = f"{100 * explained / total:.1f}%" if total else "-"
        print(
            f"{module:28} {total:>8} {counts.get('killed', 0):>8} {counts.get('equivalent', 0):>8} "
            f"{counts.get('wording', 0):>8} {counts.get('survived', 0):>8} {pct:>8}"
        )
        for line in unexplained:
            print(f"    survived: {line}")
        if unexplained and SAFETY_MODULES.get(module, False):
            failing.append(module)
    print(json.dumps({"modules": figures, "failing": failing}))
    return 1 if failing else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "modules", nargs="*", help="modules under gateway. (default: the safety core)"
    )
    parser.add_argument("--report", action="store_true", help="print the last run's figures only")
    args = parser.parse_args()
    modules = args.modules or list(SAFETY_MODULES)
    unknown = [
        m for m in modules if not (ROOT / "gateway" / (m.replace(".", "/") + ".py")).exists()
    ]
    if unknown:
        parser.error(f"no such module under gateway/: {', '.join(unknown)}")
    if not args.report:
        run_mutmut(modules)
    return report(modules)


if __name__ == "__main__":
    sys.exit(main())

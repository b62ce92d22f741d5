"""Peak memory and time of reading hostile and large scripts with the default budgets.

Usage::

    .venv/bin/python bench/script_limits.py

Each input is written to a temporary folder and validated in a fresh child process, so each
``<input>_peak_rss_mb`` is that child's own peak resident set (it reports ``getrusage(RUSAGE_SELF)``
as it ends), and ``<input>_seconds`` the time it spent validating. ``<input>_refused`` names the limit (or ``ok``).
Inputs: the billion laughs (YAML), a deep and a wide JSON, the 19 MB script of the report, a script
just under the value budget (1,000 sections of 93 one-character phrases: refused only after it
is parsed and validated, the most memory a refusal costs), and a realistic 100-minute script. ``baseline`` is an empty child.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHRASE = "保存ボタンを押すと、一瞬だけ画面が固まるのだ。"

CHILD = """
import resource, sys, time
from stages.script import validate_script_file
from stages.settings import load_settings
start = time.perf_counter()
verdict = "-"
if sys.argv[1] != "-":
    issues = validate_script_file(sys.argv[1], load_settings(home=sys.argv[2]))
    verdict = issues[0].limit or "invalid" if issues else "ok"
print(verdict, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-limits-") as tmp:
        folder = Path(tmp)
        for name, path in [("baseline", None), *inputs(folder)]:
            done = subprocess.run([sys.executable, "-c", CHILD, str(path) if path else "-", str(folder / "home")],
                                  capture_output=True, text=True, cwd=ROOT, check=True)
            verdict, seconds, peak_kb = done.stdout.split()
            print(f"{name}_peak_rss_mb={int(peak_kb) / 1024:.0f}")
            print(f"{name}_seconds={float(seconds):.2f}")
            if path is not None:
                print(f"{name}_refused={verdict}")


def inputs(folder: Path) -> list[tuple[str, Path]]:
    """The inputs, each as ``(name, path)``."""
    names = "abcdefghi"
    laughs = ["title: lol", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]" for prev, cur in zip(names, names[1:])]
    laughs.append("sections: *i")
    files = {
        "billion_laughs_yaml": "\n".join(laughs) + "\n",
        "deep_json": '{"title": "t", "sections": ' + "[" * 50_000 + "]" * 50_000 + "}",
        "wide_json": '{"title": "t", "sections": [' + ",".join(["[1,1,1,1,1,1,1,1,1]"] * 200_000) + "]}",
        "long_100min_yaml": script(100, 20),
        "near_node_budget_yaml": script(1000, 93, "あ"),
    }
    out = []
    for name, text in files.items():
        path = folder / (name.rsplit("_", 1)[0] + (".json" if name.endswith("json") else ".yaml"))
        path.write_text(text, encoding="utf-8")
        out.append((name, path))
    huge = folder / "huge.yaml"
    with huge.open("w", encoding="utf-8") as fh:
        fh.write("title: 巨大\nsections:\n")
        section = 0
        while fh.tell() < 19 * 1024 * 1024:
            fh.write(f"  - title: 第{section}節\n    narrations:\n" + f"      - {PHRASE}\n" * 25)
            section += 1
    out.insert(1, ("script_19mb_yaml", huge))
    return out


def script(sections: int, phrases: int, text: str = PHRASE) -> str:
    body = "".join(f"  - title: 第{s}節\n    narrations:\n" + f"      - {text}\n" * phrases for s in range(sections))
    return f"title: 台本\nlanguage: ja\nsections:\n{body}"


if __name__ == "__main__":
    main()

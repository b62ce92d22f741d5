"""How the eval articles' display formulas are shown: typeset by mathtext, or as TeX text.

Usage: ``python bench/formulas.py [--ja DIR] [--articles DIR] [--size PX] [--out DIR]`` (defaults
``../shared/eval/ja`` and ``../shared/eval/articles``). Each article goes through the fetch stage's
extraction; each math block is typeset by :func:`stages.slides.formula.mathtext_pictures` at
``--size`` pixels (what a 1080p slide starts from). No slide or video is made. With ``--out`` the
pictures are written there as PNGs, to look at.

Prints ``name=value`` lines: ``math_blocks``, ``mathtext`` (typeset), ``text_fallback`` (what the
slide would show as readable TeX instead, each also listed as ``fallback=<article>: <reason>``) and
``typeset_ms_mean`` (one formula's time, matplotlib's first import excluded).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.content import EVAL, _inputs  # noqa: E402
from stages.fetch import extract  # noqa: E402
from stages.settings import load_settings  # noqa: E402
from stages.slides.formula import mathtext_pictures  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ja", type=Path, default=EVAL / "ja")
    parser.add_argument("--articles", type=Path, default=EVAL / "articles")
    parser.add_argument("--size", type=int, default=round(1080 * 0.075))
    parser.add_argument("--out", type=Path, default=None, help="write each typeset formula here as PNG")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-math-") as tmp:
        home = Path(tmp)
        settings = load_settings(home=home / "home")
        mathtext_pictures("x", args.size, config_dir=home / "matplotlib")  # matplotlib's import, once
        typeset = fallback = 0
        times: list[float] = []
        for name, path in _inputs(args.ja, args.articles, home, 0):
            blocks = [b for b in extract(path, settings)["blocks"] if b["type"] == "math"]
            for n, block in enumerate(blocks):
                started = time.perf_counter()
                try:
                    pictures = mathtext_pictures(block.get("text") or "", args.size)
                except Exception as exc:  # what the slide shows as text instead
                    fallback += 1
                    print(f"fallback={name}: {' '.join(str(exc).split())[:160]}")
                    continue
                times.append(time.perf_counter() - started)
                typeset += 1
                if args.out:
                    args.out.mkdir(parents=True, exist_ok=True)
                    for k, picture in enumerate(pictures):
                        picture.save(args.out / f"{name}-{n:02d}-{k}.png")
        print(f"math_blocks={typeset + fallback}")
        print(f"mathtext={typeset}")
        print(f"text_fallback={fallback}")
        print(f"typeset_ms_mean={1000 * sum(times) / max(1, len(times)):.1f}")


if __name__ == "__main__":
    main()

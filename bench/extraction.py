"""Extraction quality and speed on a set of pages with hand-written ground truth.

Usage: ``python bench/extraction.py [DIR]`` (default ``../shared/eval/articles``). DIR holds
``ground-truth.json`` (sha256 -> {url, articleBody}) and ``html/<sha256>.html[.gz]``.

Prints ``name=value`` lines: precision, recall and f1 of a bag of words (lower-cased; every CJK
character is its own token; precision and recall are averaged over pages, f1 is their harmonic
mean, as in the article-extraction-benchmark), then ms_per_page (wall time of decoding + extraction,
after one warm-up page) and cpu_ms_per_page (this process's CPU time: steadier on a busy machine).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.fetch import article_text  # noqa: E402
from stages.fetch.encoding import decode_html  # noqa: E402
from stages.fetch.extractor import extract_html  # noqa: E402
from stages.settings import FetchSettings  # noqa: E402

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "eval" / "articles"
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def tokens(text: str) -> Counter[str]:
    """The bag of words of ``text``: lower-case word runs, and each CJK character alone."""
    return Counter(_TOKEN.findall(text.lower()))


def score(predicted: str, truth: str) -> tuple[float, float]:
    """``(precision, recall)`` of predicted text against the truth, as bags of words."""
    pred, gold = tokens(predicted), tokens(truth)
    common = sum((pred & gold).values())
    precision = common / sum(pred.values()) if pred else (1.0 if not gold else 0.0)
    recall = common / sum(gold.values()) if gold else 1.0
    return precision, recall


def load_pages(folder: Path) -> list[tuple[str, str, bytes, str]]:
    """``(key, url, html_bytes, truth)`` for every page that has ground truth."""
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key, entry in sorted(truth.items()):
        for name in (f"{key}.html.gz", f"{key}.html"):
            path = folder / "html" / name
            if path.is_file():
                data = path.read_bytes()
                pages.append((key, entry.get("url"), gzip.decompress(data) if name.endswith(".gz") else data, entry["articleBody"]))
                break
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--verbose", action="store_true", help="print each page's scores")
    args = parser.parse_args(argv)
    pages = load_pages(args.dir)
    if not pages:
        print(f"no pages with ground truth under {args.dir}", file=sys.stderr)
        return 1
    settings = FetchSettings()
    extract_html(decode_html(pages[0][2])[0], settings, url=pages[0][1])  # warm-up: imports, configs
    precisions, recalls, elapsed, cpu = [], [], 0.0, 0.0
    for key, url, data, truth in pages:
        start, start_cpu = time.perf_counter(), time.process_time()
        article = extract_html(decode_html(data)[0], settings, url=url)
        elapsed += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        precision, recall = score(article_text(article), truth)
        precisions.append(precision)
        recalls.append(recall)
        if args.verbose:
            print(f"# {key[:12]} p={precision:.3f} r={recall:.3f} {url}")
    p = sum(precisions) / len(precisions)
    r = sum(recalls) / len(recalls)
    print(f"pages={len(pages)}")
    print(f"precision={p:.4f}")
    print(f"recall={r:.4f}")
    print(f"f1={2 * p * r / (p + r) if p + r else 0.0:.4f}")
    print(f"ms_per_page={1000 * elapsed / len(pages):.1f}")
    print(f"cpu_ms_per_page={1000 * cpu / len(pages):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

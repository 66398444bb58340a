"""Resume PDF cost per candidate, next to what one Harvest request costs in rate limit.

    .venv/bin/python -m bench.resume_render [--quick] [--renders 100] [--json-out FILE]

Claim measured (docs/resume.md): rendering a candidate's resume costs well under one Harvest request's share
of the rate limit, so making it in the export's worker never slows an export down. One request's share is the
window over the limit: 10 s / 50 = 200 ms and 30 s / 75 = 400 ms, the two limits documented for Harvest
(docs/design.md, "Rate limit"); a worker waits that long per request anyway once the limit is the bottleneck.

Samples: the English, Arabic, Hebrew, Chinese, Korean and Hindi profiles of tests/data/resume_samples.jsonl (the
English one has accents and an emoji in its summary: three fonts embedded), the English one without its emoji
(two fonts), and a large profile made here (the English one with 50 employments of long titles and a 10,000-character
summary: 8 pages). Each is rendered on A4 with the default font folders
(``ResumeSettings().font_dirs``) and ``max_bytes``.

Figures per sample:

- cold = the first ``render_resume`` in a fresh process (``python -m bench.resume_render --cold SAMPLE``, one
  process per sample): finding the fonts, reading them, cutting their tiers and parsing their prototypes, then
  the render. Interpreter start and imports are not in it (printed apart, once).
- warm = the same process renders the sample ``--renders`` times more (after one render not counted):
  median and 95th percentile (nearest rank).
- pages and size of the PDF; warm median / 200 ms and / 400 ms.

``--quick``: 20 warm renders per sample (100 without). Exit status 0.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a cold process times its imports apart from its first render
    from shared.profiles.model import Profile

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_FILE = ROOT / "tests" / "data" / "resume_samples.jsonl"
SAMPLES = {
    "English": "rs-en-1",
    "English, no emoji": "rs-en-1/no-emoji",
    "Arabic": "rs-ar-1",
    "Hebrew": "rs-he-1",
    "Chinese": "rs-zh-1",
    "Korean": "rs-ko-1",
    "Hindi": "rs-hi-1",
    "large": "large",
}
REQUEST_SHARES_MS = {"10 s / 50": 10_000 / 50, "30 s / 75": 30_000 / 75}
"""One Harvest request's share of the rate limit (window / limit), the two documented limits."""


@dataclass
class Measure:
    sample: str
    cold_ms: float
    warm_median_ms: float
    warm_p95_ms: float
    pages: int
    kilobytes: float


def profile(key: str) -> Profile:
    """The sample profile ``key`` (a profile id of the samples file, or ``large``)."""
    from shared.profiles.model import Profile, read_profiles_file

    samples = {p.id: p for p in read_profiles_file(SAMPLES_FILE).profiles}
    english = samples["rs-en-1"]
    if key == "rs-en-1/no-emoji":
        return english.model_copy(update={"summary": (english.summary or "").replace("\U0001f680 ", "")})
    if key != "large":
        return samples[key]
    jobs = [
        {
            "company_name": f"Company {n} Holdings and Subsidiaries",
            "title": ("Principal engineer for distributed systems and platform reliability " * 4)[:255],
            "start_date": f"{1970 + n // 2}-0{1 + n % 9}-01",
            "end_date": f"{1971 + n // 2}-0{1 + n % 9}-01",
        }
        for n in range(50)
    ]
    summary = ("Built and ran systems for payments, logistics and data; led teams through migrations. " * 200)[:10_000]
    return Profile.model_validate({**english.model_dump(mode="json"), "employments": jobs, "summary": summary})


def cold(key: str) -> None:
    """In a fresh process: print the import time and the first render's time, as JSON."""
    started = time.perf_counter()
    from shared.profiles.fonts import font_library
    from shared.profiles.resume import render_resume
    from shared.settings import ResumeSettings

    sample = profile(key)
    imported = time.perf_counter()
    render_resume(sample, fonts=font_library(ResumeSettings().font_dirs))
    print(json.dumps({"import_ms": (imported - started) * 1000, "first_ms": (time.perf_counter() - imported) * 1000}))


def p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(name: str, key: str, renders: int) -> tuple[Measure, float]:
    from shared.profiles.fonts import font_library
    from shared.profiles.resume import render_resume
    from shared.settings import ResumeSettings

    child = subprocess.run(
        [sys.executable, "-m", "bench.resume_render", "--cold", key],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    first = json.loads(child.stdout.strip().splitlines()[-1])
    fonts = font_library(ResumeSettings().font_dirs)
    sample = profile(key)
    resume = render_resume(sample, fonts=fonts)
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        render_resume(sample, fonts=fonts)
        times.append((time.perf_counter() - started) * 1000)
    result = Measure(
        sample=name,
        cold_ms=first["first_ms"],
        warm_median_ms=statistics.median(times),
        warm_p95_ms=p95(times),
        pages=resume.pages,
        kilobytes=len(resume.content) / 1000,
    )
    return result, first["import_ms"]


def table(results: Sequence[Measure]) -> str:
    shares = list(REQUEST_SHARES_MS.items())
    head = ["sample", "cold ms", "warm median ms", "warm p95 ms", "pages", "KB"]
    head += [f"median / {ms:.0f} ms ({label})" for label, ms in shares]
    rows = [
        [
            r.sample,
            f"{r.cold_ms:.0f}",
            f"{r.warm_median_ms:.1f}",
            f"{r.warm_p95_ms:.1f}",
            str(r.pages),
            f"{r.kilobytes:.1f}",
            *(f"{r.warm_median_ms / ms:.2f}" for _, ms in shares),
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        return "  ".join([row[0].ljust(widths[0]), *cells[1:]])

    lines = [line(row) for row in [head, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.resume_render", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 warm renders per sample (100 without)")
    parser.add_argument("--renders", type=int, default=None, help="warm renders per sample (100; --quick 20)")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the figures to this JSON file")
    parser.add_argument("--cold", metavar="SAMPLE", help=argparse.SUPPRESS)  # the fresh process of a cold render
    args = parser.parse_args(argv)
    if args.cold:
        cold(args.cold)
        return 0
    renders = args.renders or (20 if args.quick else 100)
    results = []
    import_ms = []
    for name, key in SAMPLES.items():
        result, imported = measure(name, key, renders)
        results.append(result)
        import_ms.append(imported)
    print(table(results))
    print(
        f"\n({renders} warm renders a sample; a fresh process spends {statistics.median(import_ms):.0f} ms on imports"
    )
    print(" before its first render, not counted in cold)")
    if args.json_out is not None:
        doc = {"renders": renders, "request_shares_ms": REQUEST_SHARES_MS, "results": [asdict(r) for r in results]}
        args.json_out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

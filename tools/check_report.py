"""Open the tour report in real headless Chromium, check it as a reader would, and write screenshots.

    python tools/check_report.py ravine-out/report.html [--shots ravine-out/shots]

1. Without a browser: :func:`ravine.report.html.audit` on the file (table of contents, anchors, ids, images).
2. In Chromium (``chromium --headless``, Debian's package): a copy of the report with a small script appended
   is loaded; once the page has loaded, the script checks in the browser's own DOM that every table-of-contents
   link resolves to an element, and that every image has decoded (``complete`` and a natural width > 0); its
   findings are read back from ``--dump-dom``.
3. Screenshots: the top of the page (the table of contents) and each chapter from its heading, 1280 px wide.

Exits 1 (printing each problem) if anything is wrong, 0 otherwise.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ravine.report.html import audit

_PROBE = """
<script>
window.addEventListener("load", () => {
  const links = [...document.querySelectorAll("nav.toc a[href^='#']")].map(a => a.getAttribute("href").slice(1));
  const images = [...document.images];
  const result = {
    toc_links: links.length,
    unresolved: links.filter(id => !document.getElementById(id)),
    images: images.length,
    broken: images.map((img, i) => [i + 1, img.complete, img.naturalWidth]).filter(([, ok, w]) => !ok || w === 0),
    sections: document.querySelectorAll("section[id]").length,
    height: document.documentElement.scrollHeight,
  };
  const out = document.createElement("pre");
  out.id = "ravine-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""


def chromium() -> str:
    """The Chromium executable, or exit with how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("check_report: Chromium not found; install it (Debian: apt-get install -y chromium)")


def _run(args: list[str], timeout: float = 120) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio"]
    done = subprocess.run(
        [chromium(), *flags, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.stdout


def browser_check(report: Path) -> dict[str, Any]:
    """Load ``report`` in Chromium with the probe appended; the probe's findings."""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe.html"
        probe.write_text(
            report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8"
        )
        dom = _run(["--virtual-time-budget=20000", "--dump-dom", probe.as_uri()])
    found = re.search(r'<pre id="ravine-check">(.*?)</pre>', dom, re.S)
    if not found:
        return {"error": "the probe did not report (the page did not finish loading)"}
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def screenshots(report: Path, folder: Path, *, height: int = 2400) -> list[Path]:
    """The top of the page (with the table of contents), then each section from its heading, as PNG files.

    Headless Chromium does not paint a page scrolled far down, so each section is shot from a copy of the page
    in which only that section is shown (the same HTML and style otherwise).
    """
    folder.mkdir(parents=True, exist_ok=True)
    page = report.read_text(encoding="utf-8")
    anchors = re.findall(r'<section id="([^"]+)"', page)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for index, anchor in enumerate(["", *anchors]):
            shown = page
            if anchor:
                hidden = f"body > section:not(#{anchor}), nav.toc, body > h1, body > p.note"
                only = f"<style>{hidden} {{ display: none; }}</style>"
                shown = page.replace("</head>", only + "</head>")
            copy = Path(scratch) / f"{index:02d}.html"
            copy.write_text(shown, encoding="utf-8")
            target = folder / f"{index:02d}-{anchor or 'top'}.png"
            _run(
                [
                    f"--screenshot={target}",
                    f"--window-size=1280,{height}",
                    "--virtual-time-budget=5000",
                    copy.as_uri(),
                ]
            )
            if target.exists():
                written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """Check the report; print the findings; 1 if anything is wrong."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the tour's report.html")
    parser.add_argument(
        "--shots", type=Path, default=None, help="folder for screenshots (default: next to it)"
    )
    args = parser.parse_args(argv)
    report: Path = args.report
    if not report.is_file():
        print(f"check_report: {report} is not a file; run `ravine tour` first", file=sys.stderr)
        return 1
    problems = audit(report.read_text(encoding="utf-8"))
    found = browser_check(report)
    if "error" in found:
        problems.append(str(found["error"]))
    else:
        problems += [
            f"browser: table-of-contents link #{name} resolves to nothing" for name in found["unresolved"]
        ]
        problems += [f"browser: image {number} did not load" for number, *_ in found["broken"]]
        if not found["toc_links"] or not found["images"]:
            problems.append(
                f"browser: found {found['toc_links']} contents links and {found['images']} images"
            )
    shots = screenshots(report, args.shots or report.parent / "screenshots")
    print(
        f"{report}: {found.get('toc_links')} contents links, {found.get('sections')} sections, "
        f"{found.get('images')} images, page {found.get('height')} px tall; {len(shots)} screenshots in "
        f"{shots[0].parent if shots else '(none)'}"
    )
    for problem in problems:
        print(f"  problem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

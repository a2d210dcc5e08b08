"""Real workloads, cold and warm: functions doing real work with real libraries.

    .venv/bin/python bench/workloads.py [--cold 10] [--warm 300]

Three functions, each with its dependencies installed into its zip with `pip install
--target` for the sandbox's Python, as a Lambda user packages them:

- thumbnail: Pillow opens a 1600x1200 JPEG shipped in the zip and writes a 200x150 thumbnail;
- template: jinja2 renders an HTML page of 200 table rows from the event;
- compress: a 1 MB text file in the zip compressed with zstandard (level 3) and gzip (level 6).

Cold: `--cold` fresh copies of each function, each invoked once (a new sandbox each): client
latency and the Init Duration Lamina reports. Warm: `--warm` sequential invokes of one copy
on one keep-alive connection: client latency and the REPORT line's Duration (the handler's own
time), so what the platform adds on top of real work shows.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import random
import re
import statistics
import subprocess
import time
import zipfile
from pathlib import Path

from suite import Figure, commit, lamina, machine, percentile, table, vendored
from warm_invoke import create_function, signed

SANDBOX_PYTHON = "/usr/bin/python3.11"

THUMBNAIL = """
import io
from PIL import Image

def handler(event, context):
    with Image.open("photo.jpg") as image:
        image.thumbnail((200, 150))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
    return {"bytes": out.tell(), "size": list(image.size)}
"""
TEMPLATE = '''
import jinja2

PAGE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html><head><title>{{ title }}</title></head><body><h1>{{ title }}</h1>
<table>{% for row in rows %}<tr class="{{ loop.cycle('odd', 'even') }}">
<td>{{ row.id }}</td><td>{{ row.name | title }}</td><td>{{ "%.2f" | format(row.price) }}</td>
</tr>{% endfor %}</table></body></html>""")

def handler(event, context):
    rows = [{"id": i, "name": f"item <{i}>", "price": i * 1.25} for i in range(event["rows"])]
    html = PAGE.render(title=event["title"], rows=rows)
    return {"bytes": len(html)}
'''
COMPRESS = """
import gzip
import zstandard

DATA = open("corpus.txt", "rb").read()

def handler(event, context):
    zstd = zstandard.ZstdCompressor(level=3).compress(DATA)
    gz = gzip.compress(DATA, compresslevel=6)
    return {"input": len(DATA), "zstd": len(zstd), "gzip": len(gz)}
"""


PHOTO = """
import io, random, sys
from PIL import Image

noise = random.Random(7).randbytes(1600 * 1200 * 3)
image = Image.frombytes("RGB", (1600, 1200), noise).resize((1600, 1200))
out = io.BytesIO()
image.save(out, "JPEG", quality=90)
sys.stdout.buffer.write(out.getvalue())
"""


def photo(pillow: Path) -> bytes:
    """A 1600x1200 JPEG, made with the same vendored Pillow by the sandbox's Python (the
    benchmark's own environment does not carry Pillow)."""
    made = subprocess.run(
        [SANDBOX_PYTHON, "-I", "-c", f"import sys; sys.path.insert(0, {str(pillow)!r})\n{PHOTO}"],
        capture_output=True, check=True,
    )  # fmt: skip
    return made.stdout


def corpus() -> bytes:
    draw = random.Random(11)
    words = [f"word{draw.randrange(5000)}" for _ in range(4000)]
    lines = [" ".join(draw.choices(words, k=12)) for _ in range(12000)]
    return "\n".join(lines).encode()[: 1 << 20]


def package(source: str, files: dict[str, bytes], libraries: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for library in libraries:
            for path in sorted(library.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts and path.name != ".complete":
                    archive.write(path, path.relative_to(library).as_posix())
        archive.writestr("index.py", source)
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def invoke(connection: http.client.HTTPConnection, name: str, event: dict) -> tuple[float, str]:
    """One invoke with its log tail: client milliseconds and the log."""
    path = f"/2015-03-31/functions/{name}/invocations"
    body = json.dumps(event).encode()
    headers = signed(connection.port, "POST", path, body)
    headers["X-Amz-Log-Type"] = "Tail"
    began = time.perf_counter()
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    answer = response.read()
    elapsed = (time.perf_counter() - began) * 1000
    if response.status != 200 or response.getheader("X-Amz-Function-Error"):
        raise RuntimeError(f"{name}: {response.status} {answer[:300]!r}")
    return elapsed, base64.b64decode(response.getheader("X-Amz-Log-Result") or "").decode()


def report_ms(log: str, field: str) -> float:
    found = re.search(rf"\t{field}: ([\d.]+) ms", log)
    return float(found.group(1)) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold", type=int, default=10)
    parser.add_argument("--warm", type=int, default=300)
    args = parser.parse_args()

    runtime = "python3.11"
    pillow, jinja2, zstandard = (
        vendored(requirement, SANDBOX_PYTHON)
        for requirement in ("pillow==13.0.0", "jinja2==3.1.6", "zstandard==0.25.0")
    )
    workloads = {
        "thumbnail (Pillow)": (package(THUMBNAIL, {"photo.jpg": photo(pillow)}, [pillow]), {}),
        "template (jinja2)": (package(TEMPLATE, {}, [jinja2]), {"title": "Stock", "rows": 200}),
        "compress (zstandard, gzip)": (package(COMPRESS, {"corpus.txt": corpus()}, [zstandard]),
                                       {}),
    }  # fmt: skip
    print(f"machine: {machine()}; commit {commit()}")
    rows = []
    with lamina() as platform:
        connection = http.client.HTTPConnection("127.0.0.1", platform.port, timeout=120)
        for index, (label, (code, event)) in enumerate(workloads.items()):
            cold_ms, init_ms = [], []
            for copy in range(args.cold):
                name = f"work-{index}-{copy}"
                create_function(platform.port, name, runtime, code)
                elapsed, log = invoke(connection, name, event)
                cold_ms.append(elapsed)
                init_ms.append(report_ms(log, "Init Duration"))
            warm_ms, handler_ms = [], []
            for _ in range(args.warm):
                elapsed, log = invoke(connection, f"work-{index}-0", event)
                warm_ms.append(elapsed)
                handler_ms.append(report_ms(log, "Duration"))
            cold, warm = Figure.of_values(cold_ms), Figure.of_values(warm_ms)
            added = [w - h for w, h in zip(warm_ms, handler_ms, strict=True)]
            rows.append([
                label, f"{len(code) / 1e6:.1f}",
                f"{cold.median:.0f}", f"{cold.p99:.0f}", f"{statistics.median(init_ms):.0f}",
                f"{warm.median:.2f}", f"{percentile(warm_ms, 0.99):.2f}",
                f"{statistics.median(handler_ms):.2f}", f"{statistics.median(added):.2f}",
            ])  # fmt: skip
            print("  " + " | ".join(rows[-1]), flush=True)

    print(f"cold: {args.cold} fresh functions each; warm: {args.warm} sequential invokes")
    header = ["function", "zip MB", "cold p50 ms", "cold max ms", "Init Duration p50 ms",
              "warm p50 ms", "warm p99 ms", "handler Duration p50 ms",
              "platform-added p50 ms"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()

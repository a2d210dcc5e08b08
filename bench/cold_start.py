"""Cold start per isolation backend and network mode, split into parts, next to this host's floor.

    .venv/bin/python bench/cold_start.py [--samples 30] [--isolation namespace gvisor]
        [--networks outbound none] [--runtime python3.11]

Each isolation backend (`lamina:isolation`: namespace, the default, with bubblewrap, seccomp
and a cgroup; or gvisor, with runsc) and each network mode (`lamina:network` = outbound, the
default, with slirp4netns; or none) start differently, so each pair is measured. For each pair
one no-op function is created, and each sample publishes a new version of it and invokes that
version once, so the invoke has to start a sandbox (as after a deploy). Each sample is split,
from the REPORT line Lamina returns with the log tail, into:

- Init Duration: sandbox start (namespaces, cgroup, network), the interpreter, Lamina's runtime
  and the handler module, until the runtime asks for its first event;
- Duration: the handler;
- the rest of what the client saw: placement (counting, picking a worker and a sandbox slot)
  and the HTTP hops from client to frontend to worker and back.

The floor, measured in the same run between samples: the same interpreter started bare
(`python3.11 -I -S -c pass`) and inside a bare bubblewrap with every namespace new.
Figures are medians with p99 over the samples.
"""

from __future__ import annotations

import argparse
import base64
import re
import itertools
import shutil
import subprocess
import time
from typing import Any

from suite import Figure, commit, lamina, machine, table
from warm_invoke import boto3_lambda, create_and_wait, create_function_zip

SANDBOX_PYTHON = "/usr/bin/python3.11"
NOOP = create_function_zip("def handler(event, context):\n    return None\n")


def bare_start_ms(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def floors() -> dict[str, list[str]]:
    python = [SANDBOX_PYTHON, "-I", "-S", "-c", "pass"]
    bwrap = shutil.which("bwrap") or "bwrap"
    sandboxed = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/",
                 "--dev", "/dev", "--proc", "/proc", *python]  # fmt: skip
    return {"bare python3.11 start": python, "python3.11 in a bare bubblewrap": sandboxed}


def report_ms(log: str, field: str) -> float:
    found = re.search(rf"\t{field}: ([\d.]+) ms", log)
    return float(found.group(1)) if found else float("nan")


def cold_invoke(client: Any, name: str, sample: int) -> tuple[float, float, float]:
    """Publish a new version of `name` and invoke it: (client ms, Init Duration, Duration)."""
    client.update_function_configuration(FunctionName=name, Description=f"sample {sample}")
    waiter = client.get_waiter("function_updated_v2")
    waiter.wait(FunctionName=name, WaiterConfig={"Delay": 1})
    version = client.publish_version(FunctionName=name)["Version"]
    started = time.perf_counter()
    response = client.invoke(FunctionName=name, Qualifier=version, LogType="Tail")
    elapsed = (time.perf_counter() - started) * 1000
    log = base64.b64decode(response["LogResult"]).decode()
    return elapsed, report_ms(log, "Init Duration"), report_ms(log, "Duration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--isolation", nargs="*", default=["namespace"])
    parser.add_argument("--networks", nargs="*", default=["outbound", "none"])
    parser.add_argument("--runtime", default="python3.11")
    args = parser.parse_args()

    print(f"machine: {machine()}; commit {commit()}")
    commands = floors()
    floor_ms: dict[str, list[float]] = {label: [] for label in commands}
    parts: dict[str, dict[str, list[float]]] = {}
    with lamina() as platform:
        client = boto3_lambda(platform.port)
        for isolation, network in itertools.product(args.isolation, args.networks):
            name = f"cold-{isolation}-{network}"
            tags = {"lamina:isolation": isolation, "lamina:network": network}
            create_and_wait(client, name, args.runtime, NOOP, Tags=tags)
            label = f"{isolation}, network {network}"
            found = parts[label] = {"client": [], "init": [], "handler": [], "rest": []}
            for sample in range(args.samples):
                elapsed, init, handler = cold_invoke(client, name, sample)
                found["client"].append(elapsed)
                found["init"].append(init)
                found["handler"].append(handler)
                found["rest"].append(elapsed - init - handler)
                for floor, command in commands.items():  # interleaved, as load comes and goes
                    floor_ms[floor].append(bare_start_ms(command))
            print(f"  {label}: {len(found['client'])} samples", flush=True)

    rows = []
    for label, found in parts.items():
        figures = [Figure.of_values(found[k]) for k in ("client", "init", "handler", "rest")]
        rows.append([f"Lamina cold invoke, {label}",
                     *(f"{f.median:.1f} / {f.p99:.1f}" for f in figures)])  # fmt: skip
    for label, samples in floor_ms.items():
        figure = Figure.of_values(samples)
        rows.append([f"{label} (floor)", f"{figure.median:.1f} / {figure.p99:.1f}", "", "", ""])
    print(f"{args.samples} new versions per backend and network, each invoked once;"
          " median / p99 ms")
    header = ["target", "client sees", "Init Duration", "handler Duration",
              "placement and HTTP hops"]  # fmt: skip
    print(table(header, rows))


if __name__ == "__main__":
    main()

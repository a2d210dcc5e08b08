"""The limits Lamina's processes give themselves before they serve."""

from __future__ import annotations

import subprocess
import sys


def test_a_process_serving_lamina_may_open_as_many_files_as_its_hard_limit_allows() -> None:
    # In a child, so that this test run's own limit is left alone.
    script = (
        "import resource\n"
        "from lamina import eventloop\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "async def limits():\n"
        "    return resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "soft, hard = eventloop.run(limits())\n"
        "print(soft == hard, soft > 256)\n"
    )
    found = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert found.stdout.split() == ["True", "True"], found.stderr

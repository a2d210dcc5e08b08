"""The checks on a custom runtime's bootstrap before its sandbox starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.sandbox import entrypoint


def bootstrap(code_dir: Path, content: bytes, mode: int = 0o755) -> None:
    path = code_dir / "bootstrap"
    path.write_bytes(content)
    os.chmod(path, mode)


@pytest.mark.parametrize(
    "script",
    [b"#!/bin/sh\necho\n", b"#!/usr/bin/env python3\n", b"#! /bin/bash -eu\n"],
    ids=["sh", "env", "space-and-flags"],
)
def test_a_script_whose_interpreter_the_sandbox_has_may_start(
    tmp_path: Path, script: bytes
) -> None:
    bootstrap(tmp_path, script)

    assert entrypoint.problem(tmp_path) is None


def test_an_interpreter_shipped_in_the_code_counts_as_present(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "run").write_text("")
    bootstrap(tmp_path, b"#!/var/task/bin/run\n")

    assert entrypoint.problem(tmp_path) is None


def test_an_interpreter_outside_what_the_sandbox_sees_is_missing(tmp_path: Path) -> None:
    bootstrap(tmp_path, b"#!/home/me/bin/python\n")

    assert entrypoint.problem(tmp_path) == (
        "fork/exec /var/task/bootstrap: no such file or directory"
    )


def test_a_directory_named_bootstrap_is_no_bootstrap(tmp_path: Path) -> None:
    (tmp_path / "bootstrap").mkdir()

    assert entrypoint.problem(tmp_path) == (
        "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]"
    )


def test_a_file_that_is_neither_script_nor_binary_has_the_wrong_format(tmp_path: Path) -> None:
    bootstrap(tmp_path, b"echo no interpreter line\n")

    assert entrypoint.problem(tmp_path) == "fork/exec /var/task/bootstrap: exec format error"

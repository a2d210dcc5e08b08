"""Choosing an isolation backend (per worker and per function) and gVisor's OCI spec."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lamina.frontend import isolation
from lamina.frontend.errors import InvalidParameterValue
from lamina.orphans import die_with_parent_argv
from lamina.placement.fleet import Fleet, Registration
from lamina.sandbox import backend, bwrap, gvisor
from lamina.sandbox.backend import LaunchFds
from lamina.sandbox.bwrap import BackendUnavailable, LaunchSpec
from lamina.sandbox.cgroups import SandboxCgroup
from lamina.sandbox.process import ProcessBackend
from lamina.worker.interpreters import Interpreter
from tests.unit.test_assignment import registration

SYSTEM_PYTHON = Interpreter("python3.11", "3.11.2", "/usr/bin/python3.11", "/usr")
PYENV_PYTHON = Interpreter(
    "python3.12",
    "3.12.1",
    "/opt/pyenv/versions/3.12.1/bin/python3.12",
    "/opt/pyenv/versions/3.12.1",
)
CUSTOM = Interpreter("provided.al2023", "3.11.2", "/usr/bin/python3.11", "/usr")


def spec(
    tmp_path: Path, interpreter: Interpreter = SYSTEM_PYTHON, **changes: object
) -> LaunchSpec:
    values: dict = {
        "code_dir": tmp_path / "code",
        "runtime_dir": tmp_path / "runtime",
        "socket_dir": tmp_path / "socket",
        "interpreter": interpreter,
        "tmp_size_mb": 512,
        "etc_dir": tmp_path / "etc",
        **changes,
    }
    return LaunchSpec(**values)


def mounts_by_destination(config: dict) -> dict[str, dict]:
    return {mount["destination"]: mount for mount in config["mounts"]}


# Backends a worker offers


@pytest.fixture
def everything_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gvisor.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(gvisor.os, "geteuid", lambda: 0)


def test_a_worker_defaults_to_the_namespace_backend_and_offers_gvisor_beside_it(
    tmp_path: Path, everything_installed: None
) -> None:
    backends = backend.open_backends(tmp_path, None)

    assert backends.default == "namespace"
    assert list(backends.offered) == ["namespace", "gvisor"]
    assert backends.get("").name == "namespace"
    assert backends.get("gvisor").name == "gvisor"


def test_the_process_backend_is_never_offered_unless_the_worker_is_started_with_it(
    tmp_path: Path, everything_installed: None
) -> None:
    assert backend.open_backends(tmp_path, None).get("process") is None
    assert backend.open_backends(tmp_path, "gvisor").get("process") is None

    chosen = backend.open_backends(tmp_path, "process")
    assert chosen.default == "process"
    assert isinstance(chosen.get(""), ProcessBackend)


def test_the_process_backend_warns_loudly_when_a_worker_starts_with_it(
    tmp_path: Path, everything_installed: None, caplog: pytest.LogCaptureFixture
) -> None:
    backend.open_backends(tmp_path, "process")

    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("ISOLATION IS OFF" in message for message in warnings)


def test_a_worker_whose_default_backend_cannot_run_refuses_to_start_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap.shutil, "which", lambda name: None)

    with pytest.raises(BackendUnavailable, match="apt-get install bubblewrap"):
        backend.open_backends(tmp_path, None)


def test_a_backend_the_host_lacks_is_left_out_without_failing_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One `shutil` serves both backends: only runsc is missing.
    monkeypatch.setattr(gvisor.shutil, "which", lambda name: None if name == "runsc" else name)

    backends = backend.open_backends(tmp_path, None)

    assert list(backends.offered) == ["namespace"]
    assert backends.get("gvisor") is None


def test_gvisor_names_what_to_install_when_runsc_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor.shutil, "which", lambda name: None)

    assert "apt-get install runsc" in (gvisor.GVisorBackend(tmp_path).unavailable() or "")


def test_an_unknown_backend_name_is_refused() -> None:
    with pytest.raises(backend.UnknownBackend, match="namespace, gvisor, process"):
        backend.check_name("vm")


# The function tag


def context(*offered: str) -> Any:
    fleet = Fleet(connect=lambda worker_id, url: SimpleNamespace())
    base = registration("w1").__dict__
    fleet.register(Registration(**{**base, "isolation": offered}))
    return SimpleNamespace(fleet=fleet)


def test_a_function_without_the_tag_runs_under_the_workers_default() -> None:
    assert isolation.chosen(context("namespace"), {"team": "a"}) == ""


def test_the_tag_chooses_a_backend_some_worker_offers() -> None:
    ctx = context("namespace", "gvisor")

    assert isolation.chosen(ctx, {backend.ISOLATION_TAG: "gvisor"}) == "gvisor"


def test_an_unknown_tag_value_is_an_invalid_parameter() -> None:
    with pytest.raises(InvalidParameterValue, match="one of namespace, gvisor, process"):
        isolation.chosen(context("namespace"), {backend.ISOLATION_TAG: "firecracker"})


def test_a_backend_no_worker_offers_is_an_invalid_parameter_naming_those_offered() -> None:
    with pytest.raises(InvalidParameterValue, match="workers here offer: gvisor, namespace"):
        isolation.chosen(context("namespace", "gvisor"), {backend.ISOLATION_TAG: "process"})


def test_a_registration_carries_the_backends_a_worker_offers() -> None:
    doc = {
        **registration("w1").__dict__,
        "idle_sandboxes": [],
        "isolation": ["namespace", "gvisor"],
    }

    assert Registration.from_dict(doc).isolation == ("namespace", "gvisor")


# gVisor's OCI spec


def test_the_oci_spec_mounts_code_and_runtime_read_only_on_a_read_only_root(
    tmp_path: Path,
) -> None:
    config = gvisor.oci_config(spec(tmp_path), {"A": "1"}, tmp_path / "rootfs")
    mounts = mounts_by_destination(config)

    assert config["root"] == {"path": str(tmp_path / "rootfs"), "readonly": True}
    for destination in ("/usr", "/var/task", "/var/runtime", "/etc/passwd", "/etc/group"):
        assert "ro" in mounts[destination]["options"], destination
    assert mounts["/var/task"]["source"] == str(tmp_path / "code")
    assert "/var/lang" not in mounts
    assert not any(m["source"] in ("/etc", "/root", "/home") for m in config["mounts"])


def test_the_oci_spec_sizes_tmp_by_ephemeral_storage(tmp_path: Path) -> None:
    config = gvisor.oci_config(spec(tmp_path, tmp_size_mb=2048), {}, tmp_path)

    tmp = mounts_by_destination(config)["/tmp"]
    assert tmp["type"] == "tmpfs"
    assert "size=2048m" in tmp["options"]


def test_runsc_runs_in_the_sandboxs_cgroup_and_configures_none_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor.shutil, "which", lambda name: f"/usr/bin/{name}")
    sockets = tmp_path / "socket"
    sockets.mkdir()
    (sockets / bwrap.SOCKET_NAME).touch()
    cgroup = SandboxCgroup("s1", (tmp_path / "memory" / "s1", tmp_path / "pids" / "s1"), 1)
    with_cgroup = dataclasses.replace(spec(tmp_path), cgroup=cgroup)

    launch = gvisor.GVisorBackend(tmp_path / "gvisor").launch(
        "s1", with_cgroup, {}, LaunchFds(10, 11)
    )

    # Armed to die with the worker, then in the sandbox's cgroup, then runsc.
    prefix = [*die_with_parent_argv(signal.SIGKILL), *cgroup.exec_prefix()]
    assert launch.argv[: len(prefix)] == prefix
    assert launch.argv[len(prefix)] == "/usr/bin/runsc"
    assert "--ignore-cgroups" in launch.argv
    config = gvisor.oci_config(with_cgroup, {}, tmp_path)
    assert "resources" not in config["linux"] and "cgroupsPath" not in config["linux"]


def test_the_runtime_runs_as_the_lambda_user_without_capabilities(tmp_path: Path) -> None:
    process = gvisor.oci_config(spec(tmp_path), {}, tmp_path)["process"]

    assert process["user"] == {"uid": 993, "gid": 990}
    assert process["capabilities"] == {}
    assert process["noNewPrivileges"] is True
    assert process["cwd"] == "/var/task"
    assert {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024} in process["rlimits"]


def test_the_runtime_starts_after_the_shell_opens_the_telemetry_fifo_on_its_descriptor(
    tmp_path: Path,
) -> None:
    env = {"_LAMBDA_TELEMETRY_LOG_FD": "3", "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}
    process = gvisor.oci_config(spec(tmp_path), env, tmp_path)["process"]

    assert process["args"][:2] == ["/usr/bin/sh", "-c"]
    assert "exec 3>/var/run/lamina/telemetry" in process["args"][2]
    assert process["args"][4:] == ["/usr/bin/python3.11", "-I", "-S", "/var/runtime/bootstrap.py"]
    assert "_LAMBDA_TELEMETRY_LOG_FD=3" in process["env"]
    assert "AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001" in process["env"]


def test_an_interpreter_outside_usr_is_mounted_at_var_lang(tmp_path: Path) -> None:
    config = gvisor.oci_config(spec(tmp_path, PYENV_PYTHON), {}, tmp_path)

    assert mounts_by_destination(config)["/var/lang"]["source"] == PYENV_PYTHON.host_prefix
    assert config["process"]["args"][4] == "/var/lang/bin/python3.12"


def test_a_custom_runtime_execs_the_functions_bootstrap(tmp_path: Path) -> None:
    config = gvisor.oci_config(spec(tmp_path, CUSTOM), {}, tmp_path)

    assert config["process"]["args"][-2:] == ["--exec", "/var/task/bootstrap"]


def test_a_launch_writes_the_bundle_and_runs_runsc_without_network_under_the_workers_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor.shutil, "which", lambda name: "/usr/bin/runsc")
    sockets = tmp_path / "socket"
    sockets.mkdir()
    (sockets / bwrap.SOCKET_NAME).touch()
    backend_ = gvisor.GVisorBackend(tmp_path / "gvisor")

    launch = backend_.launch("s1", spec(tmp_path), {"A": "1"}, LaunchFds(10, 11))

    bundle = tmp_path / "gvisor" / "bundles" / "s1"
    assert json.loads((bundle / "config.json").read_text())["process"]["env"][0] == "A=1"
    armed = die_with_parent_argv(signal.SIGKILL)
    assert launch.argv[: len(armed)] == armed
    runsc = launch.argv[len(armed) : len(armed) + 3]
    assert runsc == ["/usr/bin/runsc", "--root", str(tmp_path / "gvisor" / "state")]
    assert "--network=none" in launch.argv
    assert launch.argv[-4:] == ["run", "--bundle", str(bundle), "s1"]
    assert launch.pass_fds == ()
    assert launch.telemetry_fd is not None
    assert (sockets / gvisor.TELEMETRY_FIFO).stat().st_mode & 0o777 == 0o622
    assert (sockets / bwrap.SOCKET_NAME).stat().st_mode & 0o777 == 0o666


def test_gvisor_holds_a_function_to_the_processes_its_memory_can_hold(tmp_path: Path) -> None:
    def nproc(memory_mb: int) -> int:
        process = gvisor.oci_config(spec(tmp_path, memory_mb=memory_mb), {}, tmp_path)["process"]
        limits = {limit["type"]: limit for limit in process["rlimits"]}
        assert limits["RLIMIT_NPROC"]["soft"] == limits["RLIMIT_NPROC"]["hard"]
        return int(limits["RLIMIT_NPROC"]["hard"])

    assert nproc(128) == 10
    assert nproc(1024) == 122
    assert nproc(8240) == 1024
    assert nproc(10240) == 1024


def test_a_gvisor_blank_waits_on_its_standard_input_with_the_largest_process_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gvisor.shutil, "which", lambda name: f"/usr/bin/{name}")
    sockets = tmp_path / "socket"
    sockets.mkdir()
    (sockets / bwrap.SOCKET_NAME).touch()
    backend_ = gvisor.GVisorBackend(tmp_path / "gvisor")

    fds = LaunchFds(10, 11, assignment=12)
    launch = backend_.launch("blank-1", spec(tmp_path), {"LAMINA_ASSIGNMENT_FD": "12"}, fds)

    bundle = tmp_path / "gvisor" / "bundles" / "blank-1"
    process = json.loads((bundle / "config.json").read_text())["process"]
    # `runsc run` hands a container its stdio alone: the channel is the runtime's stdin.
    assert launch.stdin == 12 and launch.pass_fds == ()
    assert "LAMINA_ASSIGNMENT_FD=0" in process["env"]
    assert process["args"][-1] == "--blank" and "</dev/null" not in process["args"][2]
    limits = {limit["type"]: limit["hard"] for limit in process["rlimits"]}
    assert limits["RLIMIT_NPROC"] == 1024
    assert launch.runtime_telemetry_fd == gvisor.INNER_TELEMETRY_FD


def test_a_gvisor_blank_is_told_its_functions_process_limit_at_assignment(tmp_path: Path) -> None:
    backend_ = gvisor.GVisorBackend(tmp_path / "gvisor")

    limits = backend_.assignment_limits(spec(tmp_path, memory_mb=256))

    assert limits == {"RLIMIT_NPROC": gvisor.process_limit(256)} == {"RLIMIT_NPROC": 26}


def test_a_cold_gvisor_sandbox_reads_gvisors_own_null_device_as_a_blank_does(
    tmp_path: Path,
) -> None:
    process = gvisor.oci_config(spec(tmp_path), {}, tmp_path)["process"]

    assert "</dev/null" in process["args"][2]

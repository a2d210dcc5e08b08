"""Content-addressed code storage and safe extraction of uploaded zip archives."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import struct
import threading
import zipfile
from pathlib import Path

import pytest

from lamina.frontend.errors import InvalidParameterValue, LambdaError, RequestTooLarge
from lamina.registry.code import (
    UNZIPPED_LIMIT,
    ZIPPED_LIMIT,
    CodeStore,
    extract_zip,
    inspect_zip,
)

RECORDED = Path(__file__).resolve().parents[3] / "shared/reference/aws-recorded"
UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."


def recorded_error(test_name: str, label: str) -> tuple[str, str, int]:
    """(code, message, status) that real AWS answered, as the recorded snapshots hold them."""
    snapshot = RECORDED / "test_lambda_api.snapshot.json"
    if not snapshot.exists():
        pytest.skip("the responses recorded from AWS are not available")
    tests = json.loads(snapshot.read_text())
    key = next(k for k in tests if k.endswith(f"::{test_name}"))
    response = tests[key]["recorded-content"][label]
    status = response["ResponseMetadata"]["HTTPStatusCode"]
    return response["Error"]["Code"], response["Error"]["Message"], status


def archive(*entries: tuple[str, bytes, int], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip built in memory from (name, content, unix mode) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zipped:
        for name, content, mode in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            info.external_attr = mode << 16
            zipped.writestr(info, content)
    return buffer.getvalue()


def file(name: str, content: bytes = b"x", mode: int = 0o100644) -> tuple[str, bytes, int]:
    return name, content, mode


def declare_size(data: bytes, name: str, declared: int) -> bytes:
    """Rewrite the uncompressed size that the headers of entry `name` declare."""
    patched = bytearray(data)
    # (signature, offset of the size field, offset of the name length, offset of the name)
    for signature, size_at, length_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        start = patched.find(signature)
        while start != -1:
            (length,) = struct.unpack_from("<H", patched, start + length_at)
            if patched[start + name_at : start + name_at + length] == name.encode():
                struct.pack_into("<I", patched, start + size_at, declared)
            start = patched.find(signature, start + 4)
    return bytes(patched)


def refusal(call, *args) -> LambdaError:
    with pytest.raises(LambdaError) as caught:
        call(*args)
    return caught.value


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def leftovers(directory: Path) -> list[str]:
    return [entry.name for entry in directory.iterdir() if entry.name.startswith(".")]


class TestInspection:
    def test_the_code_hash_is_reported_in_hex_and_as_lambdas_base64_codesha256(self) -> None:
        data = archive(file("handler.py", b"def handler(event, context):\n    return event\n"))

        info = inspect_zip(data)

        digest = hashlib.sha256(data).digest()
        assert info.sha256_hex == digest.hex()
        assert info.sha256_b64 == base64.b64encode(digest).decode()
        assert info.size == len(data)

    def test_the_unzipped_size_is_the_sum_of_the_entries(self) -> None:
        data = archive(file("a.py", b"a" * 1000), file("pkg/b.py", b"b" * 24))

        assert inspect_zip(data).unzipped_size == 1024

    def test_an_archive_of_the_zipped_limit_is_refused_with_lambdas_413(self) -> None:
        code, message, status = recorded_error(
            "test_oversized_zipped_create_lambda", "invalid_param_exc"
        )

        error = refusal(inspect_zip, bytes(ZIPPED_LIMIT))

        assert isinstance(error, RequestTooLarge)
        assert (error.code, error.message, error.status) == (code, message, status)

    def test_an_archive_just_below_the_zipped_limit_passes_the_size_check(self) -> None:
        error = refusal(inspect_zip, bytes(ZIPPED_LIMIT - 1))

        assert isinstance(error, InvalidParameterValue)
        assert error.message == UNZIP_FAILED

    def test_bytes_that_are_no_zip_are_refused_with_lambdas_message(self) -> None:
        code, message, status = recorded_error("test_create_lambda_exceptions", "invalid_zip_exc")

        error = refusal(inspect_zip, b"this is not a zipfile, just a random string")

        assert isinstance(error, InvalidParameterValue)
        assert (error.code, error.message, error.status) == (code, message, status)

    def test_a_truncated_archive_is_refused_as_not_unzippable(self) -> None:
        data = archive(file("handler.py", b"print(1)\n" * 100))

        error = refusal(inspect_zip, data[: len(data) // 2])

        assert isinstance(error, InvalidParameterValue)
        assert error.message == UNZIP_FAILED

    def test_declaring_the_unzipped_limit_is_refused_with_lambdas_message(self) -> None:
        code, message, status = recorded_error("test_oversized_lambda", "invalid_param_exc")
        data = declare_size(archive(file("handler.py", b"x")), "handler.py", UNZIPPED_LIMIT)

        error = refusal(inspect_zip, data)

        assert isinstance(error, InvalidParameterValue)
        assert (error.code, error.message, error.status) == (code, message, status)

    def test_declaring_one_byte_less_than_the_unzipped_limit_is_accepted(self) -> None:
        data = declare_size(archive(file("handler.py", b"x")), "handler.py", UNZIPPED_LIMIT - 1)

        assert inspect_zip(data).unzipped_size == UNZIPPED_LIMIT - 1

    @pytest.mark.parametrize(
        "name",
        ["../evil", "a/../../evil", "/abs", "/", "C:/windows/evil", "c:evil", "..\\evil",
         "a\\..\\..\\evil", "\\abs", ".."],
    )  # fmt: skip
    def test_an_entry_that_leads_outside_the_code_directory_is_refused(self, name: str) -> None:
        error = refusal(inspect_zip, archive(file("ok.py"), file(name)))

        assert isinstance(error, InvalidParameterValue)
        assert (error.code, error.status) == ("InvalidParameterValueException", 400)
        assert error.message == (
            f"The uploaded file contains '{name}', a path that leads outside the function's "
            "code directory."
        )

    @pytest.mark.parametrize("name", ["a/../b.py", "./handler.py", "a/./b/../c.py", "a\\b.py"])
    def test_an_entry_whose_dots_stay_inside_the_code_directory_is_accepted(
        self, name: str
    ) -> None:
        assert inspect_zip(archive(file(name))).unzipped_size == 1

    def test_a_symbolic_link_entry_is_refused(self) -> None:
        data = archive(file("handler.py"), file("link", b"/etc/passwd", 0o120777))

        error = refusal(inspect_zip, data)

        assert isinstance(error, InvalidParameterValue)
        assert error.message == (
            "The uploaded file contains 'link', a symbolic link; Lamina extracts only regular "
            "files and directories."
        )

    @pytest.mark.parametrize("kind", [stat.S_IFIFO, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFSOCK])
    def test_a_device_pipe_or_socket_entry_is_refused(self, kind: int) -> None:
        error = refusal(inspect_zip, archive(file("special", b"", kind | 0o644)))

        assert isinstance(error, InvalidParameterValue)
        assert error.message == (
            "The uploaded file contains 'special', which is neither a regular file nor a "
            "directory."
        )

    def test_entries_without_unix_modes_are_taken_as_plain_files(self) -> None:
        assert inspect_zip(archive(file("handler.py", b"abc", 0))).unzipped_size == 3

    def test_an_encrypted_entry_is_refused_as_not_unzippable(self) -> None:
        data = bytearray(archive(file("secret.py"), method=zipfile.ZIP_STORED))
        # Set the "encrypted" flag in the central directory, which is what inspection reads.
        central = data.find(b"PK\x01\x02")
        data[central + 8] |= 0x1

        error = refusal(inspect_zip, bytes(data))

        assert isinstance(error, InvalidParameterValue)
        assert error.message == UNZIP_FAILED


class TestCodeStore:
    def test_an_archive_is_stored_under_its_hash(self, tmp_path: Path) -> None:
        store = CodeStore(tmp_path / "code")
        data = archive(file("handler.py"))

        info = store.put(data)

        assert store.path(info.sha256_hex) == tmp_path / "code" / f"{info.sha256_hex}.zip"
        assert store.exists(info.sha256_hex)
        assert store.read(info.sha256_hex) == data

    def test_storing_the_same_bytes_twice_writes_nothing_new(self, tmp_path: Path) -> None:
        store = CodeStore(tmp_path)
        data = archive(file("handler.py"))
        first = store.put(data)
        stored = os.stat(store.path(first.sha256_hex))

        second = store.put(data)

        again = os.stat(store.path(second.sha256_hex))
        assert second == first
        assert (again.st_ino, again.st_mtime_ns) == (stored.st_ino, stored.st_mtime_ns)
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"{first.sha256_hex}.zip"]

    def test_an_archive_that_fails_inspection_is_not_stored(self, tmp_path: Path) -> None:
        store = CodeStore(tmp_path)

        refusal(store.put, archive(file("../evil")))

        assert list(tmp_path.iterdir()) == []

    def test_an_unknown_hash_does_not_exist(self, tmp_path: Path) -> None:
        assert not CodeStore(tmp_path).exists("0" * 64)

    @pytest.mark.parametrize("key", ["../../etc/passwd", "abc", "A" * 64, "0" * 63 + "/"])
    def test_a_key_that_is_not_a_sha256_hex_digest_is_rejected(
        self, tmp_path: Path, key: str
    ) -> None:
        with pytest.raises(ValueError):
            CodeStore(tmp_path).path(key)


class TestExtraction:
    def test_files_and_directories_are_extracted_with_their_contents(self, tmp_path: Path) -> None:
        data = archive(
            file("handler.py", b"def handler(e, c):\n    return 1\n"),
            ("pkg/", b"", 0o040755),
            file("pkg/sub/module.py", b"VALUE = 2\n"),
        )
        dest = tmp_path / "tree"

        extract_zip(write(tmp_path / "code.zip", data), dest)

        assert (dest / "handler.py").read_bytes() == b"def handler(e, c):\n    return 1\n"
        assert (dest / "pkg" / "sub" / "module.py").read_bytes() == b"VALUE = 2\n"

    def test_the_tree_is_read_only_and_keeps_the_executable_bit(self, tmp_path: Path) -> None:
        data = archive(file("bootstrap", b"#!/bin/sh\n", 0o100755), file("lib/data.txt"))
        dest = tmp_path / "tree"

        extract_zip(write(tmp_path / "code.zip", data), dest)

        def mode(path: Path) -> int:
            return stat.S_IMODE(path.stat().st_mode)

        assert mode(dest / "bootstrap") == 0o555
        assert mode(dest / "lib" / "data.txt") == 0o444
        assert mode(dest / "lib") == 0o555
        assert mode(dest) == 0o555

    def test_an_existing_tree_is_left_as_it_is(self, tmp_path: Path) -> None:
        dest = tmp_path / "tree"
        dest.mkdir()
        (dest / "marker").write_text("first")

        extract_zip(write(tmp_path / "code.zip", archive(file("handler.py"))), dest)

        assert sorted(p.name for p in dest.iterdir()) == ["marker"]

    def test_entries_are_checked_again_even_if_the_archive_was_never_inspected(
        self, tmp_path: Path
    ) -> None:
        zip_path = write(tmp_path / "code.zip", archive(file("ok.py"), file("a/../../evil")))
        dest = tmp_path / "work" / "tree"

        error = refusal(extract_zip, zip_path, dest)

        assert isinstance(error, InvalidParameterValue)
        assert "a path that leads outside" in error.message
        assert not dest.exists()
        assert not (tmp_path / "evil").exists()
        assert leftovers(dest.parent) == []

    def test_a_symbolic_link_is_never_extracted(self, tmp_path: Path) -> None:
        zip_path = write(tmp_path / "code.zip", archive(file("link", b"/etc", 0o120777)))
        dest = tmp_path / "tree"

        error = refusal(extract_zip, zip_path, dest)

        assert "a symbolic link" in error.message
        assert not dest.exists()
        assert leftovers(tmp_path) == []

    def test_a_bomb_whose_header_understates_its_size_is_refused(self, tmp_path: Path) -> None:
        honest = archive(file("bomb.bin", bytes(4 << 20)))
        lying = declare_size(honest, "bomb.bin", 10)
        dest = tmp_path / "tree"

        error = refusal(extract_zip, write(tmp_path / "code.zip", lying), dest)

        assert isinstance(error, InvalidParameterValue)
        assert error.message == UNZIP_FAILED
        assert not dest.exists()
        assert leftovers(tmp_path) == []

    def test_extraction_stops_once_the_bytes_written_reach_the_limit(self, tmp_path: Path) -> None:
        # Highly compressible: a few kilobytes of archive that unpack to 4 MiB.
        data = archive(file("small.txt", b"ok"), file("bomb.bin", bytes(4 << 20)))
        dest = tmp_path / "tree"

        error = refusal(extract_zip, write(tmp_path / "code.zip", data), dest, 1 << 20)

        assert isinstance(error, InvalidParameterValue)
        assert error.message == f"Unzipped size must be smaller than {1 << 20} bytes"
        assert not dest.exists()
        assert leftovers(tmp_path) == []

    def test_a_file_and_a_directory_at_the_same_path_are_refused(self, tmp_path: Path) -> None:
        data = archive(file("pkg", b"file"), file("pkg/module.py"))

        error = refusal(extract_zip, write(tmp_path / "code.zip", data), tmp_path / "tree")

        assert error.message == UNZIP_FAILED
        assert leftovers(tmp_path) == []

    def test_an_entry_stored_twice_ends_with_its_later_content(self, tmp_path: Path) -> None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zipped, pytest.warns(UserWarning):
            zipped.writestr("handler.py", b"first")
            zipped.writestr("handler.py", b"second")
        dest = tmp_path / "tree"

        extract_zip(write(tmp_path / "code.zip", buffer.getvalue()), dest)

        assert (dest / "handler.py").read_bytes() == b"second"

    def test_ten_thousand_small_files_are_all_extracted(self, tmp_path: Path) -> None:
        entries = [file(f"pkg{i % 100}/module{i}.py", b"N = %d\n" % i) for i in range(10_000)]
        dest = tmp_path / "tree"

        extract_zip(write(tmp_path / "code.zip", archive(*entries)), dest)

        assert len(list(dest.rglob("*.py"))) == 10_000
        assert (dest / "pkg7" / "module9907.py").read_text() == "N = 9907\n"

    def test_concurrent_extractors_of_one_archive_leave_one_complete_tree(
        self, tmp_path: Path
    ) -> None:
        entries = [file(f"pkg/module{i}.py", f"N = {i}\n".encode()) for i in range(500)]
        zip_path = write(tmp_path / "code.zip", archive(*entries))
        dest = tmp_path / "trees" / "tree"
        failures: list[BaseException] = []

        def extract() -> None:
            try:
                extract_zip(zip_path, dest)
                # Whoever returns must see the whole tree, never part of it.
                assert len(list((dest / "pkg").iterdir())) == 500
            except BaseException as failure:  # collected for the main thread
                failures.append(failure)

        threads = [threading.Thread(target=extract) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert failures == []
        assert leftovers(dest.parent) == []

"""Which runtime the local stack picks on which machine, and what it says about it."""

from __future__ import annotations

import pytest

from flowers_serving.local import rie, stack


@pytest.mark.parametrize(
    ("machine", "arch"),
    [("x86_64", "x86_64"), ("AMD64", "x86_64"), ("aarch64", "arm64"), ("arm64", "arm64"), ("riscv64", None)],
)
def test_the_rie_build_follows_the_architecture(
    monkeypatch: pytest.MonkeyPatch, machine: str, arch: str | None
) -> None:
    monkeypatch.setattr(rie.platform, "machine", lambda: machine)
    assert rie.rie_arch() == arch


@pytest.mark.parametrize("system", ["darwin", "win32"])
def test_where_no_rie_runs_the_python_runtime_is_chosen_and_said_once(
    monkeypatch: pytest.MonkeyPatch, system: str
) -> None:
    monkeypatch.setattr(rie.sys, "platform", system)
    monkeypatch.delenv(stack.ENV_RUNTIME, raising=False)
    kind, note = stack.choose_runtime("auto")
    assert kind == "python"
    assert note is not None
    assert "needs Linux" in note
    assert "built-in Python runtime" in note
    with pytest.raises(RuntimeError, match="needs Linux"):
        stack.choose_runtime("rie")
    with pytest.raises(FileNotFoundError, match="needs Linux"):
        rie.find_rie_binary()


def test_an_unknown_architecture_falls_back_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rie.sys, "platform", "linux")
    monkeypatch.setattr(rie.platform, "machine", lambda: "ppc64le")
    monkeypatch.delenv(stack.ENV_RUNTIME, raising=False)
    kind, note = stack.choose_runtime("auto")
    assert kind == "python"
    assert note is not None
    assert "ppc64le" in note


def test_the_environment_forces_the_python_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(stack.ENV_RUNTIME, "python")
    assert stack.choose_runtime("auto") == ("python", None)
    monkeypatch.setenv(stack.ENV_RUNTIME, "docker")
    with pytest.raises(ValueError, match=stack.ENV_RUNTIME):
        stack.choose_runtime("auto")


def test_a_missing_rie_on_linux_is_an_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rie.sys, "platform", "linux")
    monkeypatch.setattr(rie.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv(stack.ENV_RUNTIME, raising=False)
    monkeypatch.setenv(rie.ENV_RIE_BINARY, "/nonexistent/aws-lambda-rie")
    with pytest.raises(FileNotFoundError, match="is not a file"):
        stack.choose_runtime("auto")
    monkeypatch.delenv(rie.ENV_RIE_BINARY)
    monkeypatch.setattr(rie.util, "find_spec", lambda name: None)
    monkeypatch.setattr(rie.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="--runtime python"):
        stack.choose_runtime("auto")

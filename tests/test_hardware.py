"""The reduced-precision check of `keras_rse._hardware` (pure text parsing, no timing)."""

import pytest

from keras_rse import _hardware

X86_AVX2 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n"
X86_AMX = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd fphp asimdhp bf16 i8mm\n"


def test_cpu_flags_reads_x86_and_arm_lines():
    assert _hardware.cpu_flags(X86_AVX2) == {"fpu", "sse2", "avx", "avx2", "fma"}
    assert "bf16" in _hardware.cpu_flags(ARM_BF16)
    assert _hardware.cpu_flags("processor\t: 0\n") is None


@pytest.mark.parametrize("text, policy, expected", [
    (X86_AVX2, "mixed_bfloat16", False), (X86_AMX, "mixed_bfloat16", True),
    (ARM_BF16, "mixed_bfloat16", True), (X86_AVX2, "mixed_float16", False),
    (ARM_BF16, "mixed_float16", True), (X86_AVX2, "float32", True),
    ("no flags here", "mixed_bfloat16", None)])
def test_native_on_cpu(text, policy, expected):
    assert _hardware.native_on_cpu(policy, _hardware.cpu_flags(text)) is expected


def test_warning_only_for_an_emulated_policy_without_a_gpu():
    flags = _hardware.cpu_flags(X86_AVX2)
    text = _hardware.slow_policy_warning("mixed_bfloat16", "--mixed_precision", gpus=0,
                                         flags=flags)
    assert "--mixed_precision" in text and "mixed_bfloat16" in text and "10x" in text
    assert _hardware.slow_policy_warning("mixed_bfloat16", "--x", gpus=1, flags=flags) is None
    assert _hardware.slow_policy_warning("mixed_bfloat16", "--x", gpus=0,
                                         flags=_hardware.cpu_flags(X86_AMX)) is None
    assert _hardware.slow_policy_warning("float32", "--x", gpus=0, flags=flags) is None


def test_unreadable_flags_give_no_warning(monkeypatch):
    """Where /proc/cpuinfo says nothing (another OS), there is no guess and no warning."""
    monkeypatch.setattr(_hardware, "cpu_flags", lambda: None)
    assert _hardware.slow_policy_warning("mixed_bfloat16", "--x", gpus=0) is None


def test_warning_goes_to_stderr_naming_the_flag(monkeypatch, capsys):
    parse = _hardware.cpu_flags
    monkeypatch.setattr(_hardware, "cpu_flags", lambda: parse(X86_AVX2))
    monkeypatch.setattr(_hardware, "_visible_gpus", lambda: 0)
    text = _hardware.warn_if_slow_policy("mixed_bfloat16", "--attack_policy")
    assert text and f"WARNING: {text}" in capsys.readouterr().err
    monkeypatch.setattr(_hardware, "cpu_flags", lambda: parse(X86_AMX))
    assert _hardware.warn_if_slow_policy("mixed_bfloat16", "--attack_policy") is None
    assert capsys.readouterr().err == ""

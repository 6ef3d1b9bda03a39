"""Does this CPU compute a reduced-precision policy natively? (bfloat16 can cost 10x)

``mixed_bfloat16`` is a large win on CPUs with AMX or AVX512-BF16 (VGG16
training 1.6x faster on the Intel AMX machine of the earlier benchmarks) and a
large loss without them: TensorFlow then falls back to Eigen's emulated
bfloat16 GEMM. On a 2-core AMD EPYC with AVX2 only, measured with
``benchmarks/bench_conv_precision.py``, the input gradient of a 64->64 3x3 conv
(batch 64, 32x32) took 1,626 ms in bfloat16 against 146 ms in float32, and a
RAT train step of WRN-16-4 (batch 200) about 150 s against 11.2 s. The CLI
warns before such a run instead of letting it crawl silently.
"""

import sys

# /proc/cpuinfo flags of native reduced-precision arithmetic that oneDNN uses.
NATIVE_FLAGS = {
    "mixed_bfloat16": {"amx_bf16", "avx512_bf16", "bf16"},  # x86 AMX / AVX-512, Arm BF16
    "mixed_float16": {"amx_fp16", "avx512_fp16", "fphp"},   # x86 AMX / AVX-512, Arm FP16
}


def cpu_flags(cpuinfo_text=None):
    """The CPU feature flags of ``/proc/cpuinfo`` (or of ``cpuinfo_text``).

    Args:
        cpuinfo_text: Text in the ``/proc/cpuinfo`` format; default: read the
            file.

    Returns:
        A set of flag names, or None where they cannot be read (no such file,
        or no ``flags`` / ``Features`` line).
    """
    if cpuinfo_text is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo_text = f.read()
        except OSError:
            return None
    for line in cpuinfo_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / Arm
            return set(value.split())
    return None


def native_on_cpu(policy, flags):
    """True / False: the CPU has / lacks native arithmetic for ``policy``; None: unknown.

    Args:
        policy: A Keras dtype policy name ("float32" is always native).
        flags: `cpu_flags` output.
    """
    if policy not in NATIVE_FLAGS:
        return True
    if flags is None:
        return None
    return bool(NATIVE_FLAGS[policy] & flags)


def slow_policy_warning(policy, what, gpus=None, flags=None):
    """A warning text when ``policy`` would run emulated on this CPU, else None.

    Args:
        policy: The dtype policy about to be used (e.g. "mixed_bfloat16").
        what: The flag or argument that asked for it, named in the text.
        gpus: Number of visible GPUs; default: asks TensorFlow. With a GPU
            the policy runs there, so there is nothing to warn about.
        flags: `cpu_flags` output; default: read from this machine.

    Returns:
        The warning text, or None.
    """
    if gpus is None:
        gpus = _visible_gpus()
    if gpus:
        return None
    flags = cpu_flags() if flags is None else flags
    if native_on_cpu(policy, flags) is not False:
        return None
    wanted = " or ".join(sorted(NATIVE_FLAGS[policy]))
    return (f"{what} asks for {policy}, but this CPU has no native support for it (no "
            f"{wanted} flag in /proc/cpuinfo) and no GPU is visible: TensorFlow emulates it, "
            f"which was measured about 10x SLOWER than float32 on such a CPU (see "
            f"benchmarks/bench_conv_precision.py). Drop {what} here unless you measured "
            f"otherwise.")


def _visible_gpus():
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def warn_if_slow_policy(policy, what):
    """Prints `slow_policy_warning` to stderr (and returns it) when there is one."""
    text = slow_policy_warning(policy, what)
    if text:
        print(f"WARNING: {text}", file=sys.stderr, flush=True)
    return text

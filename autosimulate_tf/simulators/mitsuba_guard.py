"""The one place that imports Mitsuba 3: picks the variant and survives TensorFlow being imported first.

Importing TensorFlow before drjit segfaults the process: drjit's LLVM backend resolves
libLLVM symbols against the copy of LLVM inside `libtensorflow_framework.so.2`
(DESIGN.md section 4.1). `import_mitsuba` therefore prepares the process before the
first `import drjit`:

- it looks for a system libLLVM with major version >= 17 (LLVM 15 and 16 abort the
  process on the first llvm render, uncatchably), loads it with `RTLD_DEEPBIND` so that
  its symbols bind to itself rather than to TensorFlow's, and points
  `DRJIT_LIBLLVM_PATH` at the same file;
- with no such library it points `DRJIT_LIBLLVM_PATH` at a file that does not exist,
  which disables drjit's LLVM backend (drjit would otherwise find an old libLLVM, or
  TensorFlow's copy) and leaves the `scalar_rgb` variant working after TensorFlow.

Then it imports mitsuba and sets the variant: `llvm_ad_rgb` when a libLLVM >= 17 was
loaded, `scalar_rgb` otherwise (`variant="auto"`), or the one asked for. The preparation
runs once per process (spawned render workers call this too, since they import
TensorFlow before they unpickle a simulator); later calls only switch the variant. In a
`multiprocessing` child (a process-pool render worker) it limits drjit to one thread,
since the pool already runs one worker per core.

Mitsuba's variant is global to a process, so every render holds `RENDER_LOCK` while it
sets the variant and renders (renders of one process never interleave, whatever thread
asks for them).
"""

import ctypes
import glob
import multiprocessing
import os
import re
import sys
import threading

AUTO = "auto"
SCALAR = "scalar_rgb"
LLVM = "llvm_ad_rgb"
VARIANTS = (AUTO, SCALAR, LLVM)  # the choices of SceneSimulator.variant
MIN_LLVM_MAJOR = 17
# Searched in this order; the highest major version wins.
LIBLLVM_PATTERNS = (
    "/usr/lib/llvm-*/lib/libLLVM*.so*",
    "/usr/lib/x86_64-linux-gnu/libLLVM*.so*",
    "/usr/lib/aarch64-linux-gnu/libLLVM*.so*",
    "/usr/lib64/libLLVM*.so*",
    "/usr/local/lib/libLLVM*.so*",
)
# A path that cannot exist: drjit then never loads any libLLVM (the llvm variants are off).
NO_LIBLLVM = "/nonexistent/autosimulate_tf/no-libLLVM.so"
RENDER_LOCK = threading.RLock()

_state = {}  # per process: "mitsuba", "libllvm" (path or None), "llvm_available"


class MitsubaUnavailableError(ImportError):
    """Mitsuba 3 is not installed, or the requested variant cannot run on this machine."""


def llvm_major_version(path: str) -> int | None:
    """The LLVM major version named by a library path (`libLLVM-19.so`, `libLLVM.so.19.1`, `llvm-18/lib/...`)."""
    name = os.path.basename(path)
    for pattern in (r"^libLLVM-(\d+)", r"^libLLVM\.so\.(\d+)"):
        match = re.match(pattern, name)
        if match:
            return int(match.group(1))
    match = re.search(r"/llvm-(\d+)/lib/libLLVM\.so", path)
    return int(match.group(1)) if match else None


def find_libllvm(patterns=None, min_major: int = MIN_LLVM_MAJOR) -> str | None:
    """The path of the newest shared libLLVM with major version >= `min_major` (None: there is none).

    Args:
      patterns: glob patterns searched (None: `LIBLLVM_PATTERNS`).
      min_major: the lowest usable LLVM major version.
    """
    candidates = []
    for pattern in LIBLLVM_PATTERNS if patterns is None else patterns:
        for path in glob.glob(pattern):
            major = llvm_major_version(path)
            # Only monolithic shared libraries (not libLLVMSupport.a and friends).
            if major is not None and major >= min_major and ".so" in os.path.basename(path):
                candidates.append((major, path))
    return max(candidates)[1] if candidates else None


def _prepare_process() -> None:
    """Loads a libLLVM >= 17 with RTLD_DEEPBIND (or disables drjit's LLVM) before drjit is first imported."""
    if "drjit" in sys.modules:
        # Someone imported drjit without this guard: nothing can be changed any more.
        path = os.environ.get("DRJIT_LIBLLVM_PATH")
        _state["libllvm"] = path if path and os.path.exists(path) else None
        return
    path = find_libllvm()
    if path is not None:
        try:
            ctypes.CDLL(path, os.RTLD_NOW | os.RTLD_LOCAL | os.RTLD_DEEPBIND)
        except OSError:
            path = None
    # With NO_LIBLLVM drjit logs once that it cannot load it: expected, the llvm variants are off.
    os.environ["DRJIT_LIBLLVM_PATH"] = path or NO_LIBLLVM
    _state["libllvm"] = path


def _import() -> object:
    """`import mitsuba` once per process, after `_prepare_process`."""
    with RENDER_LOCK:  # two threads' first renders must not both prepare the process
        if "mitsuba" not in _state:
            _prepare_process()
            try:
                import drjit
                import mitsuba
            except ImportError as error:
                raise MitsubaUnavailableError(
                    "SceneSimulator renders with Mitsuba 3, which is not installed: pip install "
                    "'autosimulate_tf[render]' (or pip install 'mitsuba==3.9.1')."
                ) from error
            if multiprocessing.parent_process() is not None:
                # A render worker (process pool): the pool runs one worker per core, so one thread each.
                drjit.set_thread_count(1)
            _state["llvm_available"] = bool(
                LLVM in mitsuba.variants() and _state["libllvm"] and drjit.has_backend(drjit.JitBackend.LLVM)
            )
            _state["mitsuba"] = mitsuba
    return _state["mitsuba"]


def resolve_variant(variant: str = AUTO) -> str:
    """The variant `import_mitsuba(variant)` sets: `auto` becomes llvm_ad_rgb or scalar_rgb, others stay.

    Raises:
      MitsubaUnavailableError: mitsuba is missing, or an llvm variant was asked for without a
        libLLVM >= 17.
      ValueError: for a variant this mitsuba build does not have.
    """
    mitsuba = _import()
    if variant == AUTO:
        return LLVM if _state["llvm_available"] else SCALAR
    if variant not in mitsuba.variants():
        raise ValueError(f"Mitsuba variant {variant!r} is not in this build's {mitsuba.variants()}.")
    if variant.startswith("llvm") and not _state["llvm_available"]:
        raise MitsubaUnavailableError(
            f"Mitsuba variant {variant!r} needs a system libLLVM >= {MIN_LLVM_MAJOR} (e.g. apt-get install -y "
            f"libllvm19); none was found in {LIBLLVM_PATTERNS}. Use variant='auto' or '{SCALAR}'."
        )
    return variant


def import_mitsuba(variant: str = AUTO):
    """Imports Mitsuba 3 safely (after TensorFlow too) and sets its variant.

    Call it, holding `RENDER_LOCK`, right before building or rendering a scene; it is
    cheap after the first call in a process.

    Args:
      variant: `"auto"` (llvm_ad_rgb when a libLLVM >= 17 is found, else scalar_rgb), or
        any variant of the installed build (`"scalar_rgb"`, `"llvm_ad_rgb"`,
        `"scalar_spectral"`, ...).

    Returns:
      `(mitsuba module, the variant set)`.

    Raises:
      MitsubaUnavailableError: mitsuba is missing, or the variant cannot run here.
      ValueError: the build has no such variant.
    """
    mitsuba = _import()
    chosen = resolve_variant(variant)
    if mitsuba.variant() != chosen:
        mitsuba.set_variant(chosen)
    return mitsuba, chosen


def libllvm_path() -> str | None:
    """The libLLVM this process loaded for drjit (None: the llvm variants are off), after `import_mitsuba`."""
    _import()
    return _state["libllvm"]


def mitsuba_available() -> bool:
    """True when `import mitsuba` would succeed (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("mitsuba") is not None and importlib.util.find_spec("drjit") is not None

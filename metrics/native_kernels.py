"""Machine code of the GLCM kernels: compiled once with numba, loaded by any later process without it.

Importing numba and loading even a cached numba function costs a new process about a second
(numba initialises its whole typing and lowering machinery, and imports SciPy to look for a
BLAS), more than scoring an image takes. So the kernels' entry points
(:data:`aesthetic4k_metrics.glcm_kernels.ENTRIES`) are compiled by numba once, their object code is saved
in a cache file, and later processes load that file with llvmlite alone (about 0.1 s) and call
it through ctypes, which releases the GIL for the duration of the call.

The cache file ``<module>.<source hash>.<python tag>.<CPU hash>.kernels`` lives in the user's cache,
``<cache root>/kernels/`` (:func:`aesthetic4k_metrics.cache.cache_root`), never beside the installed
source: an install folder stays exactly what the wheel put there (and may be read-only, or shared).
Installs of other toolkit versions keep their own files there; a file is rewritten when the rest of
its key changes: the numba, llvmlite and Python versions and the CPU (the code is compiled for this
CPU's features). numba's own cache of the fallback functions goes to ``<cache root>/kernels/numba/``
unless ``NUMBA_CACHE_DIR`` names another folder.
Concurrent first runs take a lock so that one builds and the others load.

The object code may only need symbols the process already has (the C library, libm, Python's
C API), or numba runtime functions that the kernels cannot reach: they allocate nothing and
raise nothing, and those functions sit on numba's error and reference-counting paths; they are
bound to stubs that trap. Anything else, or any failure to build or load, falls back to
calling the numba functions directly (numba's own cache then applies), which gives the same
numbers more slowly.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from aesthetic4k_metrics.json_text import parse

_FORMAT = 1
_loaded: dict[str, "Kernels"] = {}
_lock = threading.Lock()


class Kernels:
    """Callables by kernel name, taking numpy arrays and integers in the order of ``ENTRIES``.

    ``source`` says where the code came from: "cache" (a cache file), "built" (compiled by this
    process and saved), "memory" (compiled, no writable cache folder), or "numba" (fallback).
    """

    def __init__(self, functions: dict, source: str, reason: str = ""):
        self._functions = functions
        self.source = source
        self.reason = reason  # why the fallback was taken

    def __getattr__(self, name):
        try:
            return self.__dict__["_functions"][name]
        except KeyError:
            raise AttributeError(name) from None


def load(module, prefer: str = "native") -> Kernels:
    """The kernels of ``module`` (e.g. :mod:`aesthetic4k_metrics.glcm_kernels`), loaded once per process.

    ``prefer="numba"`` skips the machine-code cache (tests compare both paths).
    """
    key = (module.__name__, prefer)
    with _lock:
        if key not in _loaded:
            _loaded[key] = _numba_kernels(module, "requested") if prefer == "numba" else _native_or_numba(module)
        return _loaded[key]


# ---------------------------------------------------------------- where the cache file lives


def _folder() -> Path:
    from aesthetic4k_metrics.cache import cache_root

    return cache_root() / "kernels"


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


def _cache_name(source: Path, llvm) -> str:
    # one file per kernel source, Python and CPU model: installs of other versions, and machines of
    # different kinds sharing one home (a cluster's network home), do not overwrite each other's code
    code = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
    cpu = hashlib.sha256(f"{llvm.get_host_cpu_name()} {llvm.get_host_cpu_features().flatten()}".encode())
    return f"{source.stem}.{code}.{sys.implementation.cache_tag}.{cpu.hexdigest()[:8]}.kernels"


def _numba_version() -> str:
    # read from the installed files: importing numba (or importlib.metadata) is what we avoid here
    from importlib.util import find_spec

    spec = find_spec("numba")
    if spec is None or not spec.origin:
        return "none"
    try:
        return (Path(spec.origin).parent / "_version.py").read_text()
    except OSError:
        return str(os.stat(spec.origin).st_mtime_ns)


def _key(source: Path, llvm) -> str:
    import llvmlite

    parts = [str(_FORMAT), sys.version, _numba_version(), llvmlite.__version__, repr(llvm.llvm_version_info),
             llvm.get_process_triple(), llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()]
    digest = hashlib.sha256(source.read_bytes())
    digest.update("\0".join(parts).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- the cache file


def _read(path: Path, key: str) -> dict | None:
    """The entries of a cache file whose key matches, with their object code; None otherwise.

    The object code's checksum is verified: LLVM aborts the process on a damaged object file.
    """
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, _, body = data.partition(b"\n")
    try:
        info = parse(header.decode("utf-8"))   # ValueError (JSONProblem) on a damaged header
        if info.get("key") != key:
            return None
        entries = info["entries"]
        for entry in entries.values():
            entry["object"] = body[entry["offset"]:entry["offset"] + entry["size"]]
            if hashlib.sha256(entry["object"]).hexdigest() != entry["sha256"]:
                return None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return entries


def _write(path: Path, key: str, entries: dict) -> None:
    body, header = b"", {"key": key, "entries": {}}
    for name, entry in entries.items():
        header["entries"][name] = {k: v for k, v in entry.items() if k != "object"}
        header["entries"][name].update(offset=len(body), size=len(entry["object"]),
                                       sha256=hashlib.sha256(entry["object"]).hexdigest())
        body += entry["object"]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(json.dumps(header).encode() + b"\n" + body)
        os.chmod(tmp, 0o644)  # readable by the other users of a shared install
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- building with numba


def _numba_type(kind: str):
    from numba import types

    if kind == "int":
        return [types.int64]
    dtype, ndim = kind.split(":")
    return [types.CPointer(getattr(types, dtype))] + [types.int64] * int(ndim)


def _jitted(module):
    """``module.jitted()`` with numba's on-disk cache of its functions in the user cache.

    numba keeps it in ``__pycache__`` beside the source unless a cache folder is configured; the
    folder is set only while these functions are decorated (numba fixes it then), so other numba
    code of the process keeps numba's own choice. ``NUMBA_CACHE_DIR`` wins when set.
    """
    from numba.core import config

    if config.CACHE_DIR:
        return module.jitted()
    folder = _folder() / "numba"
    if not _writable(folder):  # numba would fall back to the folder beside the source: no disk cache
        return module.jitted(disk_cache=False)
    config.CACHE_DIR = str(folder)
    try:
        return module.jitted()
    finally:
        config.CACHE_DIR = ""


def _build(module) -> dict:
    """Compile every entry point with numba; returns its object code, symbol and external names."""
    kernels = _jitted(module)
    entries = {}
    for name, (entry_name, _, kinds) in module.ENTRIES.items():
        dispatcher = getattr(kernels, entry_name)
        signature = tuple(t for kind in kinds for t in _numba_type(kind))
        dispatcher.compile(signature)
        compiled = dispatcher.overloads[signature]
        library = compiled.library
        _, _, (object_code, _) = library.serialize_using_object_code()
        externals = sorted(set(re.findall(r"^declare [^@]*@\"?([^\"(]+)\"?\(", library.get_llvm_str(), re.M)))
        entries[name] = {"symbol": compiled.fndesc.llvm_func_name, "kinds": list(kinds), "object": object_code,
                         "externals": [e for e in externals if not e.startswith("llvm.")]}
    return entries


# ---------------------------------------------------------------- loading with llvmlite alone

_RET = ctypes.c_int32


def _trapped(symbol: str) -> bool:
    # numba's runtime (reference counting, GIL and error helpers): unreachable from these kernels
    return symbol.startswith(("numba_", "NRT_"))


def _process_address(symbol: str):
    for library in (ctypes.pythonapi, ctypes.CDLL(None)):  # the interpreter, then every loaded library
        try:
            return ctypes.cast(getattr(library, symbol), ctypes.c_void_p).value
        except AttributeError:
            continue
    return None


class _CannotLoad(Exception):
    pass


def _target_machine(llvm):
    target = llvm.Target.from_triple(llvm.get_process_triple())
    options = dict(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                   codemodel="jitdefault", jit=True)
    if target.name.startswith("x86"):
        options["reloc"] = "static"  # what numba's JIT compiles x86 code with
    return target.create_target_machine(**options)


def _link(llvm, entry: dict, engines: list):
    """Load one entry's object code into its own engine; returns the ctypes function."""
    stubs = []
    for symbol in entry["externals"]:
        if _trapped(symbol):
            stubs.append(f'define void @"{symbol}"() {{\n  call void @llvm.trap()\n  unreachable\n}}')
            continue
        address = _process_address(symbol)
        if address is None:
            raise _CannotLoad(f"symbol {symbol} is not available in this process")
        llvm.add_symbol(symbol, address)
    stubs.append("declare void @llvm.trap()")
    owner = llvm.parse_assembly("\n".join(stubs))
    engine = llvm.create_mcjit_compiler(owner, _target_machine(llvm))
    engine.add_object_file(llvm.ObjectFileRef.from_data(entry["object"]))
    engine.finalize_object()
    engines.append(engine)  # the code lives as long as its engine
    address = engine.get_function_address(entry["symbol"])
    if not address:
        raise _CannotLoad(f"entry point {entry['symbol']} not found in the object code")
    arg_types = []
    for kind in entry["kinds"]:  # an array is its data pointer, then one 64-bit integer per dimension
        ndim = 0 if kind == "int" else int(kind.split(":")[1])
        arg_types += [ctypes.c_int64] if kind == "int" else [ctypes.c_void_p] + [ctypes.c_int64] * ndim
    return ctypes.CFUNCTYPE(_RET, ctypes.c_void_p, ctypes.c_void_p, *arg_types)(address)


def _caller(function, kinds: list):
    """Checks each array (dtype, dimensions, C order) before handing its pointer to machine code."""
    expected = [None if kind == "int" else (np.dtype(kind.split(":")[0]), int(kind.split(":")[1])) for kind in kinds]

    def call(*args):
        flat = []
        for arg, want in zip(args, expected, strict=True):
            if want is None:
                flat.append(int(arg))
                continue
            if arg.dtype != want[0] or arg.ndim != want[1] or not arg.flags.c_contiguous:
                raise TypeError(f"kernel argument must be a C-ordered {want[0]} array with {want[1]} dimensions, "
                                f"got {arg.dtype} {arg.shape}")
            flat.append(arg.ctypes.data)
            flat.extend(arg.shape)
        result, error = ctypes.c_int64(), ctypes.c_void_p()
        if function(ctypes.byref(result), ctypes.byref(error), *flat) != 0:
            raise RuntimeError("compiled GLCM kernel reported an error")

    return call


def _native(module, entries: dict, source: str) -> Kernels:
    import llvmlite.binding as llvm

    engines = []
    functions = {name: _caller(_link(llvm, entry, engines), entry["kinds"]) for name, entry in entries.items()}
    kernels = Kernels(functions, source)
    kernels._engines = engines
    module.self_test(kernels)
    return kernels


def _native_or_numba(module) -> Kernels:
    try:
        import llvmlite.binding as llvm

        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        source = Path(module.__file__)
        key = _key(source, llvm)
        folder = _folder()
        path = folder / _cache_name(source, llvm)
        entries = _read(path, key)
        if entries is not None:
            return _native(module, entries, "cache")
        if not _writable(folder):
            return _native(module, _build(module), "memory")
        with _file_lock(path.with_suffix(".lock")):
            entries = _read(path, key)  # another process may have built it meanwhile
            if entries is not None:
                return _native(module, entries, "cache")
            entries = _build(module)
            kernels = _native(module, entries, "built")  # only working code is saved
            _write(path, key, entries)
            return kernels
    except Exception as exc:  # any failure: the numba functions give the same numbers
        return _numba_kernels(module, f"{type(exc).__name__}: {exc}")


class _file_lock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass  # no locking here: at worst two processes both build
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _numba_kernels(module, reason: str) -> Kernels:
    kernels = _jitted(module)
    functions = {name: getattr(kernels, array_kernel) for name, (_, array_kernel, _) in module.ENTRIES.items()}
    return Kernels(functions, "numba", reason)

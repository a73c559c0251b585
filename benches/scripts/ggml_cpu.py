"""ggml's CPU backend from llama-cpp-python's shared libraries, through ctypes: the
peer for matvec (a `ggml_mul_mat` graph of a quantized weight and one f32 vector,
which quantizes the vector to the type's activation type as ggml inference does)
and for the CPU type traits (`from_float`). Shared by bench_kernels.py and
bench_ternary.py."""
import ctypes
import statistics
import time
from pathlib import Path


def median_time(runs, f):
    f()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


class CpuTraits(ctypes.Structure):
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


class GgmlCpu:
    """The loaded libraries, with the few functions the benchmarks call."""

    def __init__(self):
        import llama_cpp

        lib_dir = Path(llama_cpp.__file__).parent / "lib"
        find = lambda stem: (sorted(lib_dir.glob(stem + ".*")) or sorted(lib_dir.rglob(stem + ".*")))[0]
        base = ctypes.CDLL(str(find("libggml-base")), mode=ctypes.RTLD_GLOBAL)
        cpu = ctypes.CDLL(str(find("libggml-cpu")), mode=ctypes.RTLD_GLOBAL)
        vp = ctypes.c_void_p
        base.ggml_init.restype = vp
        base.ggml_init.argtypes = [InitParams]
        base.ggml_free.argtypes = [vp]
        base.ggml_new_tensor_2d.restype = vp
        base.ggml_new_tensor_2d.argtypes = [vp, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        base.ggml_mul_mat.restype = vp
        base.ggml_mul_mat.argtypes = [vp, vp, vp]
        base.ggml_new_graph.restype = vp
        base.ggml_new_graph.argtypes = [vp]
        base.ggml_build_forward_expand.argtypes = [vp, vp]
        base.ggml_get_data.restype = vp
        base.ggml_get_data.argtypes = [vp]
        base.ggml_row_size.restype = ctypes.c_size_t
        base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        cpu.ggml_graph_compute_with_ctx.argtypes = [vp, vp, ctypes.c_int]
        cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(CpuTraits)
        cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
        if hasattr(cpu, "ggml_cpu_init"):
            cpu.ggml_cpu_init()
        self.base, self.cpu = base, cpu
        self.version = getattr(llama_cpp, "__version__", "?")
        self.avx2 = bool(cpu.ggml_cpu_has_avx2()) if hasattr(cpu, "ggml_cpu_has_avx2") else None

    def row_size(self, qid, cols):
        return self.base.ggml_row_size(qid, cols)

    def from_float(self, qid):
        """The type's CPU `from_float(x, y, n)`."""
        vp = ctypes.c_void_p
        return ctypes.CFUNCTYPE(None, vp, vp, ctypes.c_int64)(self.cpu.ggml_get_type_traits_cpu(qid).contents.from_float)

    def matvec_time(self, qid, rows, cols, weights, act, runs, threads=1):
        """Median seconds of `ggml_mul_mat` of a `rows × cols` weight of type `qid`
        (`weights`: its bytes, a numpy uint8 array) by the f32 vector `act`."""
        base = self.base
        nbytes = self.row_size(qid, cols) * rows
        assert weights.nbytes == nbytes, (weights.nbytes, nbytes)
        ctx = base.ggml_init(InitParams(nbytes + 64 * 1024 * 1024, None, False))
        try:
            a = base.ggml_new_tensor_2d(ctx, qid, cols, rows)
            b = base.ggml_new_tensor_2d(ctx, 0, cols, 1)
            ctypes.memmove(base.ggml_get_data(a), weights.ctypes.data, nbytes)
            ctypes.memmove(base.ggml_get_data(b), act.ctypes.data, act.nbytes)
            y = base.ggml_mul_mat(ctx, a, b)
            gf = base.ggml_new_graph(ctx)
            base.ggml_build_forward_expand(gf, y)
            return median_time(runs, lambda: self.cpu.ggml_graph_compute_with_ctx(ctx, gf, threads))
        finally:
            base.ggml_free(ctx)

/* portable.h -- the one place where the CPU and GPU targets differ.
 *
 * Every kernel family (kernels/<family>.h) is written once against these macros and compiled
 * twice: by the C compiler for the CPU library (cffi, OpenMP) and by NVRTC/nvcc for the GPU
 * (CuPy RawModule). Families are included once per floating-point type, with REAL set to the
 * type and AN(name) appending the type suffix (_f32 or _f64), so every function a family
 * defines must have its name wrapped in AN(...).
 *
 *   AN_INLINE        qualifier of per-element bodies and helpers ("static inline" on the CPU,
 *                    "__device__ inline" on the GPU).
 *   AN_KERNEL(name, count, (params...), call)
 *                    defines the exported kernel AN(name)(params...) that evaluates `call` for
 *                    every index `i` in [0, count). On the CPU it is a `for` loop parallelised
 *                    with OpenMP (serial below AN_OMP_MIN iterations, where starting threads
 *                    costs more than the work; guided scheduling, so that a thread the OS
 *                    preempts does not hold the others at the barrier with its fixed share of
 *                    the work); on the GPU an `extern "C" __global__` function
 *                    with a grid-stride loop, so any launch configuration covers `count`.
 *   AN_KERNEL_SIZED(name, count, work, (params...), call)
 *                    the same for work items that each do more than one element's work (a
 *                    row, a plane): `work` is the total number of elements, and the CPU loop
 *                    runs in parallel when it reaches AN_OMP_MIN (counting items would keep
 *                    a few large items, such as 1024 planes, on one thread).
 *   AN_CPU_FUNCTION(name, (params...))
 *                    opens the definition of int AN(name)(params...), a CPU-only driver that
 *                    organises its own OpenMP loop (and may call the BLAS); it returns 0 on
 *                    success. Families put such drivers under `#ifndef __CUDACC__`.
 *   index_t          the integer type of sizes and indices (64-bit: tensors can exceed 2^31).
 *
 * Helper headers. Code that several families share (fast_exp, the softmax work items) lives in a
 * helper header, kernels/_<name>.h: the leading underscore is what tells it from a family
 * (autonn/kernel_sources.py skips such names), so the translation unit does not include it;
 * every family that uses it does, with #include "_<name>.h" (found beside the family, or through
 * -I kernels/, on both targets; no other #include is allowed in a family: NVRTC has no C
 * library). A family thus never relies on another family having been included before it. A
 * helper's AN() functions are REAL-typed, so it must be defined once per REAL pass even when two
 * families of that pass include it; the translation unit defines AN_REAL_IS_DOUBLE (0 in the
 * float pass, 1 in the double pass) next to REAL, and a helper guards itself per pass:
 *
 *   #if (AN_REAL_IS_DOUBLE && !defined(AN_NAME_F64)) \
 *       || (!AN_REAL_IS_DOUBLE && !defined(AN_NAME_F32))
 *   #if AN_REAL_IS_DOUBLE
 *   #define AN_NAME_F64
 *   #else
 *   #define AN_NAME_F32
 *   #endif
 *   ... AN_INLINE functions, macros under #ifndef ...
 *   #endif
 *
 * (with an #error first where AN_REAL_IS_DOUBLE is undefined). What does not depend on REAL
 * (a struct typedef such as an_conv_geometry, integer constants) sits under an ordinary include
 * guard instead, defined once per translation unit. Helpers hold AN_INLINE code, macros and such
 * types only: an AN_KERNEL or AN_CPU_FUNCTION in a helper would not be declared to cffi.
 */
#ifndef AUTONN_PORTABLE_H
#define AUTONN_PORTABLE_H

#if defined(__CUDACC__)
/* ---------------------------------------------------------------- GPU (nvcc or NVRTC) */
#if defined(__CUDACC_RTC__)
/* NVRTC ships no C library headers; these are the only types the kernels need. */
typedef long long int64_t;
#else
#include <stdint.h>
#endif
#define AN_INLINE static __device__ __forceinline__
#define AN_KERNEL_SIZED(name, count, work, params, call)                              \
    extern "C" __global__ void AN(name) params {                                      \
        const index_t an_count = (count);                                             \
        for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < an_count; \
             i += (index_t)blockDim.x * gridDim.x) {                                  \
            call;                                                                     \
        }                                                                             \
    }

#else
/* ---------------------------------------------------------------- CPU (C99 + OpenMP) */
#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#define AN_INLINE static inline
#ifndef AN_OMP_MIN
#define AN_OMP_MIN 2048
#endif
#define AN_KERNEL_SIZED(name, count, work, params, call)                              \
    void AN(name) params {                                                            \
        const index_t an_count = (count);                                             \
        const index_t an_work = (work);                                               \
        _Pragma("omp parallel for schedule(guided) if(an_work >= AN_OMP_MIN)")        \
        for (index_t i = 0; i < an_count; ++i) {                                      \
            call;                                                                     \
        }                                                                             \
    }
#define AN_CPU_FUNCTION(name, params) int AN(name) params
#endif

/* Work items of one element each: the loop is parallel from AN_OMP_MIN items on. */
#define AN_KERNEL(name, count, params, call) AN_KERNEL_SIZED(name, count, count, params, call)

typedef int64_t index_t;

/* Token pasting through two levels so that AN_SUFFIX is expanded before it is pasted. */
#define AN_PASTE2(a, b) a##b
#define AN_PASTE(a, b) AN_PASTE2(a, b)
#define AN(name) AN_PASTE(name, AN_SUFFIX)

/* AN_RESTRICT: this pointer does not alias the others (lets the compiler vectorise). */
#if defined(__CUDACC__)
#define AN_RESTRICT __restrict__
#else
#define AN_RESTRICT restrict
#endif

/* AN_SIMD_REDUCTION(op, var): the next loop is a vectorisable reduction of `var` with `op`
 * (+, max, min); OpenMP's simd construct licenses the reordering that C's rules forbid. Nothing
 * on the GPU, where a loop runs in one thread anyway. */
#define AN_STRINGIFY(text) #text
#if defined(__CUDACC__)
#define AN_SIMD_REDUCTION(op, var)
#else
#define AN_SIMD_REDUCTION(op, var) _Pragma(AN_STRINGIFY(omp simd reduction(op:var)))
#endif

/* End of work item `item`'s chunk of `chunk` elements out of `n`. */
#define AN_CHUNK_END(item, n, chunk) (((item) + 1) * (chunk) < (n) ? ((item) + 1) * (chunk) : (n))

/* Floor division and modulo for possibly negative numerators (C rounds toward zero). */
#define AN_FLOORDIV(a, b) (((a) >= 0) ? (a) / (b) : -((-(a) + (b) - 1) / (b)))

#endif /* AUTONN_PORTABLE_H */

"""Bit-level helpers for the kernels: reinterpreting casts and a correctly rounded fma."""

from llvmlite import ir
from numba import types
from numba.extending import intrinsic


def _bitcast(src, dst):
    """An intrinsic ``f(x)`` returning the ``dst`` value whose bits are those of the ``src``
    value ``x`` (its low bits, when ``src`` is wider)."""
    @intrinsic
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            value = args[0]
            if src.bitwidth > dst.bitwidth:
                value = builder.trunc(value, ir.IntType(dst.bitwidth))
            return builder.bitcast(value, context.get_value_type(dst))

        return dst(src), codegen

    return cast


f32_as_u32 = _bitcast(types.float32, types.uint32)
u32_as_f32 = _bitcast(types.uint32, types.float32)
i64_as_f64 = _bitcast(types.int64, types.float64)
f64_as_i64 = _bitcast(types.float64, types.int64)
#: The float32 whose bits are the low 32 bits of an int64 (Numba widens int32 arithmetic).
low32_as_f32 = _bitcast(types.int64, types.float32)


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (llvm.fma): the same bits in vector and scalar code."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen

"""Arrays read by address in compiled code (numba), and views that numba does not count.

The compiled kernels take tables that live elsewhere (a model's reference tables, a group's
rings) as rows of numbers naming them by address: ``address`` gives it, ``pointer`` turns it back
into a pointer for ``numba.carray``. A ``carray`` view owns nothing, so numba keeps no reference
count for it - which also makes ``unowned`` worth having on its own: numba increments and
decrements an array's count (two atomic operations) around every call of a helper that takes
it, even one LLVM inlines, and in a loop over a message's bytes those pairs were a quarter of
the scanner's time (``plain_scan``).

>>> @njit
... def total(array):
...     view = unowned(array)
...     return sum([view[i] for i in range(view.size)])
>>> total(np.arange(4.0))
6.0
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def pointer(typingctx, address):
    """The address (an int64) as a pointer, for ``carray``."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.int64), codegen


def address(array: np.ndarray) -> int:
    """Where a C-contiguous array's data starts (checked: the kernel reads it as one)."""
    if not array.flags.c_contiguous:
        raise ValueError("a table read by address must be C-contiguous")
    return array.__array_interface__["data"][0]


@njit(cache=True, nogil=True, inline="always")
def unowned(array):
    """A 1-d C-contiguous ``array`` as a view numba keeps no count for: valid while ``array``
    lives (in the caller's frame: for the call)."""
    return carray(pointer(np.int64(array.ctypes.data)), array.size, array.dtype)


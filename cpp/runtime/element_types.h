// Element (d)types of the runtime's tensors: the one table of their names and
// host sizes. The binding exposes it as _core.DTYPES, from which the Python
// layer derives its dtype tables; numpy names equal these names for every
// type with a host size.
#pragma once

#include <cstddef>

#include "runtime/litert_api.h"

namespace edgepipe {

// clang-format off
// X(litert enumerator, name, bytes per element; 0 = no plain host form)
#define EDGEPIPE_ELEMENT_TYPES(X)        \
  X(kElementNone, "none", 0)             \
  X(kElementFloat32, "float32", 4)       \
  X(kElementInt32, "int32", 4)           \
  X(kElementUInt8, "uint8", 1)           \
  X(kElementInt64, "int64", 8)           \
  X(kElementString, "string", 0)         \
  X(kElementBool, "bool", 1)             \
  X(kElementInt16, "int16", 2)           \
  X(kElementComplex64, "complex64", 8)   \
  X(kElementInt8, "int8", 1)             \
  X(kElementFloat16, "float16", 2)       \
  X(kElementFloat64, "float64", 8)       \
  X(kElementComplex128, "complex128", 16) \
  X(kElementUInt64, "uint64", 8)         \
  X(kElementResource, "resource", 0)     \
  X(kElementVariant, "variant", 0)       \
  X(kElementUInt32, "uint32", 4)         \
  X(kElementUInt16, "uint16", 2)         \
  X(kElementInt4, "int4", 0)             \
  X(kElementBFloat16, "bfloat16", 0)     \
  X(kElementInt2, "int2", 0)             \
  X(kElementUInt4, "uint4", 0)
// clang-format on

// Bytes of one element, 0 for types without a plain host representation.
size_t ElementSize(int element_type);
// The type's name ("float32"), "unknown" for a code outside the table.
const char* ElementTypeName(int element_type);

}  // namespace edgepipe

// TFLite schema facts the verifier needs that are not op codes (those come
// from the generated model/op_names.inc): tensor types and their widths,
// union bounds. Field slot numbers used by the walk follow
// tflite/converter/schema/schema.fbs: slot N lives at vtable offset 4 + 2 * N.
//
// Ownership: constants only.
#pragma once

#include <cstdint>

namespace edgepipe {
namespace verify {

inline constexpr int kTypeInt32 = 2;
inline constexpr int kTypeInt64 = 4;
inline constexpr int kMaxTensorType = 22;  // FLOAT8_E5M2
inline constexpr int kTypeString = 5;
inline constexpr int kTypeResource = 13;
inline constexpr int kTypeVariant = 14;
inline constexpr int kMaxQuantizationDetails = 3;  // MultiAxisQuantization
inline constexpr int kMaxSparseIndexVector = 3;    // Uint8Vector

// Bits per element of each TensorType; 0 where the byte size is not a
// function of the shape (STRING, RESOURCE, VARIANT).
inline constexpr uint32_t kTypeBits[kMaxTensorType + 1] = {
    32,   // FLOAT32
    16,   // FLOAT16
    32,   // INT32
    8,    // UINT8
    64,   // INT64
    0,    // STRING
    8,    // BOOL
    16,   // INT16
    64,   // COMPLEX64
    8,    // INT8
    64,   // FLOAT64
    128,  // COMPLEX128
    64,   // UINT64
    0,    // RESOURCE
    0,    // VARIANT
    32,   // UINT32
    16,   // UINT16
    4,    // INT4, packed two per byte
    16,   // BFLOAT16
    2,    // INT2, packed four per byte
    4,    // UINT4, packed two per byte
    8,    // FLOAT8_E4M3FN
    8,    // FLOAT8_E5M2
};

}  // namespace verify
}  // namespace edgepipe

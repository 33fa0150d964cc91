// edgepipe's own declarations of the part of the LiteRT C API it uses.
//
// edgepipe never links against libLiteRt.so: it dlopen()s the library at run
// time (see runtime.h), so the same binary works with the copy inside the
// ai_edge_litert wheel, an Android app's jniLibs or a system install. These
// declarations follow the LiteRT 2.x headers (litert/c/*.h); the layouts
// marked with static_assert are the ABI the runtime checks too.
#pragma once

#include <cstddef>
#include <cstdint>

namespace edgepipe::litert {

using Status = int;  // LiteRtStatus
constexpr Status kOk = 0;
constexpr Status kErrorInvalidArgument = 1;
constexpr Status kErrorRuntimeFailure = 3;
constexpr Status kErrorUnsupported = 5;
constexpr Status kErrorNotFound = 6;
constexpr Status kErrorInvalidFlatbuffer = 501;
constexpr Status kErrorCompilation = 504;
const char* StatusName(Status status);

// Opaque handles.
struct EnvironmentT;
struct ModelT;
struct SignatureT;
struct TensorT;
struct SubgraphT;
struct OpT;
struct OptionsT;
struct OpaqueOptionsT;
struct CompiledModelT;
struct TensorBufferT;
struct AcceleratorT;
struct DelegateWrapperT;
struct ProfilerT;
using Environment = EnvironmentT*;
using Model = ModelT*;
using Signature = SignatureT*;
using Tensor = TensorT*;
using Subgraph = SubgraphT*;
using Op = OpT*;
using Options = OptionsT*;
using OpaqueOptions = OpaqueOptionsT*;
using CompiledModel = CompiledModelT*;
using TensorBuffer = TensorBufferT*;
using Accelerator = AcceleratorT*;
using DelegateWrapper = DelegateWrapperT*;
using Profiler = ProfilerT*;
using ParamIndex = size_t;
using HwAcceleratorSet = int;

enum HwAccelerator : int { kHwNone = 0, kHwCpu = 1, kHwGpu = 2, kHwNpu = 4 };

enum ElementType : int {
  kElementNone = 0,
  kElementFloat32 = 1,
  kElementInt32 = 2,
  kElementUInt8 = 3,
  kElementInt64 = 4,
  kElementString = 5,
  kElementBool = 6,
  kElementInt16 = 7,
  kElementComplex64 = 8,
  kElementInt8 = 9,
  kElementFloat16 = 10,
  kElementFloat64 = 11,
  kElementComplex128 = 12,
  kElementUInt64 = 13,
  kElementResource = 14,
  kElementVariant = 15,
  kElementUInt32 = 16,
  kElementUInt16 = 17,
  kElementInt4 = 18,
  kElementBFloat16 = 19,
  kElementInt2 = 20,
  kElementUInt4 = 21,
};

constexpr int kMaxRank = 8;  // LITERT_TENSOR_MAX_RANK

struct Layout {
  unsigned int rank : 7;
  unsigned int has_strides : 1;
  int32_t dimensions[kMaxRank];
  uint32_t strides[kMaxRank];
};
static_assert(sizeof(Layout) == 68, "LiteRtLayout ABI");

struct RankedTensorType {
  ElementType element_type;
  Layout layout;
};
static_assert(sizeof(RankedTensorType) == 72, "LiteRtRankedTensorType ABI");

enum TensorTypeId : int { kRankedTensorType = 0, kUnrankedTensorType = 1 };

enum QuantizationTypeId : int {
  kQuantizationNone = 0,
  kQuantizationPerTensor = 1,
  kQuantizationPerChannel = 2,
  kQuantizationBlockWise = 3,
};

struct QuantizationPerTensor {
  float scale;
  int64_t zero_point;
};
static_assert(sizeof(QuantizationPerTensor) == 16, "ABI");

struct QuantizationPerChannel {
  int32_t quantized_dimension;
  uint64_t num_channels;
  float* scales;
  int64_t* zero_points;
};
static_assert(sizeof(QuantizationPerChannel) == 32, "ABI");

enum AnyType : int {
  kAnyNone = 0,
  kAnyBool = 1,
  kAnyInt = 2,
  kAnyReal = 3,
  kAnyString = 8,
  kAnyVoidPtr = 9
};
struct Any {
  AnyType type;
  union {
    bool bool_value;
    int64_t int_value;
    double real_value;
    const char* str_value;
    const void* ptr_value;
  };
};
static_assert(sizeof(Any) == 16, "LiteRtAny ABI");

enum EnvOptionTag : int {
  kEnvCompilerPluginLibraryDir = 0,
  kEnvDispatchLibraryDir = 1,
  kEnvCompilerCacheDir = 18,
  kEnvRuntimeLibraryDir = 22,
  kEnvAutoRegisterAccelerators = 24,
  kEnvMinLoggerSeverity = 25,
};
struct EnvOption {
  EnvOptionTag tag;
  Any value;
};
static_assert(sizeof(EnvOption) == 24, "LiteRtEnvOption ABI");

// LiteRtLogSeverity (kept in sync with tflite::LogSeverity upstream).
enum LogSeverity : int {
  kLogDebug = -1,
  kLogVerbose = 0,
  kLogInfo = 1,
  kLogWarning = 2,
  kLogError = 3,
  kLogSilent = 4
};

using HostMemoryDeallocator = void (*)(void*);

struct ApiVersion {
  int major, minor, patch;
};

// Accelerator registration callbacks (litert_accelerator_registration.h).
// `void*` stands for TfLiteOpaqueDelegate*, which is TfLiteDelegate* inside
// the runtime (see delegate/tfl_abi.h).
using AcceleratorGetNameFn = Status (*)(Accelerator, const char**);
using AcceleratorGetVersionFn = Status (*)(Accelerator, ApiVersion*);
using AcceleratorGetHwFn = Status (*)(Accelerator, HwAcceleratorSet*);
using AcceleratorJitFn = Status (*)(Accelerator, bool*);
using AcceleratorCreateDelegateFn = Status (*)(void* runtime_context, Environment, Accelerator,
                                               Options, DelegateWrapper*);
using DelegateDeleterFn = void (*)(void*);

// The head of LiteRtAcceleratorDefV1 (litert_accelerator_def.h), of which
// libLiteRt.so exports the CPU instance as LiteRtStaticLinkedAcceleratorCpuDef.
// edgepipe only reads these function pointers, to register the CPU accelerator
// itself *after* the delegate dispatcher (see delegate/plugin.h).
struct AcceleratorDefHead {
  uint64_t abi_header;
  AcceleratorGetNameFn get_name;
  AcceleratorGetVersionFn get_version;
  AcceleratorGetHwFn get_hardware_support;
  AcceleratorJitFn is_jit_responsible;
  AcceleratorCreateDelegateFn create_delegate;
};
static_assert(sizeof(AcceleratorDefHead) == 48, "LiteRtAcceleratorDefV1 head ABI");

// Every function edgepipe resolves. X(name, return type, parameter list).
// Required ones must exist or loading fails with a RuntimeLoadError naming
// the symbol; optional ones are nullptr when the runtime lacks them.
#define EDGEPIPE_LITERT_REQUIRED(X)                                                           \
  X(LiteRtCreateEnvironment, Status, (int, const EnvOption*, Environment*))                   \
  X(LiteRtDestroyEnvironment, void, (Environment))                                            \
  X(LiteRtCreateModelFromBuffer, Status, (Environment, const void*, size_t, Model*))          \
  X(LiteRtDestroyModel, void, (Model))                                                        \
  X(LiteRtGetNumModelSignatures, Status, (Model, ParamIndex*))                                \
  X(LiteRtGetModelSignature, Status, (Model, ParamIndex, Signature*))                         \
  X(LiteRtGetSignatureKey, Status, (Signature, const char**))                                 \
  X(LiteRtGetNumSignatureInputs, Status, (Signature, ParamIndex*))                            \
  X(LiteRtGetNumSignatureOutputs, Status, (Signature, ParamIndex*))                           \
  X(LiteRtGetSignatureInputName, Status, (Signature, ParamIndex, const char**))               \
  X(LiteRtGetSignatureOutputName, Status, (Signature, ParamIndex, const char**))              \
  X(LiteRtGetSignatureInputTensorByIndex, Status, (Signature, ParamIndex, Tensor*))           \
  X(LiteRtGetSignatureOutputTensorByIndex, Status, (Signature, ParamIndex, Tensor*))          \
  X(LiteRtGetTensorTypeId, Status, (Tensor, TensorTypeId*))                                   \
  X(LiteRtGetRankedTensorType, Status, (Tensor, RankedTensorType*))                           \
  X(LiteRtGetQuantizationTypeId, Status, (Tensor, QuantizationTypeId*))                       \
  X(LiteRtGetPerTensorQuantization, Status, (Tensor, QuantizationPerTensor*))                 \
  X(LiteRtGetPerChannelQuantization, Status, (Tensor, QuantizationPerChannel*))               \
  X(LiteRtCreateOptions, Status, (Options*))                                                  \
  X(LiteRtDestroyOptions, void, (Options))                                                    \
  X(LiteRtSetOptionsHardwareAccelerators, Status, (Options, HwAcceleratorSet))                \
  X(LiteRtCreateOpaqueOptions, Status, (const char*, void*, void (*)(void*), OpaqueOptions*)) \
  X(LiteRtDestroyOpaqueOptions, void, (OpaqueOptions))                                        \
  X(LiteRtAddOpaqueOptions, Status, (Options, OpaqueOptions))                                 \
  X(LiteRtCreateCompiledModel, Status, (Environment, Model, Options, CompiledModel*))         \
  X(LiteRtDestroyCompiledModel, void, (CompiledModel))                                        \
  X(LiteRtRunCompiledModel, Status,                                                           \
    (CompiledModel, ParamIndex, size_t, TensorBuffer*, size_t, TensorBuffer*))                \
  X(LiteRtCreateTensorBufferFromHostMemory, Status,                                           \
    (const RankedTensorType*, void*, size_t, HostMemoryDeallocator, TensorBuffer*))           \
  X(LiteRtDestroyTensorBuffer, void, (TensorBuffer))

#define EDGEPIPE_LITERT_OPTIONAL(X)                                                        \
  X(LiteRtGetTensorIndex, Status, (Tensor, uint32_t*))                                     \
  X(LiteRtCompiledModelIsFullyAccelerated, Status, (CompiledModel, bool*))                 \
  X(LiteRtCompiledModelIsNonCpuFullyAccelerated, Status, (CompiledModel, bool*))           \
  X(LiteRtCompiledModelResizeInputTensor, Status,                                          \
    (CompiledModel, ParamIndex, ParamIndex, const int*, size_t))                           \
  X(LiteRtCompiledModelResizeInputTensorNonStrict, Status,                                 \
    (CompiledModel, ParamIndex, ParamIndex, const int*, size_t))                           \
  X(LiteRtGetCompiledModelInputTensorLayout, Status,                                       \
    (CompiledModel, ParamIndex, ParamIndex, Layout*))                                      \
  X(LiteRtGetCompiledModelOutputTensorLayouts, Status,                                     \
    (CompiledModel, ParamIndex, size_t, Layout*, bool))                                    \
  X(LiteRtGetNumAccelerators, Status, (Environment, ParamIndex*))                          \
  X(LiteRtGetAccelerator, Status, (Environment, ParamIndex, Accelerator*))                 \
  X(LiteRtGetAcceleratorName, Status, (Accelerator, const char**))                         \
  X(LiteRtGetAcceleratorHardwareSupport, Status, (Accelerator, HwAcceleratorSet*))         \
  X(LiteRtCompiledModelGetErrorMessages, Status, (CompiledModel, char**))                  \
  X(LiteRtCompiledModelClearErrors, Status, (CompiledModel))                               \
  X(LiteRtCreateAccelerator, Status, (Accelerator*))                                       \
  X(LiteRtDestroyAccelerator, Status, (Accelerator))                                       \
  X(LiteRtRegisterAccelerator, Status, (Environment, Accelerator, void*, void (*)(void*))) \
  X(LiteRtSetAcceleratorGetName, Status, (Accelerator, AcceleratorGetNameFn))              \
  X(LiteRtSetAcceleratorGetVersion, Status, (Accelerator, AcceleratorGetVersionFn))        \
  X(LiteRtSetAcceleratorGetHardwareSupport, Status, (Accelerator, AcceleratorGetHwFn))     \
  X(LiteRtSetDelegateFunction, Status, (Accelerator, AcceleratorCreateDelegateFn))         \
  X(LiteRtSetIsAcceleratorDelegateResponsibleForJitCompilation, Status,                    \
    (Accelerator, AcceleratorJitFn))                                                       \
  X(LiteRtWrapDelegate, Status, (void*, DelegateDeleterFn, DelegateWrapper*))              \
  X(LiteRtGetOpaqueOptions, Status, (Options, OpaqueOptions*))                             \
  X(LiteRtFindOpaqueOptionsData, Status, (OpaqueOptions, const char*, void**))             \
  /* Profiler (litert_profiler.h); present only in compiled models whose                   \
     runtime_options_string says enable_profiling = true. The event array                  \
     is void*: its element layout differs between releases, see                            \
     profile/profiler.h. */                                                                \
  X(LiteRtCompiledModelGetProfiler, Status, (CompiledModel, Profiler*))                    \
  X(LiteRtStartProfiler, Status, (Profiler))                                               \
  X(LiteRtStopProfiler, Status, (Profiler))                                                \
  X(LiteRtResetProfiler, Status, (Profiler))                                               \
  X(LiteRtGetNumProfilerEvents, Status, (Profiler, int*))                                  \
  X(LiteRtGetProfilerEvents, Status, (Profiler, int, void*))                               \
  X(LiteRtGetProfileSummary, Status, (Profiler, CompiledModel, const char**))

}  // namespace edgepipe::litert

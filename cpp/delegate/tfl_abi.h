/* edgepipe's own declarations of the part of the classic TFLite delegate ABI
 * (TfLiteDelegate, TfLiteContext, TfLiteNode, TfLiteRegistration, ...) that
 * edgepipe's relay delegate and its test plugins touch. The layout is the one
 * of the runtime's tflite/core/c/common.h in LiteRT 2.3.0 (64-bit,
 * non-TF_LITE_STATIC_MEMORY); the offsets in the comments were checked against
 * that header once, and the static_asserts at the end keep them from drifting.
 * Plain C so the test delegate plugins (tests/plugins) can include it too. */
#ifndef EDGEPIPE_TFL_ABI_H_
#define EDGEPIPE_TFL_ABI_H_
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef int ep_status; /* TfLiteStatus: 0 ok, 1 error, 2 delegate error */
enum { EP_TFL_OK = 0, EP_TFL_ERROR = 1, EP_TFL_DELEGATE_ERROR = 2 };
enum { EP_TFL_FLOAT32 = 1 };                         /* TfLiteType */
enum { EP_TFL_BUILTIN_DELEGATE = 51 };               /* kTfLiteBuiltinDelegate */
enum { EP_DELEGATE_FLAG_ALLOW_DYNAMIC_TENSORS = 1 }; /* kTfLiteDelegateFlagsAllowDynamicTensors */
enum { EP_OP_ADD = 0, EP_OP_MUL = 18, EP_OP_SUB = 41 }; /* BuiltinOperator */

typedef struct ep_int_array {
  int size;
  int data[];
} ep_int_array;

typedef struct ep_quant {
  int type;
  void* params;
} ep_quant;
typedef struct ep_tensor {
  int type;           /* 0  */
  void* data;         /* 8  TfLitePtrUnion */
  ep_int_array* dims; /* 16 */
  float scale;
  int32_t zero_point;                 /* 24 TfLiteQuantizationParams */
  int allocation_type;                /* 32 */
  size_t bytes;                       /* 40 */
  const void* allocation;             /* 48 */
  const char* name;                   /* 56 */
  struct ep_delegate* delegate;       /* 64 */
  int buffer_handle;                  /* 72 */
  bool data_is_stale;                 /* 76 */
  bool is_variable;                   /* 77 */
  ep_quant quantization;              /* 80 */
  void* sparsity;                     /* 96 */
  const ep_int_array* dims_signature; /* 104 */
} ep_tensor;                          /* 112 */

typedef struct ep_node {
  ep_int_array* inputs;            /* 0 */
  ep_int_array* outputs;           /* 8 */
  ep_int_array* intermediates;     /* 16 */
  ep_int_array* temporaries;       /* 24 */
  void* user_data;                 /* 32 */
  void* builtin_data;              /* 40 */
  const void* custom_initial_data; /* 48 */
  int custom_initial_data_size;    /* 56 */
  struct ep_delegate* delegate;    /* 64 */
  bool might_have_side_effect;     /* 72 */
} ep_node;                         /* 80 */

struct ep_context;
typedef struct ep_registration {
  void* (*init)(struct ep_context*, const char* buffer, size_t length);      /* 0 */
  void (*free)(struct ep_context*, void* buffer);                            /* 8 */
  ep_status (*prepare)(struct ep_context*, ep_node*);                        /* 16 */
  ep_status (*invoke)(struct ep_context*, ep_node*);                         /* 24 */
  const char* (*profiling_string)(const struct ep_context*, const ep_node*); /* 32 */
  int32_t builtin_code;                                                      /* 40 */
  const char* custom_name;                                                   /* 48 */
  int version;                                                               /* 56 */
  void* registration_external;                                               /* 64 */
  void* (*async_kernel)(struct ep_context*, ep_node*);                       /* 72 */
  uint64_t inplace_operator;                                                 /* 80 */
} ep_registration;                                                           /* 88 */

typedef struct ep_delegate_params {
  struct ep_delegate* delegate;
  ep_int_array* nodes_to_replace;
  ep_int_array* input_tensors;
  ep_int_array* output_tensors;
} ep_delegate_params;

typedef struct ep_context {
  size_t tensors_size;                                                      /* 0 */
  ep_status (*GetExecutionPlan)(struct ep_context*, ep_int_array**);        /* 8 */
  ep_tensor* tensors;                                                       /* 16 */
  void* impl_;                                                              /* 24 */
  ep_status (*ResizeTensor)(struct ep_context*, ep_tensor*, ep_int_array*); /* 32 */
  void (*ReportError)(struct ep_context*, const char* msg, ...);            /* 40 */
  ep_status (*AddTensors)(struct ep_context*, int, int*);                   /* 48 */
  ep_status (*GetNodeAndRegistration)(struct ep_context*, int, ep_node**,
                                      ep_registration**); /* 56 */
  ep_status (*ReplaceNodeSubsetsWithDelegateKernels)(struct ep_context*, ep_registration,
                                                     const ep_int_array*,
                                                     struct ep_delegate*); /* 64 */
  int recommended_num_threads;                                             /* 72 */
  void* GetExternalContext;                                                /* 80 */
  void* SetExternalContext;                                                /* 88 */
  bool allow_fp32_relax_to_fp16;                                           /* 96 */
  void* profiler;                                                          /* 104 */
  void* AllocatePersistentBuffer;                                          /* 112 */
  void* AllocateBufferForEval;                                             /* 120 */
  void* RequestScratchBufferInArena;                                       /* 128 */
  void* GetScratchBuffer;                                                  /* 136 */
  void* ResizeTensorExplicit;                                              /* 144 */
  void* PreviewDelegatePartitioning;                                       /* 152 */
  ep_tensor* (*GetTensor)(const struct ep_context*, int);                  /* 160 */
  /* further members not used */
} ep_context;

typedef struct ep_delegate {
  void* data_;                                                                          /* 0 */
  ep_status (*Prepare)(ep_context*, struct ep_delegate*);                               /* 8 */
  ep_status (*CopyFromBufferHandle)(ep_context*, struct ep_delegate*, int, ep_tensor*); /* 16 */
  ep_status (*CopyToBufferHandle)(ep_context*, struct ep_delegate*, int, ep_tensor*);   /* 24 */
  void (*FreeBufferHandle)(ep_context*, struct ep_delegate*, int*);                     /* 32 */
  int64_t flags;                                                                        /* 40 */
  void* opaque_delegate_builder;                                                        /* 48 */
} ep_delegate;                                                                          /* 56 */

/* External delegate plugin entry points (external_delegate_interface.h). */
typedef ep_delegate* (*ep_plugin_create_fn)(const char* const* keys, const char* const* values,
                                            size_t n, void (*report_error)(const char*));
typedef void (*ep_plugin_destroy_fn)(ep_delegate*);
#ifdef __cplusplus
}
static_assert(sizeof(ep_tensor) == 112, "TfLiteTensor ABI");
static_assert(sizeof(ep_node) == 80, "TfLiteNode ABI");
static_assert(sizeof(ep_registration) == 88, "TfLiteRegistration ABI");
static_assert(sizeof(ep_delegate) == 56, "TfLiteDelegate ABI");
static_assert(offsetof(ep_context, ReportError) == 40, "TfLiteContext ABI");
static_assert(offsetof(ep_context, GetNodeAndRegistration) == 56, "TfLiteContext ABI");
static_assert(offsetof(ep_context, GetTensor) == 160, "TfLiteContext ABI");
#endif
#endif

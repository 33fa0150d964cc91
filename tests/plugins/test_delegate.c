/* Test external-delegate plugin (the tflite_plugin_create_delegate /
 * tflite_plugin_destroy_delegate ABI of libedgetpu.so.1 and TFLite's
 * external delegate). It really executes: it claims float32 ADD and MUL
 * nodes of equal-shape inputs without fused activation and computes them
 * itself, so tests can compare its outputs with the CPU's.
 *
 * The test fixture compiles this one file four times (cc -shared -fPIC):
 *   -DEP_FAIL_AT=0  good         -DEP_FAIL_AT=1  fails in create (returns NULL)
 *   -DEP_FAIL_AT=2  fails in Prepare              -DEP_FAIL_AT=3  fails in Invoke
 * Options (key=value): fail_at=none|create|prepare|invoke|crash overrides the
 * build (crash: abort() in create),
 * fail_after=N lets the first N invokes succeed (to fail on later runs, not
 * on the first one), ops=add,mul chooses what to claim, verbose=1 prints the
 * execution plan, gate=PATH makes every invoke wait while the file PATH
 * exists (so a test can hold a pool's worker inside a run, deterministically,
 * and let it go by deleting the file), for at most 60 s, so that a failed
 * test that never opens its gate ends instead of hanging the suite. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "delegate/tfl_abi.h"  /* edgepipe's own ABI declarations */

#ifndef EP_FAIL_AT
#define EP_FAIL_AT 0
#endif

#define EXPORT __attribute__((visibility("default")))
enum { FAIL_NONE, FAIL_CREATE, FAIL_PREPARE, FAIL_INVOKE, FAIL_CRASH };
typedef struct { int fail; long fail_after; int claim_add, claim_mul; int verbose; char gate[1024]; } state_t;

/* counters readable by the test harness */
static long g_prepare_calls, g_kernel_init_calls, g_kernel_invoke_calls, g_destroy_calls;
EXPORT void ep_test_counters(long* prep, long* init, long* inv, long* destroy) {
  *prep = g_prepare_calls; *init = g_kernel_init_calls; *inv = g_kernel_invoke_calls; *destroy = g_destroy_calls;
}

typedef struct { int op; int in0, in1, out; } kop_t;
typedef struct { int n; int fail; long fail_after; long invokes; const char* gate; kop_t ops[]; } kernel_t;

static void* k_init(ep_context* ctx, const char* buffer, size_t length) {
  (void)length;
  const ep_delegate_params* p = (const ep_delegate_params*)buffer;
  const state_t* st = (const state_t*)p->delegate->data_;
  kernel_t* k = calloc(1, sizeof(kernel_t) + p->nodes_to_replace->size * sizeof(kop_t));
  k->n = p->nodes_to_replace->size; k->fail = st->fail == FAIL_INVOKE; k->fail_after = st->fail_after;
  k->gate = st->gate[0] ? st->gate : NULL;
  for (int i = 0; i < k->n; i++) {
    ep_node* node; ep_registration* reg;
    ctx->GetNodeAndRegistration(ctx, p->nodes_to_replace->data[i], &node, &reg);
    k->ops[i].op = reg->builtin_code;
    k->ops[i].in0 = node->inputs->data[0]; k->ops[i].in1 = node->inputs->data[1];
    k->ops[i].out = node->outputs->data[0];
  }
  __atomic_add_fetch(&g_kernel_init_calls, 1, __ATOMIC_RELAXED);
  return k;
}
static void k_free(ep_context* ctx, void* buf) { (void)ctx; free(buf); }
static ep_status k_prepare(ep_context* ctx, ep_node* node) { (void)ctx; (void)node; return EP_TFL_OK; }
static ep_status k_invoke(ep_context* ctx, ep_node* node) {
  kernel_t* k = (kernel_t*)node->user_data;
  __atomic_add_fetch(&g_kernel_invoke_calls, 1, __ATOMIC_RELAXED);
  for (int waited = 0; k->gate && waited < 300000 && access(k->gate, F_OK) == 0; waited++) usleep(200);
  if (k->fail && k->invokes++ >= k->fail_after) { ctx->ReportError(ctx, "edgepipe-test-delegate: injected invoke failure"); return EP_TFL_ERROR; }
  for (int i = 0; i < k->n; i++) {
    const ep_tensor* a = &ctx->tensors[k->ops[i].in0];
    const ep_tensor* b = &ctx->tensors[k->ops[i].in1];
    ep_tensor* o = &ctx->tensors[k->ops[i].out];
    const float* x = a->data; const float* y = b->data; float* z = o->data;
    size_t n = o->bytes / sizeof(float);
    if (k->ops[i].op == EP_OP_ADD) for (size_t j = 0; j < n; j++) z[j] = x[j] + y[j];
    else for (size_t j = 0; j < n; j++) z[j] = x[j] * y[j];
  }
  return EP_TFL_OK;
}

static int same_shape(const ep_int_array* a, const ep_int_array* b) {
  if (a->size != b->size) return 0;
  for (int i = 0; i < a->size; i++) if (a->data[i] != b->data[i]) return 0;
  return 1;
}

static ep_status d_prepare(ep_context* ctx, ep_delegate* d) {
  state_t* st = (state_t*)d->data_;
  __atomic_add_fetch(&g_prepare_calls, 1, __ATOMIC_RELAXED);
  if (st->fail == FAIL_PREPARE) {
    ctx->ReportError(ctx, "edgepipe-test-delegate: injected prepare failure");
    return EP_TFL_ERROR;
  }
  ep_int_array* plan;
  if (ctx->GetExecutionPlan(ctx, &plan) != EP_TFL_OK) return EP_TFL_ERROR;
  ep_int_array* claim = malloc(sizeof(int) * (1 + plan->size));
  claim->size = 0;
  for (int i = 0; i < plan->size; i++) {
    int idx = plan->data[i]; ep_node* node; ep_registration* reg;
    if (ctx->GetNodeAndRegistration(ctx, idx, &node, &reg) != EP_TFL_OK) continue;
    int ok = 0;
    if ((reg->builtin_code == EP_OP_ADD && st->claim_add) || (reg->builtin_code == EP_OP_MUL && st->claim_mul)) {
      const ep_tensor* a = &ctx->tensors[node->inputs->data[0]];
      const ep_tensor* b = &ctx->tensors[node->inputs->data[1]];
      const ep_tensor* o = &ctx->tensors[node->outputs->data[0]];
      int act = node->builtin_data ? *(const int*)node->builtin_data : 0; /* Add/MulParams.activation @0 */
      ok = node->inputs->size == 2 && a->type == EP_TFL_FLOAT32 && b->type == EP_TFL_FLOAT32 &&
           o->type == EP_TFL_FLOAT32 && same_shape(a->dims, b->dims) && act == 0;
    }
    if (st->verbose)
      fprintf(stderr, "[test-delegate] plan node %d builtin_code=%d custom=%s delegate=%p -> %s\n", idx,
              reg->builtin_code, reg->custom_name ? reg->custom_name : "-", (void*)node->delegate,
              ok ? "CLAIMED" : "left for CPU");
    if (ok) claim->data[claim->size++] = idx;
  }
  ep_status s = EP_TFL_OK;
  if (claim->size > 0) {
    ep_registration r; memset(&r, 0, sizeof r);
    r.init = k_init; r.free = k_free; r.prepare = k_prepare; r.invoke = k_invoke;
    r.builtin_code = 51; /* kTfLiteBuiltinDelegate */
    r.custom_name = "EdgepipeTestDelegate"; r.version = 1;
    s = ctx->ReplaceNodeSubsetsWithDelegateKernels(ctx, r, claim, d);
  }
  free(claim);
  return s;
}

EXPORT ep_delegate* tflite_plugin_create_delegate(const char* const* keys, const char* const* values,
                                                  size_t n, void (*report_error)(const char*)) {
  state_t* st = calloc(1, sizeof *st);
  st->claim_add = st->claim_mul = 1;
  st->fail = EP_FAIL_AT;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(keys[i], "fail_at")) {
      if (!strcmp(values[i], "none")) st->fail = FAIL_NONE;
      else if (!strcmp(values[i], "create")) st->fail = FAIL_CREATE;
      else if (!strcmp(values[i], "prepare")) st->fail = FAIL_PREPARE;
      else if (!strcmp(values[i], "invoke")) st->fail = FAIL_INVOKE;
      else if (!strcmp(values[i], "crash")) st->fail = FAIL_CRASH;
    } else if (!strcmp(keys[i], "ops")) {
      st->claim_add = strstr(values[i], "add") != NULL; st->claim_mul = strstr(values[i], "mul") != NULL;
    } else if (!strcmp(keys[i], "fail_after")) st->fail_after = atol(values[i]);
    else if (!strcmp(keys[i], "verbose")) st->verbose = atoi(values[i]);
    else if (!strcmp(keys[i], "gate")) snprintf(st->gate, sizeof st->gate, "%s", values[i]);
  }
  /* Kills the process the way a broken vendor driver does, to test that
   * edgepipe's crash marks keep it from happening again on the next start. */
  if (st->fail == FAIL_CRASH) abort();
  if (st->fail == FAIL_CREATE) {
    if (report_error) report_error("edgepipe-test-delegate: injected create failure (no device)");
    free(st); return NULL;
  }
  ep_delegate* d = calloc(1, sizeof *d);
  d->data_ = st; d->Prepare = d_prepare; d->flags = 0;
  return d;
}
EXPORT void tflite_plugin_destroy_delegate(ep_delegate* d) {
  __atomic_add_fetch(&g_destroy_calls, 1, __ATOMIC_RELAXED);
  if (!d) return;
  free(d->data_); free(d);
}

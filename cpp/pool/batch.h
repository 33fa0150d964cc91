// Dynamic batching of a pool (PoolOptions::max_batch > 1).
//
// Which models batch: every input's and output's dimension 0 is 1 or -1 (the
// rest static), and the graph carries the batch through: compiled with
// dimension 0 of every input set to N, every output's dimension 0 is N and
// the rest as at batch 1 (CompileOptions::batch checks it; a RESHAPE with a
// fixed 1 is the usual reason it does not). The pool checks this at
// construction (and at a swap) by compiling batch instances, and throws
// kModel naming the tensor otherwise. Requests keep the batch-1 contract.
//
// Grouping: a pool serves one signature with fixed shapes, so any queued
// requests can share a batch. A worker takes up to max_batch of them, oldest
// first (RequestQueue::PopBatch), waiting up to max_batch_delay for a
// partial batch to fill (0: takes what is queued).
//
// Partial batches: each worker holds instances for batch sizes 2, 4, 8, ...
// up to max_batch (BatchSizes); k requests run on the smallest one that
// holds k, the extra rows zero-filled and their outputs discarded; a single
// request runs on the worker's batch-1 instance as without batching. So a
// batch costs at most twice its rows, and no instance is ever resized while
// serving.
#pragma once

#include <cstddef>
#include <vector>

namespace edgepipe {

// Most requests one batch may hold: beyond this a typo, not a workload, is
// the likely cause (each size is a compiled instance per worker).
constexpr size_t kMaxBatch = 1024;

// The batch sizes a worker compiles for `max_batch`: powers of two from 2,
// then max_batch itself. Empty for max_batch <= 1.
std::vector<size_t> BatchSizes(size_t max_batch);

// Index in `sizes` (ascending) of the smallest size >= k; sizes.size() if none.
size_t BatchSizeFor(const std::vector<size_t>& sizes, size_t k);

}  // namespace edgepipe

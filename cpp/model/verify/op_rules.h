// What each builtin's kernel expects of its operands: input and output
// arity, which inputs may be the -1 hole, the element types of every
// position, and the builtin-options table it reads. Checked for every
// operator before LiteRT sees the model.
//
// Why: LiteRT's kernels index their inputs and read their options by
// position without checking them (an operator code swapped from CONV_2D to
// SPLIT made LiteRtCreateCompiledModel read a float filter as the split
// axis and crash). The table (op_rules.cc) covers the builtins used by the
// fixture and generated models plus the common ones LiteRT 2.3.0 registers;
// for builtins outside it only the generic checks apply (-1 only where the
// schema has optional inputs, no -1 outputs) — a documented gap, see
// docs/fuzzing.md.
//
// Ownership: the table is static; CheckOpRules borrows the OpView.
#pragma once

#include "model/verify/shapes.h"

namespace edgepipe {
namespace verify {

// True when `code` has an entry in the rules table.
bool HasOpRule(int code);

// Whether input `position` of builtin `code` may be -1 ("no tensor").
bool OptionalInputAllowed(int code, size_t position);

// Throws through op.Fail() on a wrong arity, a hole where none is allowed,
// a tensor of a type the kernel does not take, or options of another op.
void CheckOpRules(const OpView& op);

}  // namespace verify
}  // namespace edgepipe

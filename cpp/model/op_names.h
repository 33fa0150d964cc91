// TFLite builtin operator codes and builtin-options layouts, from the one
// generated table op_names.inc (scripts/gen_op_names.py reads the schema that
// ships with LiteRT). Everything that names an op code — the verifier, the
// summaries, the binding's op-name table — derives from here.
//
// Ownership: plain constants and static tables; nothing to free.
#pragma once

#include <cstddef>

namespace edgepipe {

namespace op {
// op::CONV_2D == 3, ... (BuiltinOperator).
enum Code : int {
#define EDGEPIPE_BUILTIN_OP(code, name) name = code,
#include "model/op_names.inc"
};
}  // namespace op

namespace options {
// options::Conv2DOptions == 1, ... (the BuiltinOptions union type).
enum Type : int {
#define EDGEPIPE_BUILTIN_OPTIONS(type, name, layout) name = type,
#include "model/op_names.inc"
};
}  // namespace options

// Highest BuiltinOperator code in the table (codes above are unknown).
int MaxBuiltinOpCode();
// "CONV_2D" for 3; nullptr for a code the schema does not define.
const char* BuiltinOpName(int code);

// Field layout of a builtin-options table; see op_names.inc for the letters.
struct OptionsLayout {
  const char* name;
  const char* fields;
};
// Highest union type of BuiltinOptions / BuiltinOptions2.
int MaxBuiltinOptionsType();
int MaxBuiltinOptions2Type();
// Layout of union member `type` (0..Max...Type()); type 0 is "NONE".
const OptionsLayout& BuiltinOptionsLayout(int type);
const OptionsLayout& BuiltinOptions2Layout(int type);

}  // namespace edgepipe

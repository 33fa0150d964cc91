#include "model/op_names.h"

#include <array>

namespace edgepipe {
namespace {

constexpr int kCodes[] = {
#define EDGEPIPE_BUILTIN_OP(code, name) code,
#include "model/op_names.inc"
};
constexpr int kMaxOp = kCodes[sizeof(kCodes) / sizeof(kCodes[0]) - 1];

struct NameTable {
  std::array<const char*, kMaxOp + 1> names{};
  NameTable() {
#define EDGEPIPE_BUILTIN_OP(code, name) names[code] = #name;
#include "model/op_names.inc"
  }
};

const OptionsLayout kOptions[] = {
#define EDGEPIPE_BUILTIN_OPTIONS(type, name, layout) {#name, layout},
#include "model/op_names.inc"
};
const OptionsLayout kOptions2[] = {
#define EDGEPIPE_BUILTIN_OPTIONS2(type, name, layout) {#name, layout},
#include "model/op_names.inc"
};

}  // namespace

int MaxBuiltinOpCode() { return kMaxOp; }

const char* BuiltinOpName(int code) {
  static const NameTable table;
  return code >= 0 && code <= kMaxOp ? table.names[code] : nullptr;
}

int MaxBuiltinOptionsType() { return static_cast<int>(sizeof(kOptions) / sizeof(kOptions[0])) - 1; }
int MaxBuiltinOptions2Type() {
  return static_cast<int>(sizeof(kOptions2) / sizeof(kOptions2[0])) - 1;
}
const OptionsLayout& BuiltinOptionsLayout(int type) { return kOptions[type]; }
const OptionsLayout& BuiltinOptions2Layout(int type) { return kOptions2[type]; }

}  // namespace edgepipe

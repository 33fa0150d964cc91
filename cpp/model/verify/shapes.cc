#include "model/verify/shapes.h"

#include <algorithm>

#include "model/verify/schema.h"

namespace edgepipe {
namespace verify {

std::string ShapeStr(const std::vector<int32_t>& shape) { return ShapeStr(Widen(shape)); }

std::string ShapeStr(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> Widen(const std::vector<int32_t>& shape) {
  return std::vector<int64_t>(shape.begin(), shape.end());
}

bool OpView::AllPresent() const {
  for (size_t i = 0; i < inputs.len; ++i) {
    if (InputIndex(i) < 0) return false;
  }
  return Out() != nullptr;
}

void OpView::Fail(const std::string& what) const {
  r->Corrupt(r->Where() + " (" + name + ") " + what);
}

void OpView::ExpectOut(const std::vector<int64_t>& want, const std::string& from) const {
  const TensorInfo* out = Out();
  if (!out || out->dynamic || (out->shape.empty() && !want.empty())) return;
  if (std::equal(want.begin(), want.end(), out->shape.begin(), out->shape.end())) return;
  Fail("maps " + from + " to declared output " + ShapeStr(out->shape) + ", expected " +
       ShapeStr(want));
}

bool OpView::ConstInts(const TensorInfo* t, std::vector<int64_t>* values) const {
  if (!t || !t->constant || t->buffer->pos == 0) return false;
  if (t->type != kTypeInt32 && t->type != kTypeInt64) return false;
  size_t width = t->type == kTypeInt32 ? 4 : 8;
  uint64_t n = t->Elements();
  if (n > 64 || t->buffer->bytes != n * width) return false;
  values->clear();
  for (size_t i = 0; i < n; ++i) {
    size_t p = t->buffer->pos + width * i;
    values->push_back(width == 4 ? r->I32(p) : static_cast<int64_t>(r->U64(p)));
  }
  return true;
}

void CheckStaticShapes(const OpView& op) {
  if (CheckElementwiseShapes(op)) return;
  if (CheckConvShapes(op)) return;
  CheckLayoutShapes(op);
}

}  // namespace verify
}  // namespace edgepipe

#include "runtime/element_types.h"

namespace edgepipe {

size_t ElementSize(int element_type) {
  switch (element_type) {
#define EDGEPIPE_ELEMENT_SIZE(e, name, size) \
  case litert::e: return size;
    EDGEPIPE_ELEMENT_TYPES(EDGEPIPE_ELEMENT_SIZE)
#undef EDGEPIPE_ELEMENT_SIZE
  }
  return 0;
}

const char* ElementTypeName(int element_type) {
  switch (element_type) {
#define EDGEPIPE_ELEMENT_NAME(e, name, size) \
  case litert::e: return name;
    EDGEPIPE_ELEMENT_TYPES(EDGEPIPE_ELEMENT_NAME)
#undef EDGEPIPE_ELEMENT_NAME
  }
  return "unknown";
}

}  // namespace edgepipe

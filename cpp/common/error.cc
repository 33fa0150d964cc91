#include "common/error.h"

namespace edgepipe {

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
#define EDGEPIPE_ERROR_NAME(e, name, cls) \
  case ErrorKind::e: return name;
    EDGEPIPE_ERROR_KINDS(EDGEPIPE_ERROR_NAME)
#undef EDGEPIPE_ERROR_NAME
  }
  // A value outside the enum can only come from a cast bug.
  return "internal";
}

const char* ErrorClassName(ErrorKind kind) {
  switch (kind) {
#define EDGEPIPE_ERROR_CLASS(e, name, cls) \
  case ErrorKind::e: return cls;
    EDGEPIPE_ERROR_KINDS(EDGEPIPE_ERROR_CLASS)
#undef EDGEPIPE_ERROR_CLASS
  }
  return "EdgepipeError";
}

}  // namespace edgepipe

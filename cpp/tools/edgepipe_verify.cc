// edgepipe_verify FILE...: runs the model verifier on each file, so a model
// can be vetted (e.g. in CI or before shipping) without loading the runtime.
// Exit status: 0 if every file verified, 2 otherwise.

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/verifier.h"

namespace {

bool ReadFile(const char* path, std::vector<uint8_t>* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = "cannot open file";
    return false;
  }
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  if (f.bad()) {
    *error = "read failed";
    return false;
  }
  return true;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    if (!out.empty()) out += ",";
    out += s;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE...\n", argv[0]);
    return 2;
  }
  bool all_ok = true;
  for (int i = 1; i < argc; ++i) {
    std::vector<uint8_t> bytes;
    std::string error;
    if (!ReadFile(argv[i], &bytes, &error)) {
      std::fprintf(stderr, "error: %s: %s\n", argv[i], error.c_str());
      all_ok = false;
      continue;
    }
    try {
      edgepipe::ModelSummary s = edgepipe::VerifyTflite(bytes.data(), bytes.size());
      std::printf("OK %s ops=%zu tensors=%zu custom=[%s]\n", argv[i], s.num_operators,
                  s.num_tensors, Join(s.custom_ops).c_str());
    } catch (const edgepipe::Error& e) {
      // Only model errors are expected here; anything else propagates and
      // aborts, which is the right outcome for a bug in the verifier.
      std::fprintf(stderr, "error: %s: %s\n", argv[i], e.what());
      all_ok = false;
    }
  }
  return all_ok ? 0 : 2;
}

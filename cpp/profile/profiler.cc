#include "profile/profiler.h"

#include <time.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "runtime/runtime.h"

namespace edgepipe::profile {
namespace {

// Both layouts: const char* tag; int type (+4 padding); uint64 start;
// uint64 elapsed; two memory records; uint64 metadata1, metadata2; int source
// (+4 padding).
constexpr EventLayout Layout(const char* name, size_t memory_record) {
  return EventLayout{name,
                     /*stride=*/32 + 2 * memory_record + 24,
                     /*tag=*/0,
                     /*type=*/8,
                     /*start_us=*/16,
                     /*elapsed_us=*/24,
                     /*metadata1=*/32 + 2 * memory_record,
                     /*metadata2=*/40 + 2 * memory_record,
                     /*source=*/48 + 2 * memory_record};
}

template <class T>
T Read(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool KnownType(int type) {
  return type >= kDefault && type <= kTelemetryDelegateSettings && (type & (type - 1)) == 0;
}

uint64_t MonotonicMicros() {
  // The runtime's clock (tflite::profiling::time::NowMicros on Linux/Android).
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// An event longer than its whole run cannot be real; 2.3.0 writes one event
// type with 2^32 µs. A margin covers the clock read outside the run.
constexpr double kDurationMarginUs = 1000.0;

}  // namespace

const EventLayout kLayout104 = Layout("litert-2.3-104", 3 * sizeof(uint64_t));
const EventLayout kLayout88 = Layout("header-88", 2 * sizeof(uint64_t));

size_t PinnedStride(const std::string& runtime_version) {
  // An explicit pin ("stride:88"), for runtimes edgepipe has not measured
  // and for tests of the guard.
  if (runtime_version.rfind("stride:", 0) == 0) {
    return static_cast<size_t>(std::strtoul(runtime_version.c_str() + 7, nullptr, 10));
  }
  // Versions measured: the event size the binary writes.
  if (runtime_version.rfind("2.3.", 0) == 0) return kLayout104.stride;
  return 0;
}

const EventLayout* DetectLayout(const uint8_t* bytes, size_t count) {
  if (count == 0) return nullptr;
  size_t highest = 0;
  bool any = false;
  for (size_t i = count * kEventSlack; i-- > 0;) {
    if (bytes[i] != kGuardByte) {
      highest = i;
      any = true;
      break;
    }
  }
  if (!any || sizeof(void*) != 8) return nullptr;
  for (const EventLayout* layout : {&kLayout104, &kLayout88}) {
    // The last event's source field (a small enum: its high bytes are zero,
    // never the guard) ends the data; the padding after it may or may not
    // have been written.
    const size_t lowest_end = (count - 1) * layout->stride + layout->source + 3;
    const size_t highest_end = count * layout->stride - 1;
    if (highest >= lowest_end && highest <= highest_end) return layout;
  }
  return nullptr;
}

std::vector<Event> DecodeEvents(const uint8_t* bytes, size_t count, const EventLayout& layout,
                                uint32_t run) {
  std::vector<Event> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* e = bytes + i * layout.stride;
    Event ev;
    ev.type = Read<int32_t>(e + layout.type);
    const char* tag = Read<const char*>(e + layout.tag);
    ev.source = Read<int32_t>(e + layout.source);
    if (!KnownType(ev.type) || tag == nullptr || ev.source < 0 || ev.source > 2) {
      throw Error(ErrorKind::kRun, "profiler event " + std::to_string(i) + " of " +
                                       std::to_string(count) + " is not plausible with the " +
                                       layout.name + " layout (type " + std::to_string(ev.type) +
                                       ", source " + std::to_string(ev.source) + ")");
    }
    ev.tag.assign(tag, strnlen(tag, 4096));
    ev.start_us = Read<uint64_t>(e + layout.start_us);
    ev.elapsed_us = Read<uint64_t>(e + layout.elapsed_us);
    ev.metadata1 = Read<int64_t>(e + layout.metadata1);
    ev.metadata2 = Read<int64_t>(e + layout.metadata2);
    ev.run = run;
    out.push_back(std::move(ev));
  }
  return out;
}

bool Profiler::Available(const LiteRtApi& api) {
  return api.LiteRtCompiledModelGetProfiler && api.LiteRtStartProfiler && api.LiteRtStopProfiler &&
         api.LiteRtResetProfiler && api.LiteRtGetNumProfilerEvents && api.LiteRtGetProfilerEvents;
}

Profiler::Profiler(std::shared_ptr<Instance> instance, std::string runtime_version)
    : instance_(std::move(instance)),
      api_(&instance_->model()->runtime()->api()),
      runtime_version_(std::move(runtime_version)) {
  if (!Available(*api_)) {
    throw Error(ErrorKind::kRuntime,
                "this LiteRT runtime does not export the profiler API "
                "(LiteRtCompiledModelGetProfiler and friends, LiteRT >= 2.0)");
  }
  if (!instance_->options().profiling) {
    throw Error(ErrorKind::kInternal, "the instance was compiled without profiling");
  }
  Check(api_->LiteRtCompiledModelGetProfiler(instance_->handle(), &profiler_), ErrorKind::kRun,
        "the runtime has no profiler for this compiled model");
  if (profiler_ == nullptr) {
    throw Error(ErrorKind::kRun, "the runtime returned no profiler for this compiled model");
  }
}

Result Profiler::Run(size_t runs, size_t warmup) {
  Result result;
  for (size_t i = 0; i < warmup; ++i) instance_->Run();
  // Each profiled run is its own profiling session (Start clears the buffer),
  // read out right after it, and is paired with an unprofiled run of the
  // same instance timed the same way just before it: the difference is the
  // profiler's own cost (2.3.0 reads the process's memory usage, including a
  // parse of /proc/self/status, at the start and end of every non-operator
  // event). Reading per run also keeps a long profile far from the runtime's
  // buffer limit. The runtime's summarizer accumulates over the runs (it is
  // fed after each one, before the buffer is reset).
  // Like the runtime, the profiler has first-run costs (its owned copies
  // of the tags, the first memory reads), so the warm-up ends with one
  // profiled run whose events are discarded.
  if (warmup > 0) {
    Check(api_->LiteRtStartProfiler(profiler_), ErrorKind::kRun, "cannot start the profiler");
    try {
      instance_->Run();
    } catch (...) {
      api_->LiteRtStopProfiler(profiler_);
      throw;
    }
    Check(api_->LiteRtStopProfiler(profiler_), ErrorKind::kRun, "cannot stop the profiler");
    Check(api_->LiteRtResetProfiler(profiler_), ErrorKind::kRun, "cannot reset the profiler");
  }
  result.layout = "summary-only";
  const size_t pinned = PinnedStride(runtime_version_);
  bool refused = false;
  std::vector<uint8_t> bytes;
  for (size_t k = 0; k < runs; ++k) {
    {
      const auto t0 = std::chrono::steady_clock::now();
      instance_->Run();
      const auto t1 = std::chrono::steady_clock::now();
      result.plain_wall_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    Check(api_->LiteRtStartProfiler(profiler_), ErrorKind::kRun, "cannot start the profiler");
    int n = 0;
    try {
      const uint64_t mono = MonotonicMicros();
      const auto t0 = std::chrono::steady_clock::now();
      instance_->Run();
      const auto t1 = std::chrono::steady_clock::now();
      result.wall_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      result.run_start_us.push_back(mono);
      Check(api_->LiteRtGetNumProfilerEvents(profiler_, &n), ErrorKind::kRun,
            "cannot count profiler events");
    } catch (...) {
      api_->LiteRtStopProfiler(profiler_);
      throw;
    }
    Check(api_->LiteRtStopProfiler(profiler_), ErrorKind::kRun, "cannot stop the profiler");
    const size_t count = n < 0 ? 0 : static_cast<size_t>(n);
    if (count == 0) {
      refused = true;
      result.layout_note = "the runtime recorded no events";
    }
    if (!refused) {
      bytes.assign(count * kEventSlack, kGuardByte);
      Check(api_->LiteRtGetProfilerEvents(profiler_, static_cast<int>(count), bytes.data()),
            ErrorKind::kRun, "cannot read profiler events");
      const EventLayout* layout = DetectLayout(bytes.data(), count);
      if (layout == nullptr) {
        refused = true;
        result.layout_note = "the runtime wrote profiler events of a size edgepipe does not know";
      } else if (pinned != 0 && pinned != layout->stride) {
        refused = true;
        result.layout_note = "LiteRT " + runtime_version_ + " should write " +
                             std::to_string(pinned) + "-byte events, this one wrote " +
                             std::to_string(layout->stride);
      } else {
        try {
          auto events = DecodeEvents(bytes.data(), count, *layout, static_cast<uint32_t>(k));
          const double limit = result.wall_us[k] + kDurationMarginUs;
          for (auto& e : events) {
            if (static_cast<double>(e.elapsed_us) > limit) {
              result.dropped.push_back(std::move(e));
              continue;
            }
            result.events.push_back(std::move(e));
          }
          result.layout = layout->name;
        } catch (const Error& e) {
          refused = true;
          result.layout_note = e.what();
        }
      }
      if (refused) {
        result.events.clear();
        result.dropped.clear();
        result.layout = "summary-only";
      }
    }
    if (api_->LiteRtGetProfileSummary != nullptr) {
      const char* text = nullptr;
      if (api_->LiteRtGetProfileSummary(profiler_, instance_->handle(), &text) == litert::kOk &&
          text != nullptr) {
        result.summary = text;
        std::free(const_cast<char*>(text));  // malloc'ed for the caller
      }
    }
    Check(api_->LiteRtResetProfiler(profiler_), ErrorKind::kRun, "cannot reset the profiler");
  }
  return result;
}

}  // namespace edgepipe::profile

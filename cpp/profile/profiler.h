// Per-op profiling of one compiled instance through LiteRT's own profiler.
//
// The instance must be compiled with CompileOptions::profiling (LiteRT then
// attaches a profiler that the interpreter and the XNNPACK delegate report
// to). A Profiler borrows the instance; it runs it `runs` times, each run
// bracketed by Reset/Start ... Stop, and copies every event out (tags
// included: they point into the runtime's buffer, which the next run reuses)
// together with the wall time of the same run and of an unprofiled run of
// the same instance just before it (the difference is the profiler's cost).
//
// The ABI trap: litert_profiler_event.h declares ProfiledEventData with a
// two-field memory record (88 bytes per event), while the 2.3.0 binary
// writes a three-field record (104 bytes). Reading its output through the
// header's struct runs past the caller's array and corrupts the heap. Here
// the event array is raw bytes: it is allocated with kEventSlack bytes per
// event, filled with a guard pattern, and after the call the number of bytes
// the runtime actually wrote decides the stride; the stride must also match
// the one pinned for the runtime's version (when the caller knows it), and
// every decoded event must be plausible. Anything else and the events path
// is refused (EventLayoutError) and only the summary text is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiled/instance.h"

namespace edgepipe::profile {

// LiteRtProfilerEventType bits.
enum EventType : int {
  kDefault = 1,
  kOperatorInvoke = 2,
  kDelegateOperatorInvoke = 4,
  kDelegateProfiledOperatorInvoke = 8,
  kRuntimeInstrumentation = 16,
  kTelemetry = 32,
  kTelemetrySettings = 64,
  kTelemetryDelegate = 128,
  kTelemetryDelegateSettings = 256,
};

// One element layout of the runtime's event array: byte offsets of the
// fields edgepipe reads, and the element size.
struct EventLayout {
  const char* name;
  size_t stride;
  size_t tag, type, start_us, elapsed_us, metadata1, metadata2, source;
};
// 104 bytes: LiteRtMemoryUsage with three size_t (the 2.3.0 binary).
extern const EventLayout kLayout104;
// 88 bytes: LiteRtMemoryUsage with two size_t (the published header's).
extern const EventLayout kLayout88;

// The stride pinned for a runtime version ("2.3.0"), 0 when not known;
// "stride:N" pins N bytes explicitly.
size_t PinnedStride(const std::string& runtime_version);

// Bytes reserved per event in the array handed to the runtime: twice the
// largest known layout, so an unknown larger layout still stays inside it.
constexpr size_t kEventSlack = 256;
constexpr uint8_t kGuardByte = 0xA5;

// Given an array of `count` events of `kEventSlack` bytes reserved each,
// filled with kGuardByte before the runtime wrote into it, returns the
// layout whose size matches the bytes written, or nullptr when none does.
const EventLayout* DetectLayout(const uint8_t* bytes, size_t count);

struct Event {
  std::string tag;
  int type = 0;           // EventType bit
  uint64_t start_us = 0;  // runtime clock
  uint64_t elapsed_us = 0;
  int64_t metadata1 = 0;  // node index for operator events
  int64_t metadata2 = 0;  // subgraph index for operator events
  int source = 0;         // 0 LiteRT, 1 interpreter, 2 delegate
  uint32_t run = 0;       // which profiled run it belongs to
};

// Decodes `count` events from `bytes` with `layout`; throws
// Error(kRun) naming the first event that is not plausible (unknown type,
// null or unterminated tag). Durations are not judged here.
std::vector<Event> DecodeEvents(const uint8_t* bytes, size_t count, const EventLayout& layout,
                                uint32_t run);

struct Result {
  std::vector<Event> events;           // every run's events, in order
  std::vector<double> wall_us;         // per profiled run, measured around Instance::Run
  std::vector<double> plain_wall_us;   // per run, an unprofiled run just before it, timed the same
  std::vector<uint64_t> run_start_us;  // per run, on the events' clock
  std::string summary;                 // LiteRT's benchmark_model-style text
  std::string layout;                  // kLayout*.name, or "summary-only"
  std::string layout_note;             // why the events path was refused
  std::vector<Event> dropped;          // events with impossible durations (longer than their run)
};

class Profiler {
 public:
  // Throws Error(kUnsupported-ish kRun) when the runtime lacks the profiler
  // API or the instance was compiled without profiling.
  // `runtime_version` pins the expected layout ("" for unknown).
  Profiler(std::shared_ptr<Instance> instance, std::string runtime_version);

  // Runs the instance `warmup` times unprofiled and (when warmup > 0) once
  // profiled with its events discarded, then `runs` times an
  // unprofiled timed run followed by a profiled one (each profiled run its
  // own profiling session, read out after it). Not thread-safe with other
  // users of the instance.
  Result Run(size_t runs, size_t warmup);

  // Whether this runtime has every profiler function.
  static bool Available(const LiteRtApi& api);

 private:
  std::shared_ptr<Instance> instance_;
  const LiteRtApi* api_;
  litert::Profiler profiler_ = nullptr;  // owned by the compiled model
  std::string runtime_version_;
};

}  // namespace edgepipe::profile

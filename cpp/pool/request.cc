#include "pool/request.h"

#include <cmath>
#include <cstring>

#include "pool/spin.h"

namespace edgepipe {

Clock::duration SecondsToDuration(double seconds, const char* what) {
  if (std::isnan(seconds)) {
    throw Error(ErrorKind::kInput, std::string(what) +
                                       " must be a number of seconds (negative or inf: no "
                                       "limit), got nan");
  }
  if (seconds < 0) return Clock::duration::max();
  // Past this, "now + limit" would overflow the clock: treat it as no limit.
  // (About 146 years for a nanosecond steady_clock; 1e10 s, 1e300 s and inf
  // all land here.)
  constexpr double kMaxSeconds = 1e9;
  if (!(seconds < kMaxSeconds)) return Clock::duration::max();
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

Clock::time_point SaturatingAdd(Clock::time_point start, Clock::duration d) {
  if (d == Clock::duration::max() || start.time_since_epoch() > Clock::duration::max() - d) {
    return Clock::time_point::max();
  }
  return start + d;
}

void Request::OwnInputs(const std::vector<size_t>& bytes) {
  if (bytes.size() != inputs.size()) {
    throw Error(ErrorKind::kInput, "OwnInputs: " + std::to_string(bytes.size()) + " sizes for " +
                                       std::to_string(inputs.size()) + " inputs");
  }
  constexpr size_t kAlign = 64;
  size_t total = 0;
  std::vector<size_t> offsets;
  for (size_t b : bytes) {
    offsets.push_back(total);
    total += (b + kAlign - 1) / kAlign * kAlign;
  }
  std::unique_ptr<uint8_t[]> block(new uint8_t[total + kAlign]);
  auto base = reinterpret_cast<uintptr_t>(block.get());
  uint8_t* aligned = block.get() + ((kAlign - base % kAlign) % kAlign);
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (bytes[i] != 0) std::memcpy(aligned + offsets[i], inputs[i], bytes[i]);
    inputs[i] = aligned + offsets[i];
  }
  owned_inputs_ = std::move(block);
}

bool Request::Finish(bool ok, ErrorKind kind, std::string error) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_.load(std::memory_order_acquire) == kDone) return false;
    ok_ = ok;
    error_kind_ = kind;
    error_ = std::move(error);
    state_.store(kDone, std::memory_order_release);
    wake = waiting_;
  }
  if (wake) cv_.notify_all();
  return true;
}

void Request::RecordTimes(double queue_us, double run_us, std::string accelerator) {
  queue_us_ = queue_us;
  run_us_ = run_us;
  accelerator_ = std::move(accelerator);
}

Request::Claim Request::ClaimFor(Clock::time_point available_since) {
  int expected = kQueued;
  // Expired: no worker was free between its enqueue and its deadline. A
  // worker that was already idle when it arrived counts as free at enqueue.
  const Clock::time_point free_at = available_since > enqueued_ ? available_since : enqueued_;
  if (free_at > deadline_) {
    return state_.load(std::memory_order_acquire) == kQueued ? Claim::kExpired : Claim::kAbandoned;
  }
  if (!state_.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) {
    return Claim::kAbandoned;
  }
  return Claim::kStart;
}

void Request::Wait(bool spin) { WaitUntil(Clock::time_point::max(), spin); }

bool Request::WaitUntil(Clock::time_point until, bool spin) {
  auto is_done = [this] { return state_.load(std::memory_order_acquire) == kDone; };
  if (spin && SpinFor(is_done)) {
    // Results were written before state_ (release); taking the lock orders
    // them for this thread the same way the sleeping path does.
    std::lock_guard<std::mutex> lock(mutex_);
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  waiting_ = true;
  struct Unmark {
    bool& flag;
    ~Unmark() { flag = false; }
  } unmark{waiting_};
  if (until == Clock::time_point::max()) {
    cv_.wait(lock, is_done);
    return true;
  }
  return cv_.wait_until(lock, until, is_done);
}

}  // namespace edgepipe

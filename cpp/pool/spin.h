// Brief polling before sleeping on a condition variable. A pool call on a
// small model takes microseconds; a futex sleep and wake-up on each side
// costs as much again, and far more when no core is idle. Polling this
// briefly keeps a busy hand-off off the futex and costs an idle one nothing
// but this window.
#pragma once

#include <chrono>

namespace edgepipe {

constexpr auto kSpinWindow = std::chrono::microseconds(50);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield");
#endif
}

// Polls `ready` for up to kSpinWindow; returns its last value.
template <class Pred>
bool SpinFor(Pred&& ready) {
  const auto until = std::chrono::steady_clock::now() + kSpinWindow;
  do {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      CpuRelax();
    }
  } while (std::chrono::steady_clock::now() < until);
  return ready();
}

}  // namespace edgepipe

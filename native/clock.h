// The loop's clock: CLOCK_MONOTONIC in milliseconds with a nanosecond
// fraction, as a double (exact to well under a microsecond for years of
// uptime). lib/loop.ts reads it through monotonicMs() and Poller.waitUntil.
#pragma once
#include <time.h>

namespace iomux {

inline double NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace iomux

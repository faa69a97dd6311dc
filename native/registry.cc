// The backend registry table and the small helpers every backend shares.
#include <sys/stat.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "backend.h"

namespace iomux {

static const BackendInfo* const kRegistry[] = {
    &kSelectInfo, &kPollInfo, &kEpollInfo, &kKqueueInfo, &kUringInfo,
};

const BackendInfo* const* AllBackends(int* count) {
  *count = sizeof(kRegistry) / sizeof(kRegistry[0]);
  return kRegistry;
}

const BackendInfo* FindBackend(const std::string& name) {
  for (const BackendInfo* info : kRegistry)
    if (name == info->name) return info;
  return nullptr;
}

int64_t MonotonicMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int RemainingMs(int timeout_ms, int64_t deadline) {
  if (timeout_ms <= 0) return timeout_ms < 0 ? -1 : 0;  // no clock read for a poll
  int64_t left = deadline - MonotonicMs();
  return left > 0 ? static_cast<int>(left) : 0;
}

int FileIdentity(int fd, uint64_t* dev, uint64_t* ino) {
  struct stat st;
  if (fstat(fd, &st) != 0) return -errno;
  *dev = static_cast<uint64_t>(st.st_dev);
  *ino = static_cast<uint64_t>(st.st_ino);
  return 0;
}

bool SameFile(int fd, uint64_t dev, uint64_t ino) {
  uint64_t d, i;
  return FileIdentity(fd, &d, &i) == 0 && d == dev && i == ino;
}

}  // namespace iomux

// The one contract every multiplexer backend implements (see shared/DESIGN.md).
// Everything returns 0 / a count, or -errno; nothing here throws.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace iomux {

// Normalised event bits, identical on every backend.
enum Event : uint32_t { kReadable = 1, kWritable = 2, kError = 4, kHangup = 8 };

// Registration modes. LEVEL is 0 (the default); the others are flags.
enum Mode : uint32_t { kLevel = 0, kEdge = 1, kOneshot = 2, kExclusive = 4 };
constexpr uint32_t kAllModes = kEdge | kOneshot | kExclusive;

enum Support : int { kUnsupported = 0, kNative = 1, kEmulated = 2 };

struct ModeSupport {
  Support level, edge, oneshot, exclusive;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual int Add(int fd, uint32_t interest, uint32_t mode) = 0;     // 0 or -errno
  virtual int Modify(int fd, uint32_t interest, uint32_t mode) = 0;  // 0 or -errno
  virtual int Remove(int fd) = 0;                                    // 0 or -errno
  // Writes up to `capacity` (fd, events) pairs into out; returns the number
  // of pairs, or -errno. timeout_ms: -1 forever, 0 poll.
  virtual int Wait(int timeout_ms, int32_t* out, int capacity) = 0;
  virtual int PollableFd() const { return -1; }
  // Name of the syscall behind the last -errno this backend returned.
  const char* failed_syscall() const { return failed_syscall_; }
  // Number of times a wait was interrupted by a signal and resumed.
  uint64_t interrupted() const { return interrupted_; }

 protected:
  int Fail(int neg_errno, const char* syscall) {
    failed_syscall_ = syscall;
    return neg_errno;
  }
  const char* failed_syscall_ = "";
  uint64_t interrupted_ = 0;
};

// The registry: one row per backend, in a fixed order.
struct BackendInfo {
  const char* name;
  ModeSupport modes;
  // Returns a backend or nullptr with *err set to -errno and *reason filled.
  std::unique_ptr<Backend> (*create)(int* err, std::string* reason);
  // Cheap availability check: true, or false with a reason.
  bool (*probe)(std::string* reason);
};

const BackendInfo* FindBackend(const std::string& name);
const BackendInfo* const* AllBackends(int* count);

extern const BackendInfo kSelectInfo;
extern const BackendInfo kPollInfo;
extern const BackendInfo kEpollInfo;
extern const BackendInfo kKqueueInfo;
extern const BackendInfo kUringInfo;

// Shared helpers for the backends.
int64_t MonotonicMs();
// Remaining ms until deadline (never negative); -1 stays -1.
int RemainingMs(int timeout_ms, int64_t deadline);
bool SameFile(int fd, uint64_t dev, uint64_t ino);
int FileIdentity(int fd, uint64_t* dev, uint64_t* ino);  // 0 or -errno

}  // namespace iomux

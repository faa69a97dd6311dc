// Signal notification for loops that own their thread (the self-pipe trick).
//
// A loop blocked in epoll_wait/io_uring_enter never lets Node run its
// process.on('SIGTERM') callbacks: libuv's handler only writes to a pipe that
// Node's own loop reads. signalfd does not help inside Node either: it needs
// the signal blocked in every thread, and Node's threads exist before any
// addon code runs. So signalPipe(signals) installs a handler that first calls
// the handler that was there before (libuv's, so Node still sees the signal
// once its loop turns), then writes the signal number, one byte, into a
// non-blocking pipe whose read end the caller watches in its own loop.
// signalPipeClose(fd) puts the previous handlers back (unless someone
// replaced ours meanwhile) and closes the pipe.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>

#include "exports.h"
#include "js_util.h"

namespace iomux {
namespace {

constexpr int kSlots = 32;
constexpr int kMaxSignal = 64;

struct Slot {
  std::atomic<int> writeFd{-1};
  std::atomic<uint64_t> mask{0};
  int readFd = -1;  // guarded by g_mu
};

Slot g_slots[kSlots];
// The handler that was installed before ours, per signal. Written (under g_mu)
// before our handler is installed and read by the handler only while it is.
struct sigaction g_prev[kMaxSignal + 1];
bool g_installed[kMaxSignal + 1];
std::atomic<int> g_inHandler{0};
std::mutex g_mu;

void OnSignal(int signo, siginfo_t* info, void* ctx) {
  int savedErrno = errno;
  if (signo > 0 && signo <= kMaxSignal) {
    // Chain first: by the time the loop reads our byte, Node's pipe has its own.
    const struct sigaction& p = g_prev[signo];
    if (p.sa_flags & SA_SIGINFO) {
      if (reinterpret_cast<void*>(p.sa_sigaction) != reinterpret_cast<void*>(SIG_DFL) &&
          reinterpret_cast<void*>(p.sa_sigaction) != reinterpret_cast<void*>(SIG_IGN)) {
        p.sa_sigaction(signo, info, ctx);
      }
    } else if (p.sa_handler != SIG_DFL && p.sa_handler != SIG_IGN) {
      p.sa_handler(signo);
    }
    g_inHandler.fetch_add(1);
    const uint64_t bit = uint64_t{1} << (signo - 1);
    const unsigned char b = static_cast<unsigned char>(signo);
    for (Slot& s : g_slots) {
      if (!(s.mask.load() & bit)) continue;
      int fd = s.writeFd.load();
      if (fd < 0) continue;
      ssize_t r;
      do r = write(fd, &b, 1);
      while (r < 0 && errno == EINTR);  // EAGAIN: the pipe is full of unread signals; one more changes nothing
    }
    g_inHandler.fetch_sub(1);
  }
  errno = savedErrno;
}

bool IsOurs(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == OnSignal;
}

uint64_t WantedMask() {
  uint64_t m = 0;
  for (Slot& s : g_slots) m |= s.mask.load();
  return m;
}

// Puts back the previous handler of every signal no slot wants any more
// (only where ours is still the one installed). Caller holds g_mu.
void Uninstall(uint64_t wanted) {
  for (int sig = 1; sig <= kMaxSignal; sig++) {
    if (!g_installed[sig] || (wanted & (uint64_t{1} << (sig - 1)))) continue;
    struct sigaction cur;
    if (sigaction(sig, nullptr, &cur) == 0 && IsOurs(cur)) sigaction(sig, &g_prev[sig], nullptr);
    g_installed[sig] = false;
  }
}

// signalPipe(signals: number[]) -> read fd, or -errno
Napi::Value SignalPipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) return Num(env, -EINVAL);
  Napi::Array list = info[0].As<Napi::Array>();
  uint64_t mask = 0;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    int sig = v.IsNumber() ? v.As<Napi::Number>().Int32Value() : 0;
    if (sig <= 0 || sig > kMaxSignal || sig == SIGKILL || sig == SIGSTOP) return Num(env, -EINVAL);
    mask |= uint64_t{1} << (sig - 1);
  }
  if (mask == 0) return Num(env, -EINVAL);

  std::lock_guard<std::mutex> lock(g_mu);
  Slot* slot = nullptr;
  for (Slot& s : g_slots) {
    if (s.readFd < 0) {
      slot = &s;
      break;
    }
  }
  if (slot == nullptr) return Num(env, -EMFILE);
  int fds[2];
#ifdef __linux__
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return Num(env, -errno);
#else
  if (pipe(fds) < 0) return Num(env, -errno);
  for (int fd : fds) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
#endif
  slot->readFd = fds[0];
  slot->writeFd.store(fds[1]);
  slot->mask.store(mask);

  for (int sig = 1; sig <= kMaxSignal; sig++) {
    if (!(mask & (uint64_t{1} << (sig - 1)))) continue;
    struct sigaction cur;
    if (sigaction(sig, nullptr, &cur) < 0) continue;
    if (IsOurs(cur)) {
      g_installed[sig] = true;
      continue;
    }
    g_prev[sig] = cur;
    struct sigaction sa = {};
    sa.sa_sigaction = OnSignal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    if (sigaction(sig, &sa, nullptr) < 0) {
      int err = errno;
      slot->mask.store(0);
      slot->writeFd.store(-1);
      slot->readFd = -1;
      close(fds[0]);
      close(fds[1]);
      Uninstall(WantedMask());
      return Num(env, -err);
    }
    g_installed[sig] = true;
  }
  return Num(env, fds[0]);
}

// signalPipeClose(readFd) -> 0, or -EBADF when it is not one of ours
Napi::Value SignalPipeClose(const Napi::CallbackInfo& info) {
  int fd = Int(info, 0, -1);
  std::lock_guard<std::mutex> lock(g_mu);
  for (Slot& s : g_slots) {
    if (fd < 0 || s.readFd != fd) continue;
    int w = s.writeFd.exchange(-1);
    s.mask.store(0);
    // A handler that loaded the old write fd must be done with it before the
    // number can be reused by the close below.
    while (g_inHandler.load() > 0) sched_yield();
    close(w);
    close(s.readFd);
    s.readFd = -1;
    Uninstall(WantedMask());
    return Num(info.Env(), 0);
  }
  return Num(info.Env(), -EBADF);
}

}  // namespace

void InitSignalPipe(Napi::Env env, Napi::Object exports) {
  exports.Set("signalPipe", Napi::Function::New<SignalPipe>(env, "signalPipe"));
  exports.Set("signalPipeClose", Napi::Function::New<SignalPipeClose>(env, "signalPipeClose"));
}

}  // namespace iomux

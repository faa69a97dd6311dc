// The native halves of `iomux bench`: C loops that time one operation per
// call (so lib/bench/syscalls.ts can put the same operation driven from JS
// next to them and report the binding tax), and a C reference loop of the
// libevent bench.c dispatch workload over the same Backend objects the
// Poller uses (lib/bench/dispatch.ts runs the TypeScript side).
//
// Every loop is auto-calibrated (see Measure): growing batches estimate the
// rate, then one batch sized to last the target duration is timed, by
// CLOCK_MONOTONIC and by the thread's CPU clock. Nothing here throws for a
// syscall failure: -errno comes back to TypeScript.
#include <fcntl.h>
#include <poll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/syscall.h>
#endif
#if defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
    defined(__NetBSD__) || defined(__DragonFly__) || defined(IOMUX_LIBKQUEUE)
#define IOMUX_BENCH_KQUEUE 1
#include <sys/event.h>
#endif
#ifdef IOMUX_HAVE_URING
#include <liburing.h>
#endif

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "exports.h"
#include "js_util.h"

namespace iomux {
namespace {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// CPU time of the calling thread: unlike the wall clock, it does not count
// the time another process held the CPU, which on a shared machine is most
// of the noise.
int64_t ThreadCpuNs() {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

struct Measurement {
  double ns_per_op = 0;      // wall clock
  int64_t iterations = 0;
  int64_t elapsed_ns = 0;
  double cpu_ns_per_op = 0;  // CPU time of the calling thread, same batch
};

// Times op(iters) (which returns 0 or -errno) in two steps: calibration
// batches grow from 1 iteration until one lasts a tenth of target_ns, then
// the measured batch runs as many iterations as that rate predicts for
// target_ns. A measured batch that takes over 3x its prediction was
// disturbed (preempted on a busy machine) and is run again, twice at most;
// the fastest is kept. The same policy as measure() in lib/bench/measure.ts.
template <class Op>
int Measure(Op&& op, int64_t target_ns, Measurement* m) {
  constexpr int64_t kMaxIters = int64_t{1} << 34;
  int64_t iters = 1, t = 0;
  for (;;) {
    int64_t t0 = NowNs();
    int rc = op(iters);
    t = NowNs() - t0;
    if (rc < 0) return rc;
    if (t * 10 >= target_ns || iters >= kMaxIters) break;
    // Grow at least 2x and at most 100x per step.
    double scale = t > 0 ? 1.2 * static_cast<double>(target_ns) / 10 / static_cast<double>(t) : 100.0;
    if (scale < 2) scale = 2;
    if (scale > 100) scale = 100;
    iters = static_cast<int64_t>(static_cast<double>(iters) * scale);
    if (iters > kMaxIters) iters = kMaxIters;
  }
  double rate = static_cast<double>(t) / static_cast<double>(iters);  // ns per op so far
  int64_t final_iters = rate > 0 ? static_cast<int64_t>(static_cast<double>(target_ns) / rate) : iters;
  if (final_iters < 1) final_iters = 1;
  if (final_iters > kMaxIters) final_iters = kMaxIters;
  double predicted = rate * static_cast<double>(final_iters);
  m->ns_per_op = -1;
  for (int attempt = 0; attempt < 3; attempt++) {
    int64_t c0 = ThreadCpuNs();
    int64_t t0 = NowNs();
    int rc = op(final_iters);
    int64_t tf = NowNs() - t0;
    int64_t cf = ThreadCpuNs() - c0;
    if (rc < 0) return rc;
    double per = static_cast<double>(tf) / static_cast<double>(final_iters);
    if (m->ns_per_op < 0 || per < m->ns_per_op) {
      m->ns_per_op = per;
      m->iterations = final_iters;
      m->elapsed_ns = tf;
      m->cpu_ns_per_op = static_cast<double>(cf) / static_cast<double>(final_iters);
    }
    if (static_cast<double>(tf) <= 3 * predicted) break;
  }
  return 0;
}

long Gettid() {
#if defined(__linux__) && defined(SYS_gettid)
  return syscall(SYS_gettid);
#else
  return getppid();  // a syscall with no work behind it, where gettid does not exist
#endif
}

// --- the per-call operations -------------------------------------------

int LoopGettid(int64_t iters) {
  for (int64_t i = 0; i < iters; i++) {
    if (Gettid() < 0) return -errno;
  }
  return 0;
}

int LoopPoll(const std::vector<int>& fds, int64_t target_ns, Measurement* m) {
  std::vector<pollfd> pfds(fds.size());
  for (size_t i = 0; i < fds.size(); i++) pfds[i] = {fds[i], POLLIN, 0};
  return Measure(
      [&](int64_t iters) {
        for (int64_t i = 0; i < iters; i++) {
          if (poll(pfds.data(), pfds.size(), 0) < 0 && errno != EINTR) return -errno;
        }
        return 0;
      },
      target_ns, m);
}

int LoopSelect(const std::vector<int>& fds, int64_t target_ns, Measurement* m) {
  fd_set tmpl;
  FD_ZERO(&tmpl);
  int maxfd = -1;
  for (int fd : fds) {
    if (fd < 0 || fd >= FD_SETSIZE) return -EINVAL;
    FD_SET(fd, &tmpl);
    if (fd > maxfd) maxfd = fd;
  }
  return Measure(
      [&](int64_t iters) {
        fd_set rd;
        struct timeval tv;
        for (int64_t i = 0; i < iters; i++) {
          // select overwrites its sets, so every call starts from a copy,
          // as every real select loop must.
          memcpy(&rd, &tmpl, sizeof rd);
          tv.tv_sec = 0;
          tv.tv_usec = 0;
          if (select(maxfd + 1, &rd, nullptr, nullptr, &tv) < 0 && errno != EINTR) return -errno;
        }
        return 0;
      },
      target_ns, m);
}

#ifdef __linux__
int LoopEpoll(const std::vector<int>& fds, int64_t target_ns, Measurement* m) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return -errno;
  for (int fd : fds) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
      int rc = -errno;
      close(ep);
      return rc;
    }
  }
  struct epoll_event out[64];
  int rc = Measure(
      [&](int64_t iters) {
        for (int64_t i = 0; i < iters; i++) {
          if (epoll_wait(ep, out, 64, 0) < 0 && errno != EINTR) return -errno;
        }
        return 0;
      },
      target_ns, m);
  close(ep);
  return rc;
}
#endif

#ifdef IOMUX_BENCH_KQUEUE
int LoopKevent(const std::vector<int>& fds, int64_t target_ns, Measurement* m) {
  int kq = kqueue();
  if (kq < 0) return -errno;
  for (int fd : fds) {
    struct kevent ch;
    EV_SET(&ch, fd, EVFILT_READ, EV_ADD, 0, 0, nullptr);
    if (kevent(kq, &ch, 1, nullptr, 0, nullptr) < 0) {
      int rc = -errno;
      close(kq);
      return rc;
    }
  }
  struct kevent out[64];
  int rc = Measure(
      [&](int64_t iters) {
        struct timespec zero = {0, 0};
        for (int64_t i = 0; i < iters; i++) {
          if (kevent(kq, nullptr, 0, out, 64, &zero) < 0 && errno != EINTR) return -errno;
        }
        return 0;
      },
      target_ns, m);
  close(kq);
  return rc;
}
#endif

// Backend::Wait(0) from C: the same object a Poller wraps, without N-API.
int LoopBackend(const std::string& name, const std::vector<int>& fds, int64_t target_ns,
                Measurement* m) {
  const BackendInfo* bi = FindBackend(name);
  if (bi == nullptr) return -EINVAL;
  int err = 0;
  std::string reason;
  std::unique_ptr<Backend> b = bi->create(&err, &reason);
  if (!b) return err < 0 ? err : -ENOSYS;
  for (int fd : fds) {
    int rc = b->Add(fd, kReadable, kLevel);
    if (rc < 0) return rc;
  }
  std::vector<int32_t> out(2 * 1024);
  return Measure(
      [&](int64_t iters) {
        for (int64_t i = 0; i < iters; i++) {
          int rc = b->Wait(0, out.data(), 1024);
          if (rc < 0) return rc;
        }
        return 0;
      },
      target_ns, m);
}

#ifdef IOMUX_HAVE_URING
// One NOP submitted and waited for: the smallest full io_uring round trip.
int UringNopOnce(struct io_uring* ring) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) return -EBUSY;
  io_uring_prep_nop(sqe);
  int rc = io_uring_submit_and_wait(ring, 1);
  if (rc < 0) return rc;
  struct io_uring_cqe* cqe;
  rc = io_uring_peek_cqe(ring, &cqe);
  if (rc < 0) return rc;
  io_uring_cqe_seen(ring, cqe);
  return 0;
}

int LoopUringNop(int64_t target_ns, Measurement* m) {
  struct io_uring ring;
  int rc = io_uring_queue_init(8, &ring, 0);
  if (rc < 0) return rc;
  rc = Measure(
      [&](int64_t iters) {
        for (int64_t i = 0; i < iters; i++) {
          int r = UringNopOnce(&ring);
          if (r < 0) return r;
        }
        return 0;
      },
      target_ns, m);
  io_uring_queue_exit(&ring);
  return rc;
}
#endif

// Blocking 1-byte reads and writes, retried on EINTR.
int ReadByte(int fd, char* c) {
  for (;;) {
    ssize_t n = read(fd, c, 1);
    if (n == 1) return 0;
    if (n == 0) return -EPIPE;
    if (errno != EINTR) return -errno;
  }
}
int WriteByte(int fd, char c) {
  for (;;) {
    ssize_t n = write(fd, &c, 1);
    if (n == 1) return 0;
    if (errno != EINTR) return -errno;
  }
}

// Two threads pass one byte back and forth over two blocking pipes; each
// round trip is two wake-ups (two context switches when both threads share
// a CPU), so ns/op is the round trip / 2. The echo thread stops on a 0 byte.
int LoopPingPong(int64_t target_ns, Measurement* m) {
  int there[2], back[2];
  if (pipe(there) < 0) return -errno;
  if (pipe(back) < 0) {
    int rc = -errno;
    close(there[0]);
    close(there[1]);
    return rc;
  }
  for (int fd : {there[0], there[1], back[0], back[1]}) fcntl(fd, F_SETFD, FD_CLOEXEC);
  std::thread echo([&] {
    char c;
    for (;;) {
      if (ReadByte(there[0], &c) < 0) break;
      if (WriteByte(back[1], c) < 0 || c == 0) break;
    }
  });
  int rc = Measure(
      [&](int64_t iters) {
        char c;
        for (int64_t i = 0; i < iters; i++) {
          int r = WriteByte(there[1], 'x');
          if (r == 0) r = ReadByte(back[0], &c);
          if (r < 0) return r;
        }
        return 0;
      },
      target_ns, m);
  // Stop the echo thread: a 0 byte, or EOF if even that write fails.
  char c;
  if (WriteByte(there[1], 0) == 0) {
    ReadByte(back[0], &c);
  } else {
    close(there[1]);
    there[1] = -1;
  }
  echo.join();
  for (int fd : {there[0], there[1], back[0], back[1]})
    if (fd >= 0) close(fd);
  if (rc == 0) {
    m->ns_per_op /= 2;
    m->cpu_ns_per_op /= 2;
  }
  return rc;
}

// --- N-API: bench.loop(op, fds, targetNs, backend?) ---------------------

bool FdsArg(const Napi::Value& v, std::vector<int>* fds) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() != napi_int32_array) return false;
  Napi::Int32Array a = v.As<Napi::Int32Array>();
  fds->assign(a.Data(), a.Data() + a.ElementLength());
  return true;
}

// Returns [nsPerOp, iterations, elapsedNs, cpuNsPerOp] as a Float64Array,
// or -errno.
Napi::Value Loop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[2].IsNumber()) return Num(env, -EINVAL);
  std::string op = info[0].As<Napi::String>().Utf8Value();
  std::vector<int> fds;
  if (!FdsArg(info[1], &fds)) return Num(env, -EINVAL);
  int64_t target = info[2].As<Napi::Number>().Int64Value();
  if (target <= 0) return Num(env, -EINVAL);
  Measurement m;
  int rc = -ENOSYS;
  if (op == "gettid") {
    rc = Measure(LoopGettid, target, &m);
  } else if (op == "poll") {
    rc = LoopPoll(fds, target, &m);
  } else if (op == "select") {
    rc = LoopSelect(fds, target, &m);
  } else if (op == "epoll") {
#ifdef __linux__
    rc = LoopEpoll(fds, target, &m);
#endif
  } else if (op == "kqueue") {
#ifdef IOMUX_BENCH_KQUEUE
    rc = LoopKevent(fds, target, &m);
#endif
  } else if (op == "uring-nop") {
#ifdef IOMUX_HAVE_URING
    rc = LoopUringNop(target, &m);
#endif
  } else if (op == "pingpong") {
    rc = LoopPingPong(target, &m);
  } else if (op == "backend") {
    if (info.Length() < 4 || !info[3].IsString()) return Num(env, -EINVAL);
    rc = LoopBackend(info[3].As<Napi::String>().Utf8Value(), fds, target, &m);
  } else {
    rc = -EINVAL;
  }
  if (rc < 0) return Num(env, rc);
  Napi::Float64Array out = Napi::Float64Array::New(env, 4);
  out[0] = m.ns_per_op;
  out[1] = static_cast<double>(m.iterations);
  out[2] = static_cast<double>(m.elapsed_ns);
  out[3] = m.cpu_ns_per_op;
  return out;
}

// bench.gettid(): one bare syscall per JS call, the floor of a binding call.
Napi::Value GettidJs(const Napi::CallbackInfo& info) {
  long tid = Gettid();
  return Num(info.Env(), tid < 0 ? -errno : static_cast<double>(tid));
}

// bench.threadCpuNs(): CPU time of the calling thread, ns.
Napi::Value ThreadCpuJs(const Napi::CallbackInfo& info) {
  return Num(info.Env(), static_cast<double>(ThreadCpuNs()));
}

// bench.leanWait(backend, fds, events): { wait(timeoutMs), add(fd),
// remove(fd), close() } over a Backend of its own watching fds (add: READABLE,
// level-triggered), the leanest binding N-API allows: the
// events Int32Array is bound once, and the Backend travels as the
// function's data pointer (no ObjectWrap unwrap, one argument to convert).
// It measures what a Poller.wait could cost, next to what it does cost.
// Returns the object, or -errno.
struct LeanWaiter {
  std::unique_ptr<Backend> backend;
  Napi::Reference<Napi::Int32Array> events;
  int32_t* out = nullptr;
  int capacity = 0;
};
using LeanRef = std::shared_ptr<LeanWaiter>;  // one per function, each finalized

Napi::Value LeanWaitCall(const Napi::CallbackInfo& info) {
  LeanWaiter* w = static_cast<LeanRef*>(info.Data())->get();
  if (!w->backend) return Num(info.Env(), -EBADF);
  int timeout = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  return Num(info.Env(), w->backend->Wait(timeout, w->out, w->capacity));
}

Napi::Value LeanAddCall(const Napi::CallbackInfo& info) {
  LeanWaiter* w = static_cast<LeanRef*>(info.Data())->get();
  if (!w->backend) return Num(info.Env(), -EBADF);
  return Num(info.Env(), w->backend->Add(Int(info, 0, -1), kReadable, kLevel));
}

Napi::Value LeanRemoveCall(const Napi::CallbackInfo& info) {
  LeanWaiter* w = static_cast<LeanRef*>(info.Data())->get();
  if (!w->backend) return Num(info.Env(), -EBADF);
  return Num(info.Env(), w->backend->Remove(Int(info, 0, -1)));
}

Napi::Value LeanCloseCall(const Napi::CallbackInfo& info) {
  LeanWaiter* w = static_cast<LeanRef*>(info.Data())->get();
  w->backend.reset();
  w->events.Reset();
  w->out = nullptr;
  return info.Env().Undefined();
}

Napi::Function LeanFunction(Napi::Env env, const char* name, Napi::Function::Callback cb, const LeanRef& ref) {
  auto* data = new LeanRef(ref);
  Napi::Function fn = Napi::Function::New(env, cb, name, data);
  fn.AddFinalizer([](Napi::Env, LeanRef* d) { delete d; }, data);
  return fn;
}

Napi::Value LeanWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString()) return Num(env, -EINVAL);
  std::vector<int> fds;
  if (!FdsArg(info[1], &fds) || !info[2].IsTypedArray()) return Num(env, -EINVAL);
  if (info[2].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) return Num(env, -EINVAL);
  Napi::Int32Array events = info[2].As<Napi::Int32Array>();
  if (events.ElementLength() < 2) return Num(env, -EINVAL);
  const BackendInfo* bi = FindBackend(info[0].As<Napi::String>().Utf8Value());
  if (bi == nullptr) return Num(env, -EINVAL);
  auto w = std::make_shared<LeanWaiter>();
  int err = 0;
  std::string reason;
  w->backend = bi->create(&err, &reason);
  if (!w->backend) return Num(env, err < 0 ? err : -ENOSYS);
  for (int fd : fds) {
    int rc = w->backend->Add(fd, kReadable, kLevel);
    if (rc < 0) return Num(env, rc);
  }
  w->events = Napi::Persistent(events);
  w->out = events.Data();
  w->capacity = static_cast<int>(events.ElementLength() / 2);
  Napi::Object o = Napi::Object::New(env);
  o.Set("wait", LeanFunction(env, "wait", LeanWaitCall, w));
  o.Set("add", LeanFunction(env, "add", LeanAddCall, w));
  o.Set("remove", LeanFunction(env, "remove", LeanRemoveCall, w));
  o.Set("close", LeanFunction(env, "close", LeanCloseCall, w));
  return o;
}

// bench.noop(): an N-API call that does nothing: the cost of the call itself.
Napi::Value NoopJs(const Napi::CallbackInfo& info) { return Num(info.Env(), 0); }

// bench.UringNop: a small ring whose nop() submits one NOP and waits for it.
class UringNop : public Napi::ObjectWrap<UringNop> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UringNop",
                       {InstanceMethod<&UringNop::Nop>("nop"),
                        InstanceMethod<&UringNop::Close>("close")});
  }
  // Throws an Error carrying `errno` when the ring cannot be set up.
  explicit UringNop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UringNop>(info) {
#ifdef IOMUX_HAVE_URING
    int rc = io_uring_queue_init(8, &ring_, 0);
    if (rc == 0) {
      ready_ = true;
      return;
    }
    Napi::Error e = Napi::Error::New(info.Env(), std::string("io_uring_queue_init: ") + strerror(-rc));
    e.Set("errno", Num(info.Env(), rc));
#else
    Napi::Error e = Napi::Error::New(info.Env(), "compiled out: built without liburing");
    e.Set("errno", Num(info.Env(), -ENOSYS));
#endif
    e.ThrowAsJavaScriptException();
  }
  ~UringNop() override { Release(); }

 private:
  Napi::Value Nop(const Napi::CallbackInfo& info) {
#ifdef IOMUX_HAVE_URING
    if (ready_) return Num(info.Env(), UringNopOnce(&ring_));
#endif
    return Num(info.Env(), -EBADF);
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }
  void Release() {
#ifdef IOMUX_HAVE_URING
    if (ready_) io_uring_queue_exit(&ring_);
    ready_ = false;
#endif
  }
#ifdef IOMUX_HAVE_URING
  struct io_uring ring_;
  bool ready_ = false;
#endif
};

// --- the libevent bench.c workload, as a C reference loop ----------------
//
// new bench.DispatchLoop(backend, fds, active, writes, capacity), then
// run() once per run, then close().
//   fds holds n pairs as [read0, write0, read1, write1, ...] (non-blocking).
//   A run registers every read end (timed apart as setup), drains with one
//   untimed wait(0) pass,
//   writes one byte into `active` pairs spaced n/active apart, then times
//   wait(0) passes until every byte written has been read. Each readable fd
//   gets one "callback": read one byte and, while the write budget lasts,
//   write one byte into the next pair (wrapping at n). Then (untimed) every
//   read end is removed again.
//   run() returns a Float64Array [setupNs, dispatchNs, reads, writes,
//   passes, setupCpuNs, dispatchCpuNs] (wall clock, then thread CPU time),
//   or -errno (-ETIMEDOUT when a run does not converge).
// One run at a time from JS lets lib/bench/dispatch.ts interleave the runs
// of the C loop and of the TypeScript loops, so a busy spell on a shared
// machine hits both alike.
class DispatchLoop : public Napi::ObjectWrap<DispatchLoop> {
 public:
  static constexpr int kFields = 7;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DispatchLoop",
                       {InstanceMethod<&DispatchLoop::Run>("run"),
                        InstanceMethod<&DispatchLoop::Close>("close")});
  }

  // Throws an Error carrying `errno` when the arguments are unusable or the
  // backend cannot be created (lib/bench/dispatch.ts validates first).
  explicit DispatchLoop(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DispatchLoop>(info) {
    Napi::Env env = info.Env();
    int rc = Init(info);
    if (rc < 0) {
      Napi::Error e = Napi::Error::New(env, reason_.empty() ? strerror(-rc) : reason_);
      e.Set("errno", Num(env, rc));
      e.ThrowAsJavaScriptException();
    }
  }

 private:
  int Init(const Napi::CallbackInfo& info) {
    if (info.Length() < 5 || !info[0].IsString()) return -EINVAL;
    if (!FdsArg(info[1], &fds_) || fds_.size() < 2 || fds_.size() % 2 != 0) return -EINVAL;
    n_ = static_cast<int>(fds_.size() / 2);
    active_ = Int(info, 2);
    budget_ = Int(info, 3);
    capacity_ = Int(info, 4);
    if (active_ < 1 || active_ > n_ || budget_ < 0 || capacity_ < 1) return -EINVAL;
    int maxfd = 0;
    for (int fd : fds_) {
      if (fd < 0) return -EBADF;
      if (fd > maxfd) maxfd = fd;
    }
    index_.assign(maxfd + 1, -1);
    for (int i = 0; i < n_; i++) index_[fds_[2 * i]] = i;
    const BackendInfo* bi = FindBackend(info[0].As<Napi::String>().Utf8Value());
    if (bi == nullptr) return -EINVAL;
    int err = 0;
    backend_ = bi->create(&err, &reason_);
    if (!backend_) return err < 0 ? err : -ENOSYS;
    out_.resize(2 * static_cast<size_t>(capacity_));
    return 0;
  }

  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!backend_) return Num(env, -EBADF);
    double s[kFields];
    int rc = RunOnce(s);
    if (rc < 0) return Num(env, rc);
    Napi::Float64Array out = Napi::Float64Array::New(env, kFields);
    memcpy(out.Data(), s, sizeof s);
    return out;
  }

  int RunOnce(double* s) {
    Backend* b = backend_.get();
    const int n = n_;
    int64_t c0 = ThreadCpuNs();
    int64_t t0 = NowNs();
    for (int i = 0; i < n; i++) {
      int rc = b->Add(fds_[2 * i], kReadable, kLevel);
      if (rc < 0) {
        while (--i >= 0) b->Remove(fds_[2 * i]);
        return rc;
      }
    }
    int64_t t1 = NowNs();
    int64_t c1 = ThreadCpuNs();
    int rc = Dispatch(b, s);
    // Untimed: the fds leave this backend between runs, so the loop whose
    // run is interleaved with this one never shares a registered fd.
    for (int i = 0; i < n; i++) b->Remove(fds_[2 * i]);
    if (rc < 0) return rc;
    s[0] = static_cast<double>(t1 - t0);
    s[5] = static_cast<double>(c1 - c0);
    return 0;
  }

  // Everything after setup; fills s[1..4] and s[6].
  int Dispatch(Backend* b, double* s) {
    const int n = n_;
    const int maxfd = static_cast<int>(index_.size()) - 1;
    const int64_t max_passes = 100 * (static_cast<int64_t>(active_) + budget_) + 100000;
    const char e = 'e';
    unsigned char ch;

    int k = b->Wait(0, out_.data(), capacity_);
    if (k < 0) return k;
    for (int j = 0; j < k; j++) (void)!read(out_[2 * j], &ch, 1);

    // A run ends when every byte is read; a backend that lost an event would
    // spin forever, so the passes are bounded.
    int64_t fired = 0, count = 0, writes = budget_, wrote = 0, passes = 0;
    const int space = n / active_;
    for (int i = 0; i < active_; i++, fired++) (void)!write(fds_[2 * (i * space) + 1], &e, 1);

    int64_t c2 = ThreadCpuNs();
    int64_t t2 = NowNs();
    do {
      k = b->Wait(0, out_.data(), capacity_);
      if (k < 0) return k;
      for (int j = 0; j < k; j++) {
        int fd = out_[2 * j];
        int idx = fd <= maxfd ? index_[fd] : -1;
        if (idx < 0) continue;
        if (read(fd, &ch, 1) == 1) count++;
        if (writes > 0) {
          int next = idx + 1;
          if (next >= n) next -= n;
          (void)!write(fds_[2 * next + 1], &e, 1);
          writes--;
          wrote++;
          fired++;
        }
      }
      if (++passes > max_passes) return -ETIMEDOUT;
    } while (count != fired);
    int64_t t3 = NowNs();
    int64_t c3 = ThreadCpuNs();
    s[1] = static_cast<double>(t3 - t2);
    s[6] = static_cast<double>(c3 - c2);
    s[2] = static_cast<double>(count);
    s[3] = static_cast<double>(wrote);
    s[4] = static_cast<double>(passes);
    return 0;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    backend_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<Backend> backend_;
  std::string reason_;
  std::vector<int> fds_;
  std::vector<int> index_;
  std::vector<int32_t> out_;
  int n_ = 0, active_ = 0, budget_ = 0, capacity_ = 0;
};

}  // namespace

void InitBench(Napi::Env env, Napi::Object exports) {
  Napi::Object bench = Napi::Object::New(env);
  bench.Set("loop", Napi::Function::New<Loop>(env, "loop"));
  bench.Set("gettid", Napi::Function::New<GettidJs>(env, "gettid"));
  bench.Set("noop", Napi::Function::New<NoopJs>(env, "noop"));
  bench.Set("leanWait", Napi::Function::New<LeanWait>(env, "leanWait"));
  bench.Set("threadCpuNs", Napi::Function::New<ThreadCpuJs>(env, "threadCpuNs"));
  bench.Set("UringNop", UringNop::Define(env));
  bench.Set("DispatchLoop", DispatchLoop::Define(env));
#ifdef IOMUX_BENCH_KQUEUE
  bench.Set("hasKevent", Napi::Boolean::New(env, true));
#else
  bench.Set("hasKevent", Napi::Boolean::New(env, false));
#endif
  exports.Set("bench", bench);
}

}  // namespace iomux

// labServe(config): starts a native lab server (threads, thread-pool, c-epoll,
// c-uring) whose own threads do all the work, and returns a handle with
// port, stats() and stop(). Also the helpers the servers share.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "exports.h"
#include "js_util.h"
#include "lab_server.h"
#include "posix_compat.h"
#include "uring_probe.h"

namespace iomux {
namespace lab {

int ListenTcp(const std::string& host, int port, int backlog, bool nonblock, bool reuseport, int* bound_port,
              SysError* err) {
  sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  int domain;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
    domain = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
    domain = AF_INET6;
  } else {
    *err = {-EINVAL, "inet_pton"};
    return err->rc;
  }
  int fd = SocketCloexec(domain, SOCK_STREAM, nonblock);
  if (fd < 0) {
    *err = {-errno, "socket"};
    return err->rc;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    *err = {-errno, "setsockopt"};
    close(fd);
    return err->rc;
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    *err = {-errno, "bind"};
    close(fd);
    return err->rc;
  }
  if (listen(fd, backlog) < 0) {
    *err = {-errno, "listen"};
    close(fd);
    return err->rc;
  }
  sockaddr_storage got;
  socklen_t glen = sizeof got;
  getsockname(fd, reinterpret_cast<sockaddr*>(&got), &glen);
  *bound_port = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&got)->sin6_port
                                                : reinterpret_cast<sockaddr_in*>(&got)->sin_port);
  return fd;
}

void TuneAccepted(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool SendAll(int fd, const char* buf, size_t len, ServerStats& stats) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, kSendNoSignal);
    if (n < 0) {
      if (errno == EINTR) continue;
      stats.errors.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    stats.bytes_out.fetch_add(n, std::memory_order_relaxed);
    buf += n;
    len -= n;
  }
  return true;
}

namespace {

// After the last response: half-close, then read and discard (up to 1 s,
// 1 MiB) until the client closes, so unread pipelined bytes do not turn our
// close into a reset that destroys the response in flight.
void LingeringClose(int fd, char* buf, size_t cap) {
  shutdown(fd, SHUT_WR);
  size_t budget = 1 << 20;
  for (int rounds = 0; rounds < 10 && budget > 0; rounds++) {
    pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 100);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return;
    if (n > 0) budget -= static_cast<size_t>(n) < budget ? n : budget;
  }
}

}  // namespace

void ServeBlocking(int fd, Protocol protocol, ServerStats& stats) {
  constexpr size_t kBuf = 16384;
  std::unique_ptr<char[]> buf(new char[kBuf]);
  std::string in, out;
  for (;;) {
    ssize_t n = recv(fd, buf.get(), kBuf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return;
    if (n < 0) {
      if (errno != ECONNRESET) stats.errors.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    stats.bytes_in.fetch_add(n, std::memory_order_relaxed);
    if (protocol == kEcho) {
      stats.requests.fetch_add(1, std::memory_order_relaxed);
      if (!SendAll(fd, buf.get(), n, stats)) return;
      continue;
    }
    in.append(buf.get(), n);
    bool close = HandleHttp(in, out, stats);
    if (!out.empty() && !SendAll(fd, out.data(), out.size(), stats)) return;
    out.clear();
    if (close) {
      LingeringClose(fd, buf.get(), kBuf);
      return;
    }
  }
}

int InitThreadAttr(pthread_attr_t* attr, int stack_kb) {
  pthread_attr_init(attr);
  if (stack_kb > 0) {
    int rc = pthread_attr_setstacksize(attr, static_cast<size_t>(stack_kb) * 1024);
    if (rc != 0) {
      pthread_attr_destroy(attr);
      return -rc;
    }
  }
  return 0;
}

}  // namespace lab

namespace {

struct NativeArch {
  const char* name;
  std::unique_ptr<lab::LabServer> (*make)();
  // true when it can run here; otherwise false and a reason.
  bool (*available)(std::string* reason);
};

bool Always(std::string*) { return true; }
bool UringOk(std::string* reason) { return UringAvailable(reason); }
#ifdef __linux__
bool LinuxOnly(std::string*) { return true; }
#else
bool LinuxOnly(std::string* reason) {
  *reason = "needs Linux (epoll)";
  return false;
}
#endif

// The native architectures. One row per server file.
const NativeArch kArchs[] = {
    {"threads", lab::NewThreadsServer, Always},
    {"thread-pool", lab::NewThreadPoolServer, Always},
    {"c-epoll", lab::NewEpollServer, LinuxOnly},
    {"c-uring", lab::NewUringServer, UringOk},
};

class StopWorker;

class NativeLabServer : public Napi::ObjectWrap<NativeLabServer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeLabServer",
                       {InstanceAccessor<&NativeLabServer::Port>("port"),
                        InstanceMethod<&NativeLabServer::Stats>("stats"),
                        InstanceMethod<&NativeLabServer::Stop>("stop")});
  }
  explicit NativeLabServer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeLabServer>(info) {}
  ~NativeLabServer() override {
    if (server_ && !stop_requested_) server_->Stop();
  }

  void Adopt(std::unique_ptr<lab::LabServer> s) { server_ = std::move(s); }

 private:
  friend class StopWorker;
  Napi::Value Port(const Napi::CallbackInfo& info) { return Num(info.Env(), server_ ? server_->port() : -1); }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    if (!server_) return o;
    const lab::ServerStats& s = server_->stats;
    o.Set("accepted", Num(env, static_cast<double>(s.accepted.load())));
    o.Set("active", Num(env, static_cast<double>(s.active.load())));
    o.Set("queued", Num(env, static_cast<double>(s.queued.load())));
    o.Set("requests", Num(env, static_cast<double>(s.requests.load())));
    o.Set("bytesIn", Num(env, static_cast<double>(s.bytes_in.load())));
    o.Set("bytesOut", Num(env, static_cast<double>(s.bytes_out.load())));
    o.Set("badRequests", Num(env, static_cast<double>(s.bad_requests.load())));
    o.Set("errors", Num(env, static_cast<double>(s.errors.load())));
    return o;
  }

  Napi::Value Stop(const Napi::CallbackInfo& info);

  std::unique_ptr<lab::LabServer> server_;
  bool stop_requested_ = false;
};

// Runs the blocking Stop() off the JS thread; resolves the promise after.
class StopWorker : public Napi::AsyncWorker {
 public:
  StopWorker(Napi::Env env, NativeLabServer* owner, Napi::Object self)
      : Napi::AsyncWorker(env), owner_(owner), deferred_(Napi::Promise::Deferred::New(env)) {
    self_ = Napi::Persistent(self);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { owner_->server_->Stop(); }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }

 private:
  NativeLabServer* owner_;
  Napi::ObjectReference self_;  // keeps the handle alive while stopping
  Napi::Promise::Deferred deferred_;
};

Napi::Value NativeLabServer::Stop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!server_ || stop_requested_) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Resolve(env.Undefined());
    return d.Promise();
  }
  stop_requested_ = true;
  auto* w = new StopWorker(env, this, info.This().As<Napi::Object>());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Value ErrorObject(Napi::Env env, int rc, const char* syscall) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("rc", Num(env, rc));
  o.Set("syscall", Napi::String::New(env, syscall));
  return o;
}

std::string Str(Napi::Object o, const char* key, const char* dflt) {
  Napi::Value v = o.Get(key);
  return v.IsString() ? v.As<Napi::String>().Utf8Value() : dflt;
}
int IntOf(Napi::Object o, const char* key, int dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Int32Value() : dflt;
}

// labServe({arch, protocol: 0 echo | 1 http, host, port, threads, stackKb,
// backlog, graceMs}): a NativeLabServer, or {rc: -errno, syscall}.
Napi::Value LabServe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) return ErrorObject(env, -EINVAL, "labServe");
  Napi::Object c = info[0].As<Napi::Object>();
  std::string arch = Str(c, "arch", "");
  lab::ServeConfig cfg;
  cfg.protocol = IntOf(c, "protocol", 0) == 1 ? lab::kHttp : lab::kEcho;
  cfg.host = Str(c, "host", "127.0.0.1");
  cfg.port = IntOf(c, "port", 0);
  cfg.threads = IntOf(c, "threads", 0);
  cfg.stack_kb = IntOf(c, "stackKb", 0);
  cfg.backlog = IntOf(c, "backlog", 4096);
  cfg.grace_ms = IntOf(c, "graceMs", 2000);
  if (cfg.port < 0 || cfg.port > 65535 || cfg.threads < 0 || cfg.stack_kb < 0 || cfg.grace_ms < 0)
    return ErrorObject(env, -EINVAL, "labServe");
  for (const NativeArch& a : kArchs) {
    if (arch != a.name) continue;
    std::string reason;
    if (!a.available(&reason)) return ErrorObject(env, -ENOSYS, "labServe");
    std::unique_ptr<lab::LabServer> s = a.make();
    if (!s) return ErrorObject(env, -ENOSYS, "labServe");
    lab::SysError err;
    if (s->Start(cfg, &err) < 0) return ErrorObject(env, err.rc, err.syscall);
    auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
    Napi::Object handle = ctor->New({});
    NativeLabServer::Unwrap(handle)->Adopt(std::move(s));
    return handle;
  }
  return ErrorObject(env, -EINVAL, "labServe");
}

// labArchs(): [{name, available, reason?}] for the native servers.
Napi::Value LabArchs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (const NativeArch& a : kArchs) {
    std::string reason;
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, a.name));
    bool ok = a.available(&reason);
    o.Set("available", Napi::Boolean::New(env, ok));
    if (!ok) o.Set("reason", Napi::String::New(env, reason));
    out.Set(i++, o);
  }
  return out;
}

// raiseNofileLimit(): lifts the soft RLIMIT_NOFILE to the hard limit (10,000
// connections need more than the usual 1024). Returns the new soft limit or -errno.
Napi::Value RaiseNofileLimit(const Napi::CallbackInfo& info) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return Num(info.Env(), -errno);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) return Num(info.Env(), -errno);
  }
  return Num(info.Env(), static_cast<double>(rl.rlim_cur));
}

// clockTicks(): sysconf(_SC_CLK_TCK), the unit of /proc/PID/stat CPU times.
Napi::Value ClockTicks(const Napi::CallbackInfo& info) { return Num(info.Env(), sysconf(_SC_CLK_TCK)); }

}  // namespace

void InitLabServe(Napi::Env env, Napi::Object exports) {
  // The constructor travels as the function's data (one per environment, so
  // worker threads each get their own); it lives as long as the addon.
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(NativeLabServer::Define(env)));
  exports.Set("labServe", Napi::Function::New<LabServe>(env, "labServe", ctor));
  exports.Set("labArchs", Napi::Function::New<LabArchs>(env, "labArchs"));
  exports.Set("raiseNofileLimit", Napi::Function::New<RaiseNofileLimit>(env, "raiseNofileLimit"));
  exports.Set("clockTicks", Napi::Function::New<ClockTicks>(env, "clockTicks"));
}

}  // namespace iomux

// fd primitives for driving the multiplexers without Node's net. Every call
// returns a result or -errno; lib/sys.ts decides which errnos are expected
// (returned to the caller) and which are misuse (thrown as ErrnoError).
#include <arpa/inet.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "exports.h"
#include "js_util.h"
#include "sock_error.h"

namespace iomux {
namespace {

[[maybe_unused]] int SetNonBlockCloexec(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) return -errno;
  return 0;
}

Napi::Value Pair(Napi::Env env, int rc, const int fds[2]) {
  if (rc < 0) return Num(env, -errno);
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Num(env, fds[0]));
  a.Set(1u, Num(env, fds[1]));
  return a;
}

// pipe(nonblock): [readFd, writeFd] or -errno
Napi::Value Pipe(const Napi::CallbackInfo& info) {
  bool nonblock = info.Length() < 1 || info[0].ToBoolean();
  int fds[2];
#ifdef __linux__
  int rc = pipe2(fds, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
#else
  int rc = pipe(fds);
  if (rc == 0) {
    for (int fd : fds) {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
      if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  }
#endif
  return Pair(info.Env(), rc, fds);
}

// socketpair(type, nonblock): [a, b] or -errno (AF_UNIX)
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  int type = Int(info, 0, SOCK_STREAM);
  bool nonblock = info.Length() < 2 || info[1].ToBoolean();
  int fds[2];
#ifdef SOCK_CLOEXEC
  // Atomically: set afterwards, a fork() by another thread (a worker thread's
  // child_process.spawn) in between would inherit the fds.
  int rc = socketpair(AF_UNIX, type | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0, fds);
#else
  int rc = socketpair(AF_UNIX, type, 0, fds);
  if (rc == 0) {
    for (int fd : fds) {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
      if (nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
  }
#endif
  return Pair(info.Env(), rc, fds);
}

// socket(domain, type): fd (non-blocking, close-on-exec) or -errno
Napi::Value Socket(const Napi::CallbackInfo& info) {
#ifdef SOCK_CLOEXEC
  int fd = socket(Int(info, 0), Int(info, 1) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);  // atomically, as socketpair
  return Num(info.Env(), fd < 0 ? -errno : fd);
#else
  int fd = socket(Int(info, 0), Int(info, 1), 0);
  if (fd < 0) return Num(info.Env(), -errno);
  int rc = SetNonBlockCloexec(fd);
  if (rc < 0) {
    close(fd);
    return Num(info.Env(), rc);
  }
  return Num(info.Env(), fd);
#endif
}

// Fills a sockaddr from (family, host, port); family 4, 6, or 0 for unix.
int MakeAddr(const Napi::CallbackInfo& info, size_t at, sockaddr_storage* ss, socklen_t* len) {
  int family = Int(info, at);
  std::string host = info[at + 1].As<Napi::String>().Utf8Value();
  int port = Int(info, at + 2);
  memset(ss, 0, sizeof *ss);
  if (family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) != 1) return -EINVAL;
    *len = sizeof *sin;
  } else if (family == 6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) != 1) return -EINVAL;
    *len = sizeof *sin6;
  } else {
    auto* sun = reinterpret_cast<sockaddr_un*>(ss);
    sun->sun_family = AF_UNIX;
    if (host.size() >= sizeof sun->sun_path) return -ENAMETOOLONG;
    memcpy(sun->sun_path, host.data(), host.size());
    *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + host.size() + 1);
  }
  return 0;
}

Napi::Value Bind(const Napi::CallbackInfo& info) {
  sockaddr_storage ss;
  socklen_t len;
  int rc = MakeAddr(info, 1, &ss, &len);
  if (rc == 0 && bind(Int(info, 0, -1), reinterpret_cast<sockaddr*>(&ss), len) != 0) rc = -errno;
  return Num(info.Env(), rc);
}

Napi::Value Connect(const Napi::CallbackInfo& info) {
  sockaddr_storage ss;
  socklen_t len;
  int rc = MakeAddr(info, 1, &ss, &len);
  if (rc == 0 && connect(Int(info, 0, -1), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    rc = -errno;
  return Num(info.Env(), rc);
}

Napi::Value Listen(const Napi::CallbackInfo& info) {
  int rc = listen(Int(info, 0, -1), Int(info, 1, 511));
  return Num(info.Env(), rc < 0 ? -errno : 0);
}

// accept(fd): a non-blocking, close-on-exec fd, or -errno
Napi::Value Accept(const Napi::CallbackInfo& info) {
#ifdef __linux__
  int fd = accept4(Int(info, 0, -1), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return Num(info.Env(), fd < 0 ? -errno : fd);
#else
  int fd = accept(Int(info, 0, -1), nullptr, nullptr);
  if (fd < 0) return Num(info.Env(), -errno);
  SetNonBlockCloexec(fd);
  return Num(info.Env(), fd);
#endif
}

// read/write(fd, view, offset, length): bytes or -errno
Napi::Value Read(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t len;
  if (!GetBytes(info[1], &data, &len)) return Num(info.Env(), -EINVAL);
  size_t off = static_cast<size_t>(Int(info, 2)), n = static_cast<size_t>(Int(info, 3));
  if (off > len || n > len - off) return Num(info.Env(), -EINVAL);
  int fd = Int(info, 0, -1);
  ssize_t r = read(fd, data + off, n);
  int rc = r < 0 ? -errno : 0;
  if (r == 0 || rc == -EAGAIN) {
    if (int kept = TakeSocketError(fd, true)) return Num(info.Env(), -kept);
  }
  return Num(info.Env(), r < 0 ? rc : static_cast<double>(r));
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  uint8_t* data;
  size_t len;
  if (!GetBytes(info[1], &data, &len)) return Num(info.Env(), -EINVAL);
  size_t off = static_cast<size_t>(Int(info, 2)), n = static_cast<size_t>(Int(info, 3));
  if (off > len || n > len - off) return Num(info.Env(), -EINVAL);
  int fd = Int(info, 0, -1);
  if (int kept = TakeSocketError(fd)) return Num(info.Env(), -kept);
  ssize_t r = write(fd, data + off, n);
  return Num(info.Env(), r < 0 ? -errno : static_cast<double>(r));
}

int Iovecs(const Napi::CallbackInfo& info, std::vector<iovec>* iov) {
  Napi::Array arr = info[1].As<Napi::Array>();
  uint32_t n = arr.Length();
  if (n > IOV_MAX) return -EINVAL;
  iov->resize(n);
  for (uint32_t i = 0; i < n; i++) {
    uint8_t* data;
    size_t len;
    if (!GetBytes(arr.Get(i), &data, &len)) return -EINVAL;
    (*iov)[i].iov_base = data;
    (*iov)[i].iov_len = len;
  }
  return 0;
}

Napi::Value Readv(const Napi::CallbackInfo& info) {
  std::vector<iovec> iov;
  int rc = Iovecs(info, &iov);
  if (rc < 0) return Num(info.Env(), rc);
  int fd = Int(info, 0, -1);
  ssize_t r = readv(fd, iov.data(), static_cast<int>(iov.size()));
  rc = r < 0 ? -errno : 0;
  if (r == 0 || rc == -EAGAIN) {
    if (int kept = TakeSocketError(fd, true)) return Num(info.Env(), -kept);
  }
  return Num(info.Env(), r < 0 ? rc : static_cast<double>(r));
}

Napi::Value Writev(const Napi::CallbackInfo& info) {
  std::vector<iovec> iov;
  int rc = Iovecs(info, &iov);
  if (rc < 0) return Num(info.Env(), rc);
  int fd = Int(info, 0, -1);
  if (int kept = TakeSocketError(fd)) return Num(info.Env(), -kept);
  ssize_t r = writev(fd, iov.data(), static_cast<int>(iov.size()));
  return Num(info.Env(), r < 0 ? -errno : static_cast<double>(r));
}

Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  int rc = shutdown(Int(info, 0, -1), Int(info, 1));
  return Num(info.Env(), rc < 0 ? -errno : 0);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  // Linux releases the fd even when close() reports EINTR: never retry.
  ForgetSocketError(Int(info, 0, -1));
  int rc = close(Int(info, 0, -1));
  return Num(info.Env(), rc < 0 && errno != EINTR ? -errno : 0);
}

// setsockopt(fd, level, name, value) for int options;
// setsockopt(fd, SOL_SOCKET, SO_LINGER, seconds) with seconds < 0 = off.
Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  int fd = Int(info, 0, -1), level = Int(info, 1), name = Int(info, 2), value = Int(info, 3);
  int rc;
  if (level == SOL_SOCKET && name == SO_LINGER) {
    struct linger l;
    l.l_onoff = value >= 0;
    l.l_linger = value >= 0 ? value : 0;
    rc = setsockopt(fd, level, name, &l, sizeof l);
  } else {
    rc = setsockopt(fd, level, name, &value, sizeof value);
  }
  return Num(info.Env(), rc < 0 ? -errno : 0);
}

// getsockopt(fd, level, name): the int value (SO_LINGER: seconds or -1), or -errno
Napi::Value GetSockOpt(const Napi::CallbackInfo& info) {
  int fd = Int(info, 0, -1), level = Int(info, 1), name = Int(info, 2);
  if (level == SOL_SOCKET && name == SO_LINGER) {
    struct linger l;
    socklen_t len = sizeof l;
    if (getsockopt(fd, level, name, &l, &len) < 0) return Num(info.Env(), -errno);
    return Num(info.Env(), l.l_onoff ? l.l_linger : -1);
  }
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, name, &value, &len) < 0) return Num(info.Env(), -errno);
  if (level == SOL_SOCKET && name == SO_ERROR && value == 0) value = TakeSocketError(fd);
  return Num(info.Env(), value);
}

Napi::Value AddrObject(Napi::Env env, const sockaddr_storage& ss, socklen_t len) {
  Napi::Object o = Napi::Object::New(env);
  char buf[INET6_ADDRSTRLEN];
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    o.Set("family", "IPv4");
    o.Set("address", buf);
    o.Set("port", ntohs(sin->sin_port));
  } else if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
    o.Set("family", "IPv6");
    o.Set("address", buf);
    o.Set("port", ntohs(sin6->sin6_port));
  } else if (ss.ss_family == AF_UNIX) {
    auto* sun = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    std::string path(sun->sun_path, strnlen(sun->sun_path, n));
    o.Set("family", "unix");
    o.Set("path", path);
  } else {
    o.Set("family", "unknown");
  }
  return o;
}

Napi::Value GetSockName(const Napi::CallbackInfo& info) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getsockname(Int(info, 0, -1), reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    return Num(info.Env(), -errno);
  return AddrObject(info.Env(), ss, len);
}

Napi::Value GetPeerName(const Napi::CallbackInfo& info) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  memset(&ss, 0, sizeof ss);
  if (getpeername(Int(info, 0, -1), reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    return Num(info.Env(), -errno);
  return AddrObject(info.Env(), ss, len);
}

Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = fcntl(Int(info, 0, -1), F_DUPFD_CLOEXEC, 0);
  return Num(info.Env(), fd < 0 ? -errno : fd);
}

// fcntl(fd, cmd, arg) for integer commands: result or -errno
Napi::Value Fcntl(const Napi::CallbackInfo& info) {
  int r = fcntl(Int(info, 0, -1), Int(info, 1), Int(info, 2));
  return Num(info.Env(), r < 0 ? -errno : r);
}

#ifdef __linux__
Napi::Value EventFd(const Napi::CallbackInfo& info) {
  int fd = eventfd(static_cast<unsigned>(Int(info, 0)), EFD_NONBLOCK | EFD_CLOEXEC);
  return Num(info.Env(), fd < 0 ? -errno : fd);
}
#endif

// Test helper: `count` times (default 1), every `ms`, send signal `signo` to
// the calling thread from another thread, so that a wait in progress is interrupted (EINTR).
Napi::Value SignalSelfAfter(const Napi::CallbackInfo& info) {
  pthread_t self = pthread_self();
  int ms = Int(info, 0), signo = Int(info, 1), count = Int(info, 2, 1);
  std::thread([self, ms, signo, count] {
    for (int i = 0; i < count; i++) {
      usleep(static_cast<useconds_t>(ms) * 1000);
      pthread_kill(self, signo);
    }
  }).detach();
  return info.Env().Undefined();
}

void Const(Napi::Object o, const char* name, int v) { o.Set(name, Napi::Number::New(o.Env(), v)); }

}  // namespace

void InitSys(Napi::Env env, Napi::Object exports) {
  Napi::Object sys = Napi::Object::New(env);
  sys.Set("pipe", Napi::Function::New<Pipe>(env, "pipe"));
  sys.Set("socketpair", Napi::Function::New<SocketPair>(env, "socketpair"));
  sys.Set("socket", Napi::Function::New<Socket>(env, "socket"));
  sys.Set("bind", Napi::Function::New<Bind>(env, "bind"));
  sys.Set("connect", Napi::Function::New<Connect>(env, "connect"));
  sys.Set("listen", Napi::Function::New<Listen>(env, "listen"));
  sys.Set("accept", Napi::Function::New<Accept>(env, "accept"));
  sys.Set("read", Napi::Function::New<Read>(env, "read"));
  sys.Set("write", Napi::Function::New<Write>(env, "write"));
  sys.Set("readv", Napi::Function::New<Readv>(env, "readv"));
  sys.Set("writev", Napi::Function::New<Writev>(env, "writev"));
  sys.Set("shutdown", Napi::Function::New<Shutdown>(env, "shutdown"));
  sys.Set("close", Napi::Function::New<Close>(env, "close"));
  sys.Set("setsockopt", Napi::Function::New<SetSockOpt>(env, "setsockopt"));
  sys.Set("getsockopt", Napi::Function::New<GetSockOpt>(env, "getsockopt"));
  sys.Set("getsockname", Napi::Function::New<GetSockName>(env, "getsockname"));
  sys.Set("getpeername", Napi::Function::New<GetPeerName>(env, "getpeername"));
  sys.Set("dup", Napi::Function::New<Dup>(env, "dup"));
  sys.Set("fcntl", Napi::Function::New<Fcntl>(env, "fcntl"));
#ifdef __linux__
  sys.Set("eventfd", Napi::Function::New<EventFd>(env, "eventfd"));
#endif
  sys.Set("signalSelfAfter", Napi::Function::New<SignalSelfAfter>(env, "signalSelfAfter"));

  Napi::Object c = Napi::Object::New(env);
  Const(c, "AF_INET", AF_INET);
  Const(c, "AF_INET6", AF_INET6);
  Const(c, "AF_UNIX", AF_UNIX);
  Const(c, "SOCK_STREAM", SOCK_STREAM);
  Const(c, "SOCK_DGRAM", SOCK_DGRAM);
  Const(c, "SOL_SOCKET", SOL_SOCKET);
  Const(c, "IPPROTO_TCP", IPPROTO_TCP);
  Const(c, "SO_REUSEADDR", SO_REUSEADDR);
#ifdef SO_REUSEPORT
  Const(c, "SO_REUSEPORT", SO_REUSEPORT);
#endif
  Const(c, "SO_LINGER", SO_LINGER);
  Const(c, "SO_RCVBUF", SO_RCVBUF);
  Const(c, "SO_SNDBUF", SO_SNDBUF);
  Const(c, "SO_KEEPALIVE", SO_KEEPALIVE);
  Const(c, "SO_ERROR", SO_ERROR);
  Const(c, "SO_TYPE", SO_TYPE);
  Const(c, "TCP_NODELAY", TCP_NODELAY);
  Const(c, "SHUT_RD", SHUT_RD);
  Const(c, "SHUT_WR", SHUT_WR);
  Const(c, "SHUT_RDWR", SHUT_RDWR);
  Const(c, "F_DUPFD", F_DUPFD);
  Const(c, "F_DUPFD_CLOEXEC", F_DUPFD_CLOEXEC);
  Const(c, "F_GETFD", F_GETFD);
  Const(c, "F_SETFD", F_SETFD);
  Const(c, "F_GETFL", F_GETFL);
  Const(c, "F_SETFL", F_SETFL);
  Const(c, "FD_CLOEXEC", FD_CLOEXEC);
  Const(c, "O_NONBLOCK", O_NONBLOCK);
  Const(c, "IOV_MAX", IOV_MAX);
  sys.Set("constants", c);
  exports.Set("sys", sys);
}

}  // namespace iomux

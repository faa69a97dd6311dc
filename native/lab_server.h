// The native lab servers (threads, thread-pool, c-epoll, c-uring) behind
// one small interface; lab_serve.cc exposes them to JS as labServe(config).
// A server is added by one file defining a factory and one row in the table
// in lab_serve.cc.
#pragma once
#include <pthread.h>

#include <memory>
#include <string>
#include <vector>

#include "lab_proto.h"

namespace iomux {
namespace lab {

struct ServeConfig {
  Protocol protocol = kEcho;
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = 0;      // pool size / reactor threads; 0 = the server's default
  int stack_kb = 0;     // thread stack size; 0 = the system default
  int backlog = 4096;
  int grace_ms = 2000;  // how long stop() lets in-flight replies finish
};

// A failed syscall: -errno and its name, turned into an ErrnoError in JS.
struct SysError {
  int rc = 0;
  const char* syscall = "";
};

class LabServer {
 public:
  virtual ~LabServer() = default;
  // Binds and starts the server threads. 0, or fills *err.
  virtual int Start(const ServeConfig& cfg, SysError* err) = 0;
  // Closes the listeners, lets in-flight replies finish (up to grace_ms, then
  // cuts the connections), joins every thread. Blocking; called once.
  virtual void Stop() = 0;
  int port() const { return port_; }
  ServerStats stats;

 protected:
  int port_ = 0;
};

// Factories (one per file).
std::unique_ptr<LabServer> NewThreadsServer();
std::unique_ptr<LabServer> NewThreadPoolServer();
std::unique_ptr<LabServer> NewEpollServer();
std::unique_ptr<LabServer> NewUringServer();  // nullptr when compiled without liburing

// Shared helpers (lab_serve.cc).
// A TCP listener on host:port (IPv4 or IPv6 literal); *port receives the bound
// port. Returns the fd or -errno with err filled.
int ListenTcp(const std::string& host, int port, int backlog, bool nonblock, bool reuseport, int* bound_port,
              SysError* err);
// Blocking I/O for the thread-based servers: serves one connection with
// recv/send until the peer closes, an error, or a response that ends the
// connection (then it half-closes and drains briefly so the client reads the
// reply instead of a reset). The caller closes the fd.
void ServeBlocking(int fd, Protocol protocol, ServerStats& stats);
// Sends all of buf (blocking socket); false on error.
bool SendAll(int fd, const char* buf, size_t len, ServerStats& stats);
// Initialises *attr with the configured stack size (0 = the default).
// 0, or -errno from pthread_attr_setstacksize.
int InitThreadAttr(pthread_attr_t* attr, int stack_kb);
// Accepted sockets get TCP_NODELAY (replies are small and pipelined).
void TuneAccepted(int fd);

// c-epoll and c-uring: `threads` reactors, each on its own SO_REUSEPORT
// listener (the first binds cfg.port, the others the port it got). Reactor
// needs Reactor(Protocol, ServerStats&, int grace_ms), Init(listen_fd, err)
// (it owns the fd from then on), RequestStop() and Join().
template <class Reactor>
class ReactorGroupServer final : public LabServer {
 public:
  int Start(const ServeConfig& cfg, SysError* err) override {
    int n = cfg.threads > 0 ? cfg.threads : 1;
    for (int i = 0; i < n; i++) {
      int lfd = ListenTcp(cfg.host, i == 0 ? cfg.port : port_, cfg.backlog, true, n > 1, &port_, err);
      if (lfd < 0) return Fail(lfd);
      reactors_.emplace_back(new Reactor(cfg.protocol, stats, cfg.grace_ms));
      int rc = reactors_.back()->Init(lfd, err);
      if (rc < 0) return Fail(rc);
    }
    return 0;
  }
  void Stop() override {
    for (auto& r : reactors_) r->RequestStop();
    for (auto& r : reactors_) r->Join();
    reactors_.clear();
  }

 private:
  int Fail(int rc) {
    Stop();
    return rc;
  }
  std::vector<std::unique_ptr<Reactor>> reactors_;
};

}  // namespace lab
}  // namespace iomux

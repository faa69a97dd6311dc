// The native load generator behind `iomux load`. Worker threads each own an
// epoll set and a share of the connections (edge-triggered, non-blocking);
// a coordinator thread runs the phases (connect, run, drain), reports
// progress to JS through a thread-safe function and resolves the promise
// with the merged result. Nothing on the measured path touches JS.
//
// Every byte that comes back is verified: echo against a deterministic
// per-connection pattern, http by parsing status, Content-Length and body.
// Open loop (--rate) measures latency from each request's intended send time,
// so a stalled server shows up as latency rather than as fewer samples.
//
// Fault injection (echo, closed loop): a fraction of the connection slots
// misbehave. Each connection in such a slot first runs like the others, then,
// after a random delay, resets (SO_LINGER 0), half-closes, stalls reading
// while it floods (a slow reader), or vanishes (closes with a reply on its
// way); then a new connection takes the slot and draws the next fault. The
// healthy slots keep one connection for the whole run, every byte of it
// verified; a half-closed connection and a slow reader must get every byte
// back too (then the server's FIN, or a clean close of ours).
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#ifdef __linux__
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#endif
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "exports.h"
#include "histogram.h"
#include "js_util.h"

#ifdef __linux__  // the whole generator runs on epoll; elsewhere loadRun says so

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace iomux {
namespace {

int64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

const char* ErrName(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : "E?";
}

// ---- configuration and results -------------------------------------------

struct LoadConfig {
  std::string host = "127.0.0.1";
  int port = 0;
  int conns = 1;
  int size = 64;   // echo message size
  int depth = 1;   // requests in flight per connection
  double duration_s = 1;
  double warmup_s = 0;  // run this long before the measured window (same connections)
  double rate = 0;  // total requests/s; 0 = closed loop
  int work_us = 0;
  double work_ratio = 0;
  double active_ratio = 1;  // the fraction of connections that send; the others stay open, idle
  bool http = false;
  int threads = 1;
  int sources = 1;
  double connect_timeout_s = 10;
  double drain_s = 2;
  int progress_ms = 1000;
  // faults
  double fault_ratio = 0;   // fraction of the connection slots that misbehave
  unsigned fault_kinds = 0; // FaultKind bits
  int fault_delay_ms = 1000;  // a fault comes 0 .. this long after its connection starts
  int fault_stall_ms = 500;   // slow reader: how long it does not read
  uint64_t fault_flood = 128 * 1024;  // slow reader: bytes it sends while not reading
  uint64_t fault_deep_flood = 8 * 1024 * 1024;  // ... the first, then every kDeepEvery-th slow reader
  uint64_t fault_seed = 1;
};

enum FaultKind : unsigned { kFaultReset = 1, kFaultHalfClose = 2, kFaultSlowRead = 4, kFaultVanish = 8 };
constexpr int kFaultKinds = 4;
constexpr int kSlowReaderBuf = 16 * 1024;
constexpr uint64_t kDeepEvery = 32;

// Counters a worker publishes while it runs (read by the coordinator).
struct Live {
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> connected{0};
  std::atomic<uint64_t> resolved{0};  // connections connected or failed
  std::atomic<uint64_t> errors{0};    // connect errors + resets + verification errors
};

struct Totals {
  uint64_t completed = 0, in_window = 0, connected = 0, connect_errors = 0, resets = 0, server_closes = 0,
           verify_errors = 0, bytes_sent = 0, bytes_received = 0, bytes_verified = 0, unanswered = 0,
           idle_conns = 0, work_requests = 0, active_conns = 0, warmup_completed = 0;
  // faults
  uint64_t faults[kFaultKinds] = {0, 0, 0, 0};  // injected, by kind (bit index)
  uint64_t reconnects = 0, reconnect_errors = 0, fault_completed = 0, fault_incomplete = 0, fault_bytes_verified = 0,
           slow_blocked = 0, healthy_conns = 0, healthy_failed = 0, healthy_bytes_verified = 0, healthy_bytes_lost = 0;
  std::string first_error, first_connect_error;
  void Add(const Totals& o) {
    completed += o.completed;
    in_window += o.in_window;
    connected += o.connected;
    connect_errors += o.connect_errors;
    resets += o.resets;
    server_closes += o.server_closes;
    verify_errors += o.verify_errors;
    bytes_sent += o.bytes_sent;
    bytes_received += o.bytes_received;
    bytes_verified += o.bytes_verified;
    unanswered += o.unanswered;
    idle_conns += o.idle_conns;
    work_requests += o.work_requests;
    active_conns += o.active_conns;
    warmup_completed += o.warmup_completed;
    for (int k = 0; k < kFaultKinds; k++) faults[k] += o.faults[k];
    reconnects += o.reconnects;
    reconnect_errors += o.reconnect_errors;
    fault_completed += o.fault_completed;
    fault_incomplete += o.fault_incomplete;
    fault_bytes_verified += o.fault_bytes_verified;
    slow_blocked += o.slow_blocked;
    healthy_conns += o.healthy_conns;
    healthy_failed += o.healthy_failed;
    healthy_bytes_verified += o.healthy_bytes_verified;
    healthy_bytes_lost += o.healthy_bytes_lost;
    if (first_error.empty()) first_error = o.first_error;
    if (first_connect_error.empty()) first_connect_error = o.first_connect_error;
  }
};

// The phases, published by the coordinator.
enum Phase : int { kConnect = 0, kRun = 1, kDrain = 2, kStop = 3 };
// Reported to JS as "warmup": the run phase before t_measure.
constexpr int kWarmupReport = 4;

struct Shared {
  LoadConfig cfg;
  std::atomic<int> phase{kConnect};
  // t_start: the run begins (warm-up first); t_measure: the measured window begins.
  std::atomic<int64_t> t_start{0}, t_measure{0}, t_end{0}, t_drain_end{0};
  std::atomic<bool> cancelled{false};
  std::atomic<bool> end_warmup{false};  // JS asked to end the warm-up now
};

// ---- the echo pattern ---------------------------------------------------------

// A pseudo-random table with a prime period, followed by a copy of its first
// kMaxChunk bytes so any window of up to kMaxChunk bytes is contiguous.
// Connection c's stream byte k is table[(base(c) + k) % kPeriod].
constexpr size_t kPeriod = 65521;
constexpr size_t kMaxChunk = 65536;

const uint8_t* PatternTable() {
  static const std::vector<uint8_t> table = [] {
    std::vector<uint8_t> t(kPeriod + kMaxChunk);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < kPeriod; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      t[i] = static_cast<uint8_t>(x >> 24);
    }
    for (size_t i = 0; i < kMaxChunk; i++) t[kPeriod + i] = t[i % kPeriod];
    return t;
  }();
  return table.data();
}

// ---- http response verification ----------------------------------------------

const char kExpectedBody[] = "Hello, World!";
constexpr int64_t kBodyLen = 13;

class ResponseParser {
 public:
  // Feeds bytes; calls done() per complete, verified response. Returns false
  // and fills *why on the first violation.
  template <typename Done>
  bool Feed(const char* p, size_t n, std::string* why, Done done) {
    while (n > 0) {
      if (state_ == kBody) {
        size_t m = std::min<size_t>(n, static_cast<size_t>(length_ - body_pos_));
        if (memcmp(p, kExpectedBody + body_pos_, m) != 0) {
          for (size_t i = 0; i < m; i++)
            if (p[i] != kExpectedBody[body_pos_ + i]) {
              *why = "http body byte " + std::to_string(body_pos_ + i) + ": expected '" +
                     std::string(1, kExpectedBody[body_pos_ + i]) + "', got 0x" + Hex(p[i]);
              break;
            }
          return false;
        }
        body_pos_ += m;
        bytes_ += m;
        p += m;
        n -= m;
        if (body_pos_ == length_) {
          done(bytes_);
          state_ = kStatus;
          bytes_ = 0;
        }
        continue;
      }
      const char* nl = static_cast<const char*>(memchr(p, '\n', n));
      size_t take = nl ? static_cast<size_t>(nl - p + 1) : n;
      if (line_.size() + take > 8192) return *why = "http response head longer than 8192 bytes", false;
      line_.append(p, take);
      bytes_ += take;
      p += take;
      n -= take;
      if (!nl) continue;
      std::string line;
      line.swap(line_);
      line.pop_back();
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!Line(line, why)) return false;
      if (state_ == kBody && length_ == 0) {
        done(bytes_);
        state_ = kStatus;
        bytes_ = 0;
      }
    }
    return true;
  }

 private:
  enum State { kStatus, kHeaders, kBody };

  static std::string Hex(char c) {
    char b[3];
    snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
    return b;
  }

  bool Line(const std::string& line, std::string* why) {
    if (state_ == kStatus) {
      if (line.size() < 12 || (line.compare(0, 9, "HTTP/1.1 ") != 0 && line.compare(0, 9, "HTTP/1.0 ") != 0))
        return *why = "not an HTTP/1.x status line: \"" + line.substr(0, 40) + "\"", false;
      int status = atoi(line.c_str() + 9);
      if (status != 200) return *why = "http status " + std::to_string(status) + ", expected 200", false;
      state_ = kHeaders;
      length_ = -1;
      return true;
    }
    if (line.empty()) {
      if (length_ < 0) return *why = "http response without Content-Length", false;
      if (length_ != kBodyLen)
        return *why = "http Content-Length " + std::to_string(length_) + ", expected 13", false;
      state_ = kBody;
      body_pos_ = 0;
      return true;
    }
    size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return *why = "malformed http header line", false;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    size_t v = line.find_first_not_of(" \t", colon + 1);
    std::string value = v == std::string::npos ? "" : line.substr(v);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
    if (name == "content-length") {
      if (value.empty() || value.size() > 9 || value.find_first_not_of("0123456789") != std::string::npos)
        return *why = "bad Content-Length \"" + value + "\"", false;
      length_ = atoll(value.c_str());
    } else if (name == "transfer-encoding") {
      return *why = "unexpected Transfer-Encoding: " + value, false;
    }
    return true;
  }

  State state_ = kStatus;
  std::string line_;
  int64_t length_ = -1;
  int64_t body_pos_ = 0;
  size_t bytes_ = 0;  // bytes of the response so far
};

// ---- one connection -------------------------------------------------------------

enum ConnState : uint8_t { kConnecting, kOpen, kDead };
// A faulty slot's connection: no fault drawn yet, waiting for its fault, in it.
enum FaultState : uint8_t { kFaultNone, kFaultArmed, kFaultActive };
enum TimerKind : uint8_t { kTimerNone, kTimerFault, kTimerStallEnd, kTimerReplace };

struct Conn {
  int fd = -1;
  int id = 0;
  ConnState state = kConnecting;
  bool writable = false;
  bool active = true;           // sends requests (see LoadConfig::active_ratio)
  uint32_t inflight = 0;        // requests written into the send stream, unanswered
  std::deque<int64_t> stamps;   // start times of issued, unanswered requests (oldest first)
  uint64_t issued = 0;          // requests issued so far (chooses /work requests)
  uint64_t answered = 0;
  // echo
  uint64_t base = 0;            // pattern offset
  uint64_t send_off = 0, send_target = 0, recv_off = 0;
  // http
  std::string out;
  size_t out_off = 0;
  ResponseParser parser;
  double work_phase = 0;
  // faults
  bool faulty = false;          // the slot misbehaves (its connections are replaced)
  bool opened = false;          // this connection got connected
  uint32_t gen = 0;             // connections the slot had before this one
  unsigned fault = 0;           // FaultKind of this connection
  FaultState fstate = kFaultNone;
  TimerKind timer = kTimerNone;
  int64_t deadline = 0;
  bool stalled = false;         // slow reader: not reading
  bool deep = false;            // slow reader: floods fault_deep_flood
  bool shut_pending = false;    // half-close once the last bytes are sent
  bool fault_pending = false;   // half-close or slow reader: every byte must still come back
};

// ---- a worker thread ------------------------------------------------------------

class Worker {
 public:
  Worker(Shared* sh, int index, int nthreads) : sh_(sh), cfg_(sh->cfg), index_(index), nthreads_(nthreads) {}
  ~Worker() {
    for (Conn& c : conns_)
      if (c.fd >= 0) close(c.fd);
    if (ep_ >= 0) close(ep_);
    if (wake_ >= 0) close(wake_);
  }

  int Init() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return -errno;
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_ < 0) return -errno;
    epoll_event e = {};
    e.events = EPOLLIN | EPOLLET;
    e.data.ptr = nullptr;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &e) < 0) return -errno;
    // With an active ratio r, ceil(r * conns) connections (at least one),
    // spread evenly over the ids, send; the others only hold their socket.
    const int64_t n = cfg_.conns;
    const int64_t active = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(cfg_.active_ratio * static_cast<double>(n) - 1e-9)));
    for (int i = index_; i < cfg_.conns; i += nthreads_) {
      Conn c;
      c.id = i;
      c.active = (static_cast<int64_t>(i) + 1) * active / n != static_cast<int64_t>(i) * active / n;
      if (c.active) totals.active_conns++;
      c.base = (static_cast<uint64_t>(i) * 2654435761ull) % kPeriod;
      c.work_phase = std::fmod(i * 0.6180339887, 1.0);
      // Exactly fault_ratio of the slots, evenly spread.
      c.faulty = cfg_.fault_kinds != 0 &&
                 std::floor((i + 1) * cfg_.fault_ratio) != std::floor(i * cfg_.fault_ratio);
      conns_.push_back(std::move(c));
    }
    for (Conn& c : conns_)
      if (c.faulty) faulty_.push_back(&c);
    rng_ = (cfg_.fault_seed + 1) * 0x9e3779b97f4a7c15ull ^ (static_cast<uint64_t>(index_ + 1) * 0xbf58476d1ce4e5b9ull);
    if (rng_ == 0) rng_ = 1;
    for (int k = 0; k < kFaultKinds; k++)
      if (cfg_.fault_kinds & (1u << k)) kinds_.push_back(1u << k);
    kind_next_ = static_cast<size_t>(index_) % std::max<size_t>(kinds_.size(), 1);
    if (cfg_.http) {
      std::string host = cfg_.host.find(':') != std::string::npos ? "[" + cfg_.host + "]" : cfg_.host;
      std::string h = " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(cfg_.port) + "\r\n\r\n";
      hello_req_ = "GET /" + h;
      work_req_ = "GET /work?us=" + std::to_string(cfg_.work_us) + h;
    }
    return 0;
  }

  void Start() { thread_ = std::thread(&Worker::Main, this); }
  void Wake() {
    uint64_t one = 1;
    (void)!write(wake_, &one, sizeof one);
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

  Live live;
  Totals totals;
  Histogram hist;

 private:
  void Main() {
    buf_.reset(new char[kMaxChunk]);
    for (Conn& c : conns_) StartConnect(c);
    std::vector<epoll_event> evs(1024);
    int phase = kConnect;
    bool issued_initial = false;
    uint64_t next_j = 0;  // open loop: this thread's next scheduled request
    const double interval_ns = cfg_.rate > 0 ? 1e9 * nthreads_ / cfg_.rate : 0;
    const double offset_ns = cfg_.rate > 0 ? 1e9 * index_ / cfg_.rate : 0;
    size_t rr = 0;
    for (;;) {
      phase = sh_->phase.load(std::memory_order_acquire);
      if (phase == kStop || sh_->cancelled.load(std::memory_order_relaxed)) break;
      int64_t now = NowNs();
      const int64_t t0 = sh_->t_start.load(std::memory_order_relaxed);
      const int64_t t_end = sh_->t_end.load(std::memory_order_relaxed);
      if (now >= next_deadline_) {
        RunTimers(now, phase);
        now = NowNs();
      }
      if (phase >= kRun && !issued_initial) {
        issued_initial = true;
        if (cfg_.rate <= 0)
          for (Conn& c : conns_)
            if (c.state == kOpen && c.active) Fill(c, now);
      }
      int64_t wait_ns = -1;
      if (phase == kRun && cfg_.rate > 0) {
        // Issue every request whose intended time has come, round-robin.
        for (;;) {
          int64_t due = t0 + static_cast<int64_t>(offset_ns + interval_ns * static_cast<double>(next_j));
          if (due >= t_end) break;
          if (due > now) {
            wait_ns = due - now;
            break;
          }
          Conn* target = nullptr;
          for (size_t k = 0; k < conns_.size() && !target; k++) {
            Conn& c = conns_[(rr + k) % conns_.size()];
            if (c.state != kDead && c.active) target = &c;
          }
          if (!target) break;
          rr = (static_cast<size_t>(target - conns_.data()) + 1) % conns_.size();
          target->stamps.push_back(due);
          outstanding_++;
          next_j++;
          if (target->state == kOpen) Pump(*target);
        }
      }
      if (phase == kRun && now < t_end) {
        int64_t left = t_end - now;
        if (wait_ns < 0 || left < wait_ns) wait_ns = left;
      } else if (phase != kConnect) {
        // The run is over: wait for answers until the drain deadline, then
        // idle until the coordinator says stop (it wakes us).
        int64_t left = sh_->t_drain_end.load(std::memory_order_relaxed) - now;
        wait_ns = outstanding_ > 0 && left > 0 ? left : -1;
      }
      if (next_deadline_ != INT64_MAX) {
        int64_t left = std::max<int64_t>(next_deadline_ - now, 0);
        if (wait_ns < 0 || left < wait_ns) wait_ns = left;
      }
      // Said before blocking, once this iteration has seen the drain phase: from
      // kDrain on nothing new is issued. (Said during the run, a moment with
      // nothing in flight would leave the flag true while a request issued
      // next waits for its answer, and the coordinator would stop early with
      // that request unanswered.)
      drained_.store(phase >= kDrain && outstanding_ == 0, std::memory_order_relaxed);
      int n = Wait(evs.data(), static_cast<int>(evs.size()), wait_ns);
      for (int i = 0; i < n; i++) {
        Conn* c = static_cast<Conn*>(evs[i].data.ptr);
        if (!c) {
          uint64_t v;
          (void)!read(wake_, &v, sizeof v);
          continue;
        }
        OnEvent(*c, evs[i].events);
      }
    }
    Finish();
  }

  int Wait(epoll_event* evs, int cap, int64_t wait_ns) {
    if (wait_ns < 0) return epoll_wait(ep_, evs, cap, -1);
#ifdef SYS_epoll_pwait2
    if (have_pwait2_) {
      timespec ts = {static_cast<time_t>(wait_ns / 1000000000), static_cast<long>(wait_ns % 1000000000)};
      long r = syscall(SYS_epoll_pwait2, ep_, evs, cap, &ts, nullptr, 0);
      if (r >= 0 || errno != ENOSYS) return static_cast<int>(r);
      have_pwait2_ = false;
    }
#endif
    return epoll_wait(ep_, evs, cap, static_cast<int>((wait_ns + 999999) / 1000000));
  }

  void StartConnect(Conn& c) {
    sockaddr_storage dst = {};
    socklen_t dlen;
    auto* d4 = reinterpret_cast<sockaddr_in*>(&dst);
    auto* d6 = reinterpret_cast<sockaddr_in6*>(&dst);
    int domain;
    if (inet_pton(AF_INET, cfg_.host.c_str(), &d4->sin_addr) == 1) {
      d4->sin_family = AF_INET;
      d4->sin_port = htons(cfg_.port);
      dlen = sizeof *d4;
      domain = AF_INET;
    } else if (inet_pton(AF_INET6, cfg_.host.c_str(), &d6->sin6_addr) == 1) {
      d6->sin6_family = AF_INET6;
      d6->sin6_port = htons(cfg_.port);
      dlen = sizeof *d6;
      domain = AF_INET6;
    } else {
      return ConnectFailed(c, EINVAL, "inet_pton");
    }
    c.fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) return ConnectFailed(c, errno, "socket");
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c.faulty) {
      c.fault = kinds_[kind_next_];
      kind_next_ = (kind_next_ + 1) % kinds_.size();
      // A slow reader has small socket buffers (set before connect, so the
      // window is offered that way); every kDeepEvery-th one floods
      // fault_deep_flood bytes, more than the server's own autotuned socket
      // buffers take (2.6-9 MB on loopback, measured), so that the server
      // has to stop reading it (backpressure) and resume.
      if (c.fault == kFaultSlowRead) {
        int small = kSlowReaderBuf;
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        setsockopt(c.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        c.deep = slow_count_++ % kDeepEvery == 0;  // the first of each thread, then every kDeepEvery-th
      }
    }
    // Spread over 127.0.0.1 .. 127.0.0.N: each source address has its own
    // ephemeral port range. The port is picked at connect time.
    if (domain == AF_INET && (ntohl(d4->sin_addr.s_addr) >> 24) == 127 && cfg_.sources > 1) {
      setsockopt(c.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
      sockaddr_in src = {};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl(0x7f000001u + static_cast<uint32_t>(c.id % cfg_.sources));
      if (bind(c.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) < 0) return ConnectFailed(c, errno, "bind");
    }
    epoll_event e = {};
    e.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    e.data.ptr = &c;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, c.fd, &e) < 0) return ConnectFailed(c, errno, "epoll_ctl");
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&dst), dlen) < 0 && errno != EINPROGRESS)
      return ConnectFailed(c, errno, "connect");
  }

  void ConnectFailed(Conn& c, int err, const char* call) {
    if (c.gen > 0) {
      // A replacement connection of a faulty slot: counted apart, tried again later.
      totals.reconnect_errors++;
      if (totals.first_connect_error.empty())
        totals.first_connect_error = std::string("reconnect: ") + call + ": " + ErrName(err) + " (" + strerror(err) + ")";
      Kill(c);
      SetTimer(c, kTimerReplace, NowNs() + 100000000);  // 100 ms
      return;
    }
    totals.connect_errors++;
    if (totals.first_connect_error.empty()) {
      char src[32] = "";
      if (cfg_.sources > 1) snprintf(src, sizeof src, " from 127.0.0.%d", 1 + c.id % cfg_.sources);
      totals.first_connect_error = std::string(call) + " " + cfg_.host + ":" + std::to_string(cfg_.port) + src +
                                   ": " + ErrName(err) + " (" + strerror(err) + ")";
    }
    Kill(c);
    live.resolved.fetch_add(1, std::memory_order_relaxed);
    live.errors.fetch_add(1, std::memory_order_relaxed);
  }

  void Kill(Conn& c) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
    c.state = kDead;
    outstanding_ -= c.stamps.size();
    totals.unanswered += c.stamps.size();
    c.stamps.clear();
    c.inflight = 0;
    c.stalled = false;
    if (c.fault_pending) {
      c.fault_pending = false;
      outstanding_--;
    }
    // A faulty slot gets a new connection (from the timers, never inside an event batch).
    if (c.faulty) SetTimer(c, kTimerReplace, 0);
  }

  void Fail(Conn& c, uint64_t* counter, const std::string& why) {
    (*counter)++;
    if (totals.first_error.empty()) totals.first_error = "connection " + std::to_string(c.id) + ": " + why;
    live.errors.fetch_add(1, std::memory_order_relaxed);
    Kill(c);
  }

  void OnEvent(Conn& c, uint32_t ev) {
    if (c.state == kDead) return;
    if (c.state == kConnecting) {
      if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) return ConnectFailed(c, err, "connect");
      c.state = kOpen;
      c.opened = true;
      if (c.gen > 0) {
        totals.reconnects++;
      } else {
        totals.connected++;
        live.connected.fetch_add(1, std::memory_order_relaxed);
        live.resolved.fetch_add(1, std::memory_order_relaxed);
      }
      int phase = sh_->phase.load(std::memory_order_acquire);
      if (phase == kRun && cfg_.rate <= 0 && c.active) Fill(c, NowNs());
    }
    if (ev & EPOLLOUT) c.writable = true;
    // A slow reader reads nothing while stalled (its EndStall reads everything).
    if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c.stalled)
      Receive(c, ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
    if (c.state == kOpen) Pump(c);
  }

  // Closed loop: keep `depth` requests in flight while the run lasts.
  void Fill(Conn& c, int64_t now) {
    if (c.faulty && c.fstate == kFaultNone) ArmFault(c, now);
    while (c.stamps.size() < static_cast<size_t>(cfg_.depth)) {
      c.stamps.push_back(now);
      outstanding_++;
    }
    Pump(c);
  }

  // Writes issued requests into the send stream (up to `depth` in flight),
  // then sends what the socket takes.
  void Pump(Conn& c) {
    while (c.inflight < c.stamps.size() && c.inflight < static_cast<uint32_t>(cfg_.depth)) {
      c.inflight++;
      if (cfg_.http) {
        bool work = false;
        if (cfg_.work_ratio > 0) {
          double k = static_cast<double>(c.issued);
          work = std::floor((k + 1) * cfg_.work_ratio + c.work_phase) != std::floor(k * cfg_.work_ratio + c.work_phase);
        }
        if (work) totals.work_requests++;
        c.out += work ? work_req_ : hello_req_;
      } else {
        c.send_target += static_cast<uint64_t>(cfg_.size);
      }
      c.issued++;
    }
    if (!c.writable) return;
    if (cfg_.http) {
      while (c.out_off < c.out.size()) {
        ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
        if (n < 0) return SendError(c);
        c.out_off += n;
        totals.bytes_sent += n;
      }
      c.out.clear();
      c.out_off = 0;
    } else {
      const uint8_t* table = PatternTable();
      while (c.send_off < c.send_target) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(c.send_target - c.send_off, kMaxChunk));
        ssize_t n = send(c.fd, table + (c.base + c.send_off) % kPeriod, chunk, MSG_NOSIGNAL);
        if (n < 0) return SendError(c);
        c.send_off += n;
        totals.bytes_sent += n;
      }
      if (c.shut_pending) {
        c.shut_pending = false;
        if (shutdown(c.fd, SHUT_WR) < 0) return Fail(c, &totals.fault_incomplete, std::string("half-close: shutdown: ") + ErrName(errno));
      }
    }
  }

  void SendError(Conn& c) {
    if (errno == EAGAIN) {
      c.writable = false;  // edge-triggered EPOLLOUT brings us back
      return;
    }
    if (errno == EINTR) return;
    Fail(c, &totals.resets, std::string("send: ") + ErrName(errno));  // ECONNRESET, EPIPE
  }

  // Reads until drained. A short read means drained (a later arrival raises a
  // new edge), unless the peer hung up: then read on to the end of file.
  void Receive(Conn& c, bool hangup) {
    for (;;) {
      ssize_t n = recv(c.fd, buf_.get(), kMaxChunk, 0);
      if (n > 0) {
        totals.bytes_received += n;
        if (!Verify(c, buf_.get(), static_cast<size_t>(n))) return;
        if (c.fault_pending && c.fault == kFaultSlowRead && c.recv_off == c.send_target) {
          // The slow reader got every byte back: it closes (nothing unread, a clean FIN).
          totals.fault_completed++;
          return Kill(c);
        }
        if (static_cast<size_t>(n) < kMaxChunk && !hangup) return;
        continue;
      }
      if (n == 0 && c.fault_pending && c.fault == kFaultHalfClose) {
        // The server's FIN after our half-close: every byte must be back by now.
        if (c.recv_off == c.send_target) {
          totals.fault_completed++;
        } else {
          totals.fault_incomplete++;
          if (totals.first_error.empty())
            totals.first_error = "connection " + std::to_string(c.id) + " (half-closed): the server closed after echoing " +
                                 std::to_string(c.recv_off) + " of " + std::to_string(c.send_target) + " bytes";
        }
        return Kill(c);
      }
      if (n == 0) {
        totals.server_closes++;
        if (!c.stamps.empty() && totals.first_error.empty())
          totals.first_error = "connection " + std::to_string(c.id) + ": closed by the server with " +
                               std::to_string(c.stamps.size()) + " requests unanswered";
        return Kill(c);
      }
      if (errno == EAGAIN) return;
      if (errno == EINTR) continue;
      return Fail(c, &totals.resets, std::string("recv: ") + ErrName(errno));
    }
  }

  bool Verify(Conn& c, const char* p, size_t n) {
    int64_t now = NowNs();
    if (cfg_.http) {
      std::string why;
      bool ok = c.parser.Feed(p, n, &why, [&](size_t bytes) {
        totals.bytes_verified += bytes;
        if (c.inflight == 0) {
          why = "a response nobody asked for";
          return;
        }
        Complete(c, now);
      });
      if (!ok || !why.empty()) {
        Fail(c, &totals.verify_errors, why);
        return false;
      }
      return true;
    }
    if (c.recv_off + n > c.send_off) {
      Fail(c, &totals.verify_errors,
           "echo returned " + std::to_string(c.recv_off + n - c.send_off) + " more bytes than were sent");
      return false;
    }
    const uint8_t* want = PatternTable() + (c.base + c.recv_off) % kPeriod;
    size_t good = n;
    if (memcmp(p, want, n) != 0) {
      good = 0;
      while (static_cast<uint8_t>(p[good]) == want[good]) good++;
    }
    totals.bytes_verified += good;
    if (c.faulty) totals.fault_bytes_verified += good;
    else totals.healthy_bytes_verified += good;
    c.recv_off += good;
    // Requests whose bytes all came back intact count, even just before a bad byte.
    const uint64_t size = static_cast<uint64_t>(cfg_.size);
    while (c.inflight > 0 && c.recv_off >= (c.answered + 1) * size) Complete(c, now);
    if (good < n) {
      char msg[160];
      snprintf(msg, sizeof msg, "echo byte %llu: expected 0x%02x, got 0x%02x", static_cast<unsigned long long>(c.recv_off),
               want[good], static_cast<uint8_t>(p[good]));
      Fail(c, &totals.verify_errors, msg);
      return false;
    }
    return true;
  }

  void Complete(Conn& c, int64_t now) {
    int64_t start = c.stamps.front();
    c.stamps.pop_front();
    c.inflight--;
    c.answered++;
    outstanding_--;
    if (now < sh_->t_measure.load(std::memory_order_relaxed)) {
      totals.warmup_completed++;  // answered during the warm-up: verified, not measured
    } else {
      hist.Record(static_cast<uint64_t>(std::max<int64_t>(now - start, 0)));
      totals.completed++;
      if (now <= sh_->t_end.load(std::memory_order_relaxed)) totals.in_window++;
    }
    live.completed.fetch_add(1, std::memory_order_relaxed);
    if (cfg_.rate <= 0 && sh_->phase.load(std::memory_order_relaxed) == kRun && now < sh_->t_end.load(std::memory_order_relaxed)) {
      c.stamps.push_back(now);
      outstanding_++;
    }
  }

  void Finish() {
    for (Conn& c : conns_) {
      if (c.faulty) {
        if (c.fault_pending) {
          totals.fault_incomplete++;
          if (totals.first_error.empty())
            totals.first_error = "connection " + std::to_string(c.id) + " (" + FaultName(c.fault) + "): " +
                                 std::to_string(c.send_target - c.recv_off) + " bytes not echoed when the run ended";
        }
      } else if (c.opened) {
        totals.healthy_conns++;
        if (c.state == kDead) totals.healthy_failed++;
        else totals.healthy_bytes_lost += c.send_off - c.recv_off;
      }
      if (c.state == kConnecting) {
        totals.connect_errors++;
        if (totals.first_connect_error.empty())
          totals.first_connect_error = "connect " + cfg_.host + ":" + std::to_string(cfg_.port) + ": not connected before the run ended";
      }
      if (c.state != kDead) {
        totals.unanswered += c.stamps.size();
        c.stamps.clear();
      }
      if (c.answered == 0 && c.issued > 0 && !c.faulty) totals.idle_conns++;
      if (c.fd >= 0) close(c.fd);
      c.fd = -1;
    }
  }

  // ---- faults ---------------------------------------------------------------------

  static const char* FaultName(unsigned kind) {
    switch (kind) {
      case kFaultReset: return "reset";
      case kFaultHalfClose: return "half-close";
      case kFaultSlowRead: return "slow reader";
      case kFaultVanish: return "vanish";
    }
    return "none";
  }

  uint64_t Rand() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 7;
    rng_ ^= rng_ << 17;
    return rng_;
  }

  void SetTimer(Conn& c, TimerKind kind, int64_t at) {
    c.timer = kind;
    c.deadline = at;
    if (at < next_deadline_) next_deadline_ = at;
  }

  void RunTimers(int64_t now, int phase) {
    next_deadline_ = INT64_MAX;
    for (Conn* c : faulty_) {
      if (c->timer != kTimerNone && c->deadline <= now) {
        TimerKind k = c->timer;
        c->timer = kTimerNone;
        OnTimer(*c, k, now, phase);
      }
      if (c->timer != kTimerNone && c->deadline < next_deadline_) next_deadline_ = c->deadline;
    }
  }

  bool Running(int64_t now, int phase) const {
    return phase == kRun && now < sh_->t_end.load(std::memory_order_relaxed);
  }

  void OnTimer(Conn& c, TimerKind kind, int64_t now, int phase) {
    if (kind == kTimerFault) {
      if (c.state == kOpen && c.fstate == kFaultArmed && Running(now, phase)) StartFault(c, now);
    } else if (kind == kTimerStallEnd) {
      if (c.state == kOpen && c.stalled) {
        c.stalled = false;
        // Part of the flood is still unsent: while this client did not read,
        // the server stopped reading it (backpressure) or fell behind.
        if (c.send_off < c.send_target) totals.slow_blocked++;
        Receive(c, true);  // reads until EAGAIN: no edge will come for what waited
        if (c.state == kOpen) Pump(c);
      }
    } else if (kind == kTimerReplace) {
      if (c.state == kDead && Running(now, phase)) Replace(c);
    }
  }

  void ArmFault(Conn& c, int64_t now) {
    c.fstate = kFaultArmed;
    int64_t delay = cfg_.fault_delay_ms > 0 ? static_cast<int64_t>(Rand() % (static_cast<uint64_t>(cfg_.fault_delay_ms) * 1000 + 1)) * 1000 : 0;
    SetTimer(c, kTimerFault, now + delay);
  }

  void StartFault(Conn& c, int64_t now) {
    // Its requests stop being requests: what follows is the fault's bytes.
    outstanding_ -= c.stamps.size();
    c.stamps.clear();
    c.inflight = 0;
    c.fstate = kFaultActive;
    const uint64_t size = static_cast<uint64_t>(cfg_.size);
    switch (c.fault) {
      case kFaultReset: {
        totals.faults[0]++;
        linger l = {1, 0};  // close() sends RST and drops whatever is queued either way
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        return Kill(c);
      }
      case kFaultHalfClose:
        totals.faults[1]++;
        c.fault_pending = true;
        outstanding_++;
        c.send_target += size;
        c.shut_pending = true;
        return Pump(c);
      case kFaultSlowRead:
        totals.faults[2]++;
        c.fault_pending = true;
        outstanding_++;
        c.stalled = true;
        c.send_target += c.deep ? cfg_.fault_deep_flood : cfg_.fault_flood;
        SetTimer(c, kTimerStallEnd, now + static_cast<int64_t>(cfg_.fault_stall_ms) * 1000000);
        return Pump(c);
      case kFaultVanish:
        totals.faults[3]++;
        c.send_target += size;  // a request whose reply nobody will read
        Pump(c);
        if (c.state == kOpen) Kill(c);
        return;
    }
  }

  // A new connection for a faulty slot.
  void Replace(Conn& c) {
    c.gen++;
    c.base = ((static_cast<uint64_t>(c.id) + static_cast<uint64_t>(c.gen) * 40503u) * 2654435761ull) % kPeriod;
    c.state = kConnecting;
    c.writable = false;
    c.inflight = 0;
    c.stamps.clear();
    c.issued = c.answered = 0;
    c.send_off = c.send_target = c.recv_off = 0;
    c.opened = false;
    c.fault = 0;
    c.fstate = kFaultNone;
    c.stalled = c.deep = c.shut_pending = c.fault_pending = false;
    StartConnect(c);
  }

 public:
  std::atomic<bool> drained_{false};  // nothing issued is still unanswered

 private:
  Shared* sh_;
  const LoadConfig& cfg_;
  int index_, nthreads_;
  int ep_ = -1, wake_ = -1;
  bool have_pwait2_ = true;
  std::thread thread_;
  std::vector<Conn> conns_;
  std::unique_ptr<char[]> buf_;
  std::string hello_req_, work_req_;
  int64_t outstanding_ = 0;  // issued and unanswered, all connections (+1 per fault waiting for its bytes)
  std::vector<Conn*> faulty_;
  std::vector<unsigned> kinds_;
  size_t kind_next_ = 0;
  uint64_t slow_count_ = 0;
  uint64_t rng_ = 1;
  int64_t next_deadline_ = INT64_MAX;
};

// ---- the coordinator and the JS edge ----------------------------------------------

struct Progress {
  double elapsed_s;
  int phase;
  uint64_t connected, completed, errors;
  double rps;
};

struct Result {
  int rc = 0;  // -errno when the run could not start
  const char* syscall = "";
  double connect_ms = 0, duration_s = 0;
  Totals totals;
  Histogram hist;
  bool cancelled = false;
};

struct Run {
  Shared shared;
  Napi::ThreadSafeFunction tsfn;
  Napi::Promise::Deferred deferred;
  std::thread coordinator;
  std::mutex mu;
  std::condition_variable cv;
  explicit Run(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  void Cancel() {
    shared.cancelled.store(true);
    std::lock_guard<std::mutex> lk(mu);
    cv.notify_all();
  }
  void EndWarmup() {
    shared.end_warmup.store(true);
    std::lock_guard<std::mutex> lk(mu);
    cv.notify_all();
  }
  // Sleeps until `until` (monotonic ns) or cancellation (or, with
  // `warmup_end`, until JS ends the warm-up).
  void SleepUntil(int64_t until, bool warmup_end = false) {
    std::unique_lock<std::mutex> lk(mu);
    while (!shared.cancelled.load() && !(warmup_end && shared.end_warmup.load()) && NowNs() < until)
      cv.wait_for(lk, std::chrono::nanoseconds(std::max<int64_t>(until - NowNs(), 0)));
  }
};

Napi::Object ResultObject(Napi::Env env, const Result& r) {
  Napi::Object o = Napi::Object::New(env);
  auto n = [&](const char* k, double v) { o.Set(k, Num(env, v)); };
  const Totals& t = r.totals;
  n("connectMs", r.connect_ms);
  n("durationS", r.duration_s);
  n("requests", static_cast<double>(t.completed));
  n("requestsInWindow", static_cast<double>(t.in_window));
  n("rps", r.duration_s > 0 ? static_cast<double>(t.in_window) / r.duration_s : 0);
  n("connected", static_cast<double>(t.connected));
  n("connectErrors", static_cast<double>(t.connect_errors));
  n("resets", static_cast<double>(t.resets));
  n("serverCloses", static_cast<double>(t.server_closes));
  n("verifyErrors", static_cast<double>(t.verify_errors));
  n("unanswered", static_cast<double>(t.unanswered));
  n("idleConns", static_cast<double>(t.idle_conns));
  n("workRequests", static_cast<double>(t.work_requests));
  n("activeConns", static_cast<double>(t.active_conns));
  n("warmupRequests", static_cast<double>(t.warmup_completed));
  n("bytesSent", static_cast<double>(t.bytes_sent));
  n("bytesReceived", static_cast<double>(t.bytes_received));
  n("bytesVerified", static_cast<double>(t.bytes_verified));
  n("healthyConns", static_cast<double>(t.healthy_conns));
  n("healthyFailed", static_cast<double>(t.healthy_failed));
  n("healthyBytesVerified", static_cast<double>(t.healthy_bytes_verified));
  n("healthyBytesLost", static_cast<double>(t.healthy_bytes_lost));
  Napi::Object f = Napi::Object::New(env);
  f.Set("reset", Num(env, static_cast<double>(t.faults[0])));
  f.Set("halfClose", Num(env, static_cast<double>(t.faults[1])));
  f.Set("slowRead", Num(env, static_cast<double>(t.faults[2])));
  f.Set("vanish", Num(env, static_cast<double>(t.faults[3])));
  f.Set("reconnects", Num(env, static_cast<double>(t.reconnects)));
  f.Set("reconnectErrors", Num(env, static_cast<double>(t.reconnect_errors)));
  f.Set("completed", Num(env, static_cast<double>(t.fault_completed)));
  f.Set("incomplete", Num(env, static_cast<double>(t.fault_incomplete)));
  f.Set("bytesVerified", Num(env, static_cast<double>(t.fault_bytes_verified)));
  f.Set("slowBlocked", Num(env, static_cast<double>(t.slow_blocked)));
  o.Set("faults", f);
  o.Set("cancelled", Napi::Boolean::New(env, r.cancelled));
  o.Set("firstError", t.first_error.empty() ? env.Null() : Napi::String::New(env, t.first_error));
  o.Set("firstConnectError",
        t.first_connect_error.empty() ? env.Null() : Napi::String::New(env, t.first_connect_error));
  Napi::Object lat = Napi::Object::New(env);
  const Histogram& h = r.hist;
  auto us = [](double ns) { return std::round(ns / 10.0) / 100.0; };  // microseconds, 2 decimals
  lat.Set("count", Num(env, static_cast<double>(h.count())));
  lat.Set("min", Num(env, us(static_cast<double>(h.min()))));
  lat.Set("mean", Num(env, us(h.mean())));
  lat.Set("p50", Num(env, us(static_cast<double>(h.Percentile(50)))));
  lat.Set("p90", Num(env, us(static_cast<double>(h.Percentile(90)))));
  lat.Set("p99", Num(env, us(static_cast<double>(h.Percentile(99)))));
  lat.Set("p999", Num(env, us(static_cast<double>(h.Percentile(99.9)))));
  lat.Set("max", Num(env, us(static_cast<double>(h.max()))));
  o.Set("latencyUs", lat);
  return o;
}

void Coordinate(std::shared_ptr<Run> run) {
  Shared& sh = run->shared;
  const LoadConfig& cfg = sh.cfg;
  auto result = std::make_shared<Result>();
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < cfg.threads; i++) {
    workers.emplace_back(new Worker(&sh, i, cfg.threads));
    int rc = workers.back()->Init();
    if (rc < 0) {
      result->rc = rc;
      result->syscall = "epoll_create1";
      break;
    }
  }
  auto progress = [&](int64_t t_ref, uint64_t* last_done, int64_t* last_t) {
    uint64_t connected = 0, done = 0, errors = 0;
    for (auto& w : workers) {
      connected += w->live.connected.load(std::memory_order_relaxed);
      done += w->live.completed.load(std::memory_order_relaxed);
      errors += w->live.errors.load(std::memory_order_relaxed);
    }
    int64_t now = NowNs();
    int phase = sh.phase.load();
    if (phase == kRun && now < sh.t_measure.load()) phase = kWarmupReport;
    auto* p = new Progress{static_cast<double>(now - t_ref) / 1e9, phase, connected, done, errors,
                           now > *last_t ? static_cast<double>(done - *last_done) * 1e9 / static_cast<double>(now - *last_t) : 0};
    *last_done = done;
    *last_t = now;
    napi_status st = run->tsfn.NonBlockingCall(p, [](Napi::Env env, Napi::Function cb, Progress* p) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("elapsedS", Num(env, p->elapsed_s));
      static const char* kNames[] = {"connect", "run", "drain", "stop", "warmup"};
      o.Set("phase", Napi::String::New(env, kNames[p->phase]));
      o.Set("connected", Num(env, static_cast<double>(p->connected)));
      o.Set("requests", Num(env, static_cast<double>(p->completed)));
      o.Set("errors", Num(env, static_cast<double>(p->errors)));
      o.Set("rps", Num(env, p->rps));
      delete p;
      if (!cb.IsEmpty() && cb.IsFunction()) cb.Call({o});
    });
    if (st != napi_ok) delete p;
  };

  if (result->rc == 0) {
    const int64_t launch = NowNs();
    for (auto& w : workers) w->Start();
    // Connect phase: until every connection is connected or failed, or the timeout.
    const int64_t connect_deadline = launch + static_cast<int64_t>(cfg.connect_timeout_s * 1e9);
    const int64_t step = static_cast<int64_t>(cfg.progress_ms) * 1000000;
    uint64_t last_done = 0;
    int64_t last_t = launch, next_progress = launch + step;
    for (;;) {
      uint64_t resolved = 0;
      for (auto& w : workers) resolved += w->live.resolved.load(std::memory_order_relaxed);
      int64_t now = NowNs();
      if (resolved >= static_cast<uint64_t>(cfg.conns) || now >= connect_deadline || sh.cancelled) break;
      if (now >= next_progress) {
        progress(launch, &last_done, &last_t);
        next_progress += step;
      }
      run->SleepUntil(std::min(now + 2000000, connect_deadline));  // 2 ms
    }
    int64_t t0 = NowNs();
    result->connect_ms = static_cast<double>(t0 - launch) / 1e6;
    const int64_t t_measure = t0 + static_cast<int64_t>(cfg.warmup_s * 1e9);
    const int64_t t_end = t_measure + static_cast<int64_t>(cfg.duration_s * 1e9);
    sh.t_start.store(t0);
    sh.t_measure.store(t_measure);
    sh.t_end.store(t_end);
    sh.t_drain_end.store(t_end + static_cast<int64_t>(cfg.drain_s * 1e9));
    sh.phase.store(kRun, std::memory_order_release);
    for (auto& w : workers) w->Wake();
    progress(launch, &last_done, &last_t);  // every phase change is reported
    last_done = 0;
    last_t = t0;
    next_progress = t0 + step;
    bool measuring = t_measure <= t0;
    while (!sh.cancelled && NowNs() < sh.t_end.load()) {
      const int64_t te = sh.t_end.load();
      run->SleepUntil(std::min(measuring ? next_progress : std::min(next_progress, t_measure), te), !measuring);
      if (!measuring && (NowNs() >= t_measure || sh.end_warmup.load())) {
        if (NowNs() < t_measure) {
          // Ended early from JS: the measured window starts now.
          const int64_t now = NowNs();
          sh.t_measure.store(now);
          sh.t_end.store(now + static_cast<int64_t>(cfg.duration_s * 1e9));
          sh.t_drain_end.store(sh.t_end.load() + static_cast<int64_t>(cfg.drain_s * 1e9));
          for (auto& w : workers) w->Wake();
        }
        measuring = true;
        progress(t0, &last_done, &last_t);  // the warm-up is over: a phase change
        continue;
      }
      if (NowNs() >= next_progress && NowNs() < sh.t_end.load()) {
        progress(t0, &last_done, &last_t);
        next_progress += step;
      }
    }
    int64_t stopped = std::min(NowNs(), sh.t_end.load());
    result->duration_s = static_cast<double>(std::max<int64_t>(stopped - sh.t_measure.load(), 0)) / 1e9;
    result->cancelled = sh.cancelled.load();
    // Drain: wait for the answers still in flight (bounded).
    sh.phase.store(kDrain, std::memory_order_release);
    for (auto& w : workers) w->Wake();
    progress(t0, &last_done, &last_t);
    const int64_t drain_end = sh.t_drain_end.load();
    while (!sh.cancelled && NowNs() < drain_end) {
      bool all = true;
      for (auto& w : workers) all = all && w->drained_.load(std::memory_order_relaxed);
      if (all) break;
      run->SleepUntil(std::min(NowNs() + 2000000, drain_end));
    }
    sh.phase.store(kStop, std::memory_order_release);
    for (auto& w : workers) w->Wake();
    for (auto& w : workers) w->Join();
    for (auto& w : workers) {
      result->totals.Add(w->totals);
      result->hist.Merge(w->hist);
    }
  }
  workers.clear();  // closes every socket before JS hears of the result

  run->tsfn.BlockingCall(result.get(), [run, result](Napi::Env env, Napi::Function, Result* r) {
    if (r->rc < 0) {
      Napi::Object e = Napi::Object::New(env);
      e.Set("rc", Num(env, r->rc));
      e.Set("syscall", Napi::String::New(env, r->syscall));
      run->deferred.Resolve(e);
    } else {
      run->deferred.Resolve(ResultObject(env, *r));
    }
  });
  run->tsfn.Release();
}

double NumOf(Napi::Object o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : dflt;
}

// loadRun(config, onProgress) -> {done: Promise<result | {rc, syscall}>, cancel(), endWarmup()}
// config: {host, port, conns, size, depth, durationS, rate, workUs, workRatio,
// protocol: 0 echo | 1 http, threads, sources, connectTimeoutS, drainS, progressMs,
// activeRatio, warmupS}
// (validated by lib/lab/load.ts).
Napi::Value LoadRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "config must be an object").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object c = info[0].As<Napi::Object>();
  auto run = std::make_shared<Run>(env);
  LoadConfig& cfg = run->shared.cfg;
  Napi::Value host = c.Get("host");
  if (host.IsString()) cfg.host = host.As<Napi::String>().Utf8Value();
  cfg.port = static_cast<int>(NumOf(c, "port", 0));
  cfg.conns = std::max(1, static_cast<int>(NumOf(c, "conns", 1)));
  cfg.size = std::max(1, static_cast<int>(NumOf(c, "size", 64)));
  cfg.depth = std::max(1, static_cast<int>(NumOf(c, "depth", 1)));
  cfg.duration_s = std::min(std::max(NumOf(c, "durationS", 1), 0.0), 86400.0);
  cfg.warmup_s = std::min(std::max(NumOf(c, "warmupS", 0), 0.0), 86400.0);
  cfg.rate = std::max(NumOf(c, "rate", 0), 0.0);
  cfg.work_us = std::max(0, static_cast<int>(NumOf(c, "workUs", 0)));
  cfg.work_ratio = std::min(std::max(NumOf(c, "workRatio", 0), 0.0), 1.0);
  cfg.active_ratio = std::min(std::max(NumOf(c, "activeRatio", 1), 0.0), 1.0);
  cfg.http = NumOf(c, "protocol", 0) == 1;
  cfg.threads = std::min(std::max(1, static_cast<int>(NumOf(c, "threads", 1))), cfg.conns);
  cfg.sources = std::min(std::max(1, static_cast<int>(NumOf(c, "sources", 1))), 254);
  cfg.connect_timeout_s = std::min(std::max(NumOf(c, "connectTimeoutS", 10), 0.0), 600.0);
  cfg.drain_s = std::min(std::max(NumOf(c, "drainS", 2), 0.0), 600.0);
  cfg.progress_ms = std::max(10, static_cast<int>(NumOf(c, "progressMs", 1000)));
  cfg.fault_ratio = std::min(std::max(NumOf(c, "faultRatio", 0), 0.0), 1.0);
  cfg.fault_kinds = static_cast<unsigned>(std::min(std::max(NumOf(c, "faultKinds", 0), 0.0), 15.0));
  if (cfg.fault_ratio == 0 || cfg.http || cfg.rate > 0) cfg.fault_kinds = 0;  // echo, closed loop only
  cfg.fault_delay_ms = std::min(std::max(0, static_cast<int>(NumOf(c, "faultDelayMs", 1000))), 3600000);
  cfg.fault_stall_ms = std::min(std::max(0, static_cast<int>(NumOf(c, "faultStallMs", 500))), 3600000);
  cfg.fault_flood = static_cast<uint64_t>(std::min(std::max(NumOf(c, "faultFloodBytes", 128 * 1024), 0.0), 1e9));
  cfg.fault_deep_flood = static_cast<uint64_t>(std::min(std::max(NumOf(c, "faultDeepFloodBytes", 8 * 1024 * 1024), 0.0), 1e10));
  cfg.fault_seed = static_cast<uint64_t>(std::min(std::max(NumOf(c, "faultSeed", 1), 0.0), 4294967295.0));

  Napi::Function cb = info.Length() > 1 && info[1].IsFunction() ? info[1].As<Napi::Function>()
                                                                 : Napi::Function::New(env, [](const Napi::CallbackInfo&) {});
  run->tsfn = Napi::ThreadSafeFunction::New(env, cb, "iomux.loadRun", 0, 1, [run](Napi::Env) {
    if (run->coordinator.joinable()) run->coordinator.join();
  });
  run->coordinator = std::thread(Coordinate, run);

  Napi::Object handle = Napi::Object::New(env);
  handle.Set("done", run->deferred.Promise());
  auto* keep = new std::shared_ptr<Run>(run);
  Napi::Function cancel = Napi::Function::New(
      env, [](const Napi::CallbackInfo& ci) { (*static_cast<std::shared_ptr<Run>*>(ci.Data()))->Cancel(); }, "cancel",
      keep);
  cancel.AddFinalizer([](Napi::Env, std::shared_ptr<Run>* p) { delete p; }, keep);
  handle.Set("cancel", cancel);
  auto* keep2 = new std::shared_ptr<Run>(run);
  Napi::Function end_warmup = Napi::Function::New(
      env, [](const Napi::CallbackInfo& ci) { (*static_cast<std::shared_ptr<Run>*>(ci.Data()))->EndWarmup(); },
      "endWarmup", keep2);
  end_warmup.AddFinalizer([](Napi::Env, std::shared_ptr<Run>* p) { delete p; }, keep2);
  handle.Set("endWarmup", end_warmup);
  return handle;
}

}  // namespace

void InitLoadgen(Napi::Env env, Napi::Object exports) {
  exports.Set("loadRun", Napi::Function::New<LoadRun>(env, "loadRun"));
}

}  // namespace iomux

#else  // not Linux

namespace iomux {
namespace {
Napi::Value LoadRun(const Napi::CallbackInfo& info) {
  Napi::Error e = Napi::Error::New(info.Env(), "the native load generator needs Linux (epoll)");
  e.Set("errno", Napi::Number::New(info.Env(), -ENOSYS));
  e.ThrowAsJavaScriptException();
  return info.Env().Undefined();
}
}  // namespace

void InitLoadgen(Napi::Env env, Napi::Object exports) {
  exports.Set("loadRun", Napi::Function::New<LoadRun>(env, "loadRun"));
}

}  // namespace iomux

#endif

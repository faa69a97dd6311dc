// The lab's two protocols, shared by every native server (docs/protocols.md):
// echo (bytes back as they arrive) and a minimal HTTP/1.1 (keep-alive,
// pipelining, GET / and GET /work?us=N, 404, 400 then close).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

namespace iomux {
namespace lab {

enum Protocol : int { kEcho = 0, kHttp = 1 };

// The longest request head accepted; beyond it without "\r\n\r\n" is a 400.
constexpr size_t kMaxRequestHead = 8192;
// The largest request body skipped (requests have no body, but one with a
// Content-Length is consumed rather than misparsed).
constexpr uint64_t kMaxRequestBody = 1 << 20;
// The most CPU a /work request may ask for: 10 s.
constexpr uint64_t kMaxWorkUs = 10000000;

extern const char kHelloBody[];  // "Hello, World!"

enum class Route { kHello, kWork, kNotFound, kMethodNotAllowed };

struct HttpRequest {
  Route route = Route::kNotFound;
  uint64_t work_us = 0;
  bool close = false;  // Connection: close, or HTTP/1.0 without keep-alive
};

// Parses the request at buf[0, len). Returns the bytes it occupies (head and
// any Content-Length body) and fills *req; 0 when more bytes are needed;
// -1 when the bytes can never form a valid request (answer 400, then close).
long ParseHttpRequest(const char* buf, size_t len, HttpRequest* req);

// Counters every server keeps; read from JS by stats().
struct ServerStats {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> active{0};
  std::atomic<uint64_t> queued{0};  // thread-pool: accepted, waiting for a worker
  std::atomic<uint64_t> requests{0};  // http requests answered; echo: reads echoed
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> errors{0};  // resets, failed sends, failed thread creation
};

// Consumes every complete request at the front of `in`, appending the
// responses to `out` in order (burning CPU for /work inline). Returns true
// when the connection must be closed once `out` is flushed (Connection:
// close or a 400); `in` is then left empty and later input must be ignored.
bool HandleHttp(std::string& in, std::string& out, ServerStats& stats);

// Busy-waits `us` microseconds on the monotonic clock (the CPU-work request).
void BurnMicros(uint64_t us);

}  // namespace lab
}  // namespace iomux

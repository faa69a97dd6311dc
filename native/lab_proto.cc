// The lab protocols (see lab_proto.h and docs/protocols.md).
#include "lab_proto.h"

#include <strings.h>
#include <time.h>

#include <cstring>

namespace iomux {
namespace lab {

const char kHelloBody[] = "Hello, World!";

namespace {

#define HELLO_HEAD "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
const char kHello[] = HELLO_HEAD "\r\nHello, World!";
const char kHelloClose[] = HELLO_HEAD "Connection: close\r\n\r\nHello, World!";
#define NOT_FOUND_HEAD "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
const char kNotFound[] = NOT_FOUND_HEAD "\r\nNot Found\n";
const char kNotFoundClose[] = NOT_FOUND_HEAD "Connection: close\r\n\r\nNot Found\n";
#define NOT_ALLOWED_HEAD \
  "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n"
const char kNotAllowed[] = NOT_ALLOWED_HEAD "\r\nMethod Not Allowed\n";
const char kNotAllowedClose[] = NOT_ALLOWED_HEAD "Connection: close\r\n\r\nMethod Not Allowed\n";
const char kBadRequest[] =
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
    "Connection: close\r\n\r\nBad Request\n";

// RFC 9110 tchar.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool EqualsNoCase(const char* a, size_t alen, const char* b) {
  size_t blen = strlen(b);
  return alen == blen && strncasecmp(a, b, blen) == 0;
}

void Trim(const char** p, size_t* n) {
  while (*n > 0 && (**p == ' ' || **p == '\t')) ++*p, --*n;
  while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t')) --*n;
}

// Request line "METHOD SP target SP HTTP/1.x"; false when malformed.
bool ParseRequestLine(const char* p, size_t n, const char** method, size_t* mlen, const char** target,
                      size_t* tlen, bool* http10) {
  const char* sp1 = static_cast<const char*>(memchr(p, ' ', n));
  if (!sp1 || sp1 == p) return false;
  *method = p;
  *mlen = sp1 - p;
  for (size_t i = 0; i < *mlen; i++)
    if (!IsTokenChar(p[i])) return false;
  const char* t = sp1 + 1;
  const char* end = p + n;
  const char* sp2 = static_cast<const char*>(memchr(t, ' ', end - t));
  if (!sp2 || sp2 == t || *t != '/') return false;
  for (const char* q = t; q < sp2; q++)
    if (static_cast<unsigned char>(*q) <= 0x20 || *q == 0x7f) return false;
  *target = t;
  *tlen = sp2 - t;
  const char* v = sp2 + 1;
  size_t vlen = end - v;
  if (vlen == 8 && memcmp(v, "HTTP/1.1", 8) == 0) {
    *http10 = false;
  } else if (vlen == 8 && memcmp(v, "HTTP/1.0", 8) == 0) {
    *http10 = true;
  } else {
    return false;
  }
  return true;
}

// "/work?us=N": N decimal, 0..kMaxWorkUs. false when malformed.
bool ParseWork(const char* t, size_t n, uint64_t* us) {
  static const char kPrefix[] = "/work?us=";
  const size_t plen = sizeof kPrefix - 1;
  if (n <= plen || memcmp(t, kPrefix, plen) != 0 || n - plen > 8) return false;
  uint64_t v = 0;
  for (size_t i = plen; i < n; i++) {
    if (t[i] < '0' || t[i] > '9') return false;
    v = v * 10 + (t[i] - '0');
  }
  if (v > kMaxWorkUs) return false;
  *us = v;
  return true;
}

}  // namespace

long ParseHttpRequest(const char* buf, size_t len, HttpRequest* req) {
  // Reject garbage as soon as it shows: the method is a token followed by a space.
  size_t i = 0;
  while (i < len && i <= 32 && IsTokenChar(buf[i])) i++;
  if (i < len && (i == 0 || i > 32 || buf[i] != ' ')) return -1;

  size_t scan = len < kMaxRequestHead ? len : kMaxRequestHead;
  const char* head_end = static_cast<const char*>(memmem(buf, scan, "\r\n\r\n", 4));
  const char* line_end = static_cast<const char*>(memmem(buf, scan, "\r\n", 2));
  const char* method = nullptr;
  const char* target = nullptr;
  size_t mlen = 0, tlen = 0;
  bool http10 = false;
  if (line_end && !ParseRequestLine(buf, line_end - buf, &method, &mlen, &target, &tlen, &http10)) return -1;
  if (!head_end) return len >= kMaxRequestHead ? -1 : 0;

  bool close = false, keep_alive = false, have_length = false;
  uint64_t body = 0;
  const char* p = line_end + 2;
  while (p < head_end + 2) {
    const char* e = static_cast<const char*>(memmem(p, head_end + 2 - p, "\r\n", 2));
    const char* colon = static_cast<const char*>(memchr(p, ':', e - p));
    if (!colon || colon == p) return -1;
    for (const char* q = p; q < colon; q++)
      if (!IsTokenChar(*q)) return -1;
    const char* name = p;
    size_t nlen = colon - p;
    const char* val = colon + 1;
    size_t vlen = e - val;
    Trim(&val, &vlen);
    if (EqualsNoCase(name, nlen, "connection")) {
      // A comma-separated token list.
      size_t s = 0;
      while (s <= vlen) {
        size_t c = s;
        while (c < vlen && val[c] != ',') c++;
        const char* tok = val + s;
        size_t toklen = c - s;
        Trim(&tok, &toklen);
        if (EqualsNoCase(tok, toklen, "close")) close = true;
        if (EqualsNoCase(tok, toklen, "keep-alive")) keep_alive = true;
        s = c + 1;
      }
    } else if (EqualsNoCase(name, nlen, "content-length")) {
      if (vlen == 0 || vlen > 10) return -1;
      uint64_t v = 0;
      for (size_t k = 0; k < vlen; k++) {
        if (val[k] < '0' || val[k] > '9') return -1;
        v = v * 10 + (val[k] - '0');
      }
      if (v > kMaxRequestBody || (have_length && v != body)) return -1;
      have_length = true;
      body = v;
    } else if (EqualsNoCase(name, nlen, "transfer-encoding")) {
      return -1;  // no request bodies beyond Content-Length
    }
    p = e + 2;
  }
  size_t total = (head_end + 4 - buf) + body;
  if (len < total) return 0;

  req->close = close || (http10 && !keep_alive);
  req->work_us = 0;
  if (!(mlen == 3 && memcmp(method, "GET", 3) == 0)) {
    req->route = Route::kMethodNotAllowed;
  } else if (tlen == 1) {
    req->route = Route::kHello;
  } else if (tlen >= 5 && memcmp(target, "/work", 5) == 0 && (tlen == 5 || target[5] == '?')) {
    if (!ParseWork(target, tlen, &req->work_us)) return -1;
    req->route = Route::kWork;
  } else {
    req->route = Route::kNotFound;
  }
  return static_cast<long>(total);
}

bool HandleHttp(std::string& in, std::string& out, ServerStats& stats) {
  size_t off = 0;
  bool close = false;
  while (off < in.size()) {
    HttpRequest r;
    long n = ParseHttpRequest(in.data() + off, in.size() - off, &r);
    if (n == 0) break;
    if (n < 0) {
      out.append(kBadRequest, sizeof kBadRequest - 1);
      stats.bad_requests.fetch_add(1, std::memory_order_relaxed);
      close = true;
      break;
    }
    off += n;
    switch (r.route) {
      case Route::kWork:
        BurnMicros(r.work_us);
        [[fallthrough]];  // the same answer as GET /
      case Route::kHello:
        if (r.close) out.append(kHelloClose, sizeof kHelloClose - 1);
        else out.append(kHello, sizeof kHello - 1);
        break;
      case Route::kNotFound:
        if (r.close) out.append(kNotFoundClose, sizeof kNotFoundClose - 1);
        else out.append(kNotFound, sizeof kNotFound - 1);
        break;
      case Route::kMethodNotAllowed:
        if (r.close) out.append(kNotAllowedClose, sizeof kNotAllowedClose - 1);
        else out.append(kNotAllowed, sizeof kNotAllowed - 1);
        break;
    }
    stats.requests.fetch_add(1, std::memory_order_relaxed);
    if (r.close) {
      close = true;
      break;
    }
  }
  if (close) {
    in.clear();
  } else if (off > 0) {
    in.erase(0, off);
  }
  return close;
}

void BurnMicros(uint64_t us) {
  if (us == 0) return;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const int64_t limit = static_cast<int64_t>(us) * 1000;
  do {
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) < limit);
}

}  // namespace lab
}  // namespace iomux

// Resource probe for the "memory per thread" claim: park N idle threads with
// a chosen stack size so that a sampler can read what they cost (virtual
// size, resident size, kernel stacks). Threads block on one condition
// variable and touch only what the C library and kernel touch themselves.
#include <pthread.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "exports.h"
#include "js_util.h"

namespace iomux {
namespace {

std::mutex g_mu;
std::condition_variable g_cv;
bool g_release = false;
std::vector<pthread_t> g_threads;

void* Park(void*) {
  std::unique_lock<std::mutex> lock(g_mu);
  g_cv.wait(lock, [] { return g_release; });
  return nullptr;
}

// parkThreads(n, stackBytes): threads started (may be < n), or -errno when
// none could be started. stackBytes 0 = the default (RLIMIT_STACK).
Napi::Value ParkThreads(const Napi::CallbackInfo& info) {
  int n = Int(info, 0);
  double stack = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_release = false;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  if (stack > 0) {
    int rc = pthread_attr_setstacksize(&attr, static_cast<size_t>(stack));
    if (rc != 0) {
      pthread_attr_destroy(&attr);
      return Num(info.Env(), -rc);
    }
  }
  int started = 0, err = 0;
  for (int i = 0; i < n; i++) {
    pthread_t t;
    int rc = pthread_create(&t, &attr, Park, nullptr);
    if (rc != 0) {
      err = rc;
      break;
    }
    g_threads.push_back(t);
    started++;
  }
  pthread_attr_destroy(&attr);
  return Num(info.Env(), started == 0 && err != 0 ? -err : started);
}

// releaseThreads(): wakes and joins every parked thread; returns how many.
Napi::Value ReleaseThreads(const Napi::CallbackInfo& info) {
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_release = true;
  }
  g_cv.notify_all();
  size_t n = g_threads.size();
  for (pthread_t t : g_threads) pthread_join(t, nullptr);
  g_threads.clear();
  return Num(info.Env(), static_cast<double>(n));
}

// defaultStackSize(): what a pthread gets when no size is asked for.
Napi::Value DefaultStackSize(const Napi::CallbackInfo& info) {
  pthread_attr_t attr;
  size_t size = 0;
  pthread_attr_init(&attr);
  pthread_attr_getstacksize(&attr, &size);
  pthread_attr_destroy(&attr);
  return Num(info.Env(), static_cast<double>(size));
}

}  // namespace

void InitProbeThreads(Napi::Env env, Napi::Object exports) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("parkThreads", Napi::Function::New<ParkThreads>(env, "parkThreads"));
  o.Set("releaseThreads", Napi::Function::New<ReleaseThreads>(env, "releaseThreads"));
  o.Set("defaultStackSize", Napi::Function::New<DefaultStackSize>(env, "defaultStackSize"));
  exports.Set("probeThreads", o);
}

}  // namespace iomux

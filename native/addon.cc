// Module entry: every native file registers its exports here.
#include <napi.h>

#include "exports.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  iomux::InitPoller(env, exports);
  iomux::InitSys(env, exports);
  iomux::InitProbeThreads(env, exports);
  iomux::InitRing(env, exports);
  iomux::InitLoopEmbed(env, exports);
  iomux::InitLabServe(env, exports);
  iomux::InitLoadgen(env, exports);
  iomux::InitBench(env, exports);
  iomux::InitTestHooks(env, exports);
  iomux::InitSignalPipe(env, exports);
  iomux::InitKqueue(env, exports);
  return exports;
}

NODE_API_MODULE(iomux, Init)

// Each native module file contributes its functions through one Init*
// function; addon.cc calls them all. Adding a file = one line here and one
// call in addon.cc (plus the build files).
#pragma once
#include <napi.h>

namespace iomux {
void InitPoller(Napi::Env env, Napi::Object exports);
void InitSys(Napi::Env env, Napi::Object exports);
void InitProbeThreads(Napi::Env env, Napi::Object exports);
void InitRing(Napi::Env env, Napi::Object exports);
void InitLoopEmbed(Napi::Env env, Napi::Object exports);
void InitLabServe(Napi::Env env, Napi::Object exports);
void InitLoadgen(Napi::Env env, Napi::Object exports);
void InitBench(Napi::Env env, Napi::Object exports);
void InitTestHooks(Napi::Env env, Napi::Object exports);  // after InitSys: adds to exports.sys
void InitSignalPipe(Napi::Env env, Napi::Object exports);
void InitKqueue(Napi::Env env, Napi::Object exports);
}  // namespace iomux

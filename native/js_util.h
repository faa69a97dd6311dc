// Small helpers for the N-API edge. Arguments arrive validated by lib/*.ts;
// these only re-check what would otherwise write out of bounds.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace iomux {

// The bytes behind a TypedArray, DataView or ArrayBuffer; false otherwise.
inline bool GetBytes(const Napi::Value& v, uint8_t** data, size_t* len) {
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    Napi::ArrayBuffer ab = ta.ArrayBuffer();
    *data = static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset();
    *len = ta.ByteLength();
    return true;
  }
  if (v.IsDataView()) {
    Napi::DataView dv = v.As<Napi::DataView>();
    *data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    *len = dv.ByteLength();
    return true;
  }
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    *data = static_cast<uint8_t*>(ab.Data());
    *len = ab.ByteLength();
    return true;
  }
  return false;
}

inline int32_t Int(const Napi::CallbackInfo& info, size_t i, int32_t dflt = 0) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : dflt;
}

inline Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

}  // namespace iomux

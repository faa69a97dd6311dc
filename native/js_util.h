// Small helpers for the N-API edge. Arguments arrive validated by lib/*.ts;
// these only re-check what would otherwise write out of bounds.
#pragma once
#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace iomux {

// The bytes behind a TypedArray, DataView or ArrayBuffer; false otherwise.
// The pointers come from napi_get_typedarray_info / napi_get_dataview_info,
// which also work for views on a SharedArrayBuffer (going through the view's
// ArrayBuffer() would fail there: a SharedArrayBuffer is not an ArrayBuffer).
inline bool GetBytes(const Napi::Value& v, uint8_t** data, size_t* len) {
  napi_env env = v.Env();
  napi_value value = v;
  bool is = false;
  void* d = nullptr;
  if (napi_is_typedarray(env, value, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length = 0, offset = 0;
    if (napi_get_typedarray_info(env, value, &type, &length, &d, nullptr, &offset) != napi_ok) return false;
    size_t size = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: size = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: size = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: size = 8; break;
      default: size = 1;
    }
    *data = static_cast<uint8_t*>(d);
    *len = d == nullptr ? 0 : length * size;
    return true;
  }
  if (napi_is_dataview(env, value, &is) == napi_ok && is) {
    size_t length = 0, offset = 0;
    if (napi_get_dataview_info(env, value, &length, &d, nullptr, &offset) != napi_ok) return false;
    *data = static_cast<uint8_t*>(d);
    *len = d == nullptr ? 0 : length;
    return true;
  }
  if (napi_is_arraybuffer(env, value, &is) == napi_ok && is) {
    size_t length = 0;
    if (napi_get_arraybuffer_info(env, value, &d, &length) != napi_ok) return false;
    *data = static_cast<uint8_t*>(d);
    *len = d == nullptr ? 0 : length;
    return true;
  }
  return false;
}

inline int32_t Int(const Napi::CallbackInfo& info, size_t i, int32_t dflt = 0) {
  return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : dflt;
}

inline Napi::Number Num(Napi::Env env, double v) { return Napi::Number::New(env, v); }

}  // namespace iomux

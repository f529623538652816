// The integer quantizer's forward and its straight-through mask in one pass over the values
// (netcarve.ir.fixedpoint.fixed_quantize; netcarve.ir.fused loads it). Each element is computed by the same
// floating-point operations, in the same order, as the PyTorch ops of netcarve.ir.fixedpoint._fixed_forward and
// _FixedSTE.forward, so the results are equal bit for bit (but for the sign of a zero, which torch's own clamp
// sets differently in its vector blocks and in its scalar tail):
//   k = round(x * scale)                       nearest_even: rint (torch.round); nearest_up: floor(t + 0.5);
//                                              truncate: floor
//   k = clamp(k, k_lo, k_hi)                   saturate (torch.clamp: NaN propagates)
//   k = remainder(k - k_lo, span) + k_lo       wrap (torch.remainder: fmod, then + span where the signs differ)
//   out = k * step
//   mask = clamp(x, lo, hi) == x               lo <= x <= hi; false at NaN and where lo, hi are NaN (width 0)
// The grid's fields broadcast against x (TensorIterator), one dtype for all (float32 or float64).
#include <torch/extension.h>
#include <ATen/TensorIterator.h>

#include <cmath>

namespace {

template <typename T>
inline T remainder(T a, T b) {
  T mod = std::fmod(a, b);
  if ((mod != 0) && ((b < 0) != (mod < 0))) mod += b;
  return mod;
}

template <typename T, int ROUND>
inline T round_to_int(T t) {
  if (ROUND == 0) return std::rint(t);  // round half to even in the default rounding mode, as torch.round
  if (ROUND == 1) return std::floor(t + T(0.5));
  return std::floor(t);
}

// One element: its value on the grid and whether the gradient passes. k_lo and k_hi are never NaN (0 where
// the width is 0), so min(max(k, k_lo), k_hi) is torch.clamp's value, NaN k included; lo <= x <= hi is
// clamp(x, lo, hi) == x, false at NaN x and at NaN lo, hi (width 0).
template <typename T, int ROUND, bool WRAP>
inline void element(T x, T scale, T step, T k_lo, T k_hi, T span, T lo, T hi, T& out, bool& mask) {
  T k = round_to_int<T, ROUND>(x * scale);
  k = WRAP ? remainder(k - k_lo, span) + k_lo : std::min(std::max(k, k_lo), k_hi);
  out = k * step;
  mask = x >= lo && x <= hi;
}

template <typename T>
inline T at(char* const* data, const int64_t* strides, int arg, int64_t i) {
  return *reinterpret_cast<const T*>(data[arg] + i * strides[arg]);
}

template <typename T, int ROUND, bool WRAP>
void run(at::TensorIterator& iter) {
  iter.for_each([](char** data, const int64_t* strides, int64_t n) {
    T* out = reinterpret_cast<T*>(data[0]);
    bool* mask = reinterpret_cast<bool*>(data[1]);
    const T* x = reinterpret_cast<const T*>(data[2]);
    bool constant_grid = strides[0] == sizeof(T) && strides[1] == sizeof(bool) && strides[2] == sizeof(T);
    for (int arg = 3; arg < 10; arg++) constant_grid = constant_grid && strides[arg] == 0;
    if (constant_grid) {  // the common case (a scalar, per-member or per-channel grid): the loop vectorizes
      const T scale = at<T>(data, strides, 3, 0), step = at<T>(data, strides, 4, 0);
      const T k_lo = at<T>(data, strides, 5, 0), k_hi = at<T>(data, strides, 6, 0);
      const T span = at<T>(data, strides, 7, 0), lo = at<T>(data, strides, 8, 0), hi = at<T>(data, strides, 9, 0);
#pragma omp simd
      for (int64_t i = 0; i < n; i++) {
        element<T, ROUND, WRAP>(x[i], scale, step, k_lo, k_hi, span, lo, hi, out[i], mask[i]);
      }
      return;
    }
    for (int64_t i = 0; i < n; i++) {
      element<T, ROUND, WRAP>(at<T>(data, strides, 2, i), at<T>(data, strides, 3, i), at<T>(data, strides, 4, i),
                              at<T>(data, strides, 5, i), at<T>(data, strides, 6, i), at<T>(data, strides, 7, i),
                              at<T>(data, strides, 8, i), at<T>(data, strides, 9, i),
                              *reinterpret_cast<T*>(data[0] + i * strides[0]),
                              *reinterpret_cast<bool*>(data[1] + i * strides[1]));
    }
  });
}

template <typename T>
void dispatch(at::TensorIterator& iter, int64_t round, bool wrap) {
  if (round == 0) {
    wrap ? run<T, 0, true>(iter) : run<T, 0, false>(iter);
  } else if (round == 1) {
    wrap ? run<T, 1, true>(iter) : run<T, 1, false>(iter);
  } else {
    wrap ? run<T, 2, true>(iter) : run<T, 2, false>(iter);
  }
}

// (out, mask) of x on the grid; round: 0 nearest_even, 1 nearest_up, 2 truncate.
std::tuple<at::Tensor, at::Tensor> fixed_quantize(const at::Tensor& x, const at::Tensor& scale,
                                                  const at::Tensor& step, const at::Tensor& k_lo,
                                                  const at::Tensor& k_hi, const at::Tensor& span,
                                                  const at::Tensor& lo, const at::Tensor& hi, int64_t round,
                                                  bool wrap) {
  TORCH_CHECK(round >= 0 && round <= 2, "fixed_quantize: unknown round code ", round);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "fixed_quantize: float32 or float64 values only");
  // real tensors in, real tensors out: a Python dispatch mode active around the call (an op counter) does not
  // see or replace the outputs (the caller passes only plain CPU tensors, never fake ones)
  c10::impl::ExcludeDispatchKeyGuard no_python(
      c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot}));
  // the values' layout where it is dense (a channels-last activation stays one), else contiguous: as the chain
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Preserve);
  at::Tensor mask = at::empty_like(x, x.options().dtype(at::kBool), at::MemoryFormat::Preserve);
  auto iter = at::TensorIteratorConfig()
                  .add_output(out)
                  .add_output(mask)
                  .add_const_input(x)
                  .add_const_input(scale)
                  .add_const_input(step)
                  .add_const_input(k_lo)
                  .add_const_input(k_hi)
                  .add_const_input(span)
                  .add_const_input(lo)
                  .add_const_input(hi)
                  .check_all_same_dtype(false)
                  .resize_outputs(false)
                  .build();
  if (x.scalar_type() == at::kFloat) {
    dispatch<float>(iter, round, wrap);
  } else {
    dispatch<double>(iter, round, wrap);
  }
  return {out, mask};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fixed_quantize", &fixed_quantize, "netcarve's integer quantizer and its STE mask in one pass");
}

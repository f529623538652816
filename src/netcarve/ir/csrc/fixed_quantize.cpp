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
//   mask = clamp(x, lo, hi) == x               lo <= x <= hi; false at NaN and where lo, hi are NaN (width 0),
//                                              written as 1 or 0 in the values' dtype: the backward's
//                                              grad * mask is then a plain product (4-5x faster than a
//                                              product with a bool tensor, and equal: bool promotes to 1, 0)
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
inline T element(T x, T scale, T step, T k_lo, T k_hi, T span) {
  T k = round_to_int<T, ROUND>(x * scale);
  k = WRAP ? remainder(k - k_lo, span) + k_lo : std::min(std::max(k, k_lo), k_hi);
  return k * step;
}

template <typename T>
inline T inside(T x, T lo, T hi) {
  return (x >= lo && x <= hi) ? T(1) : T(0);
}

template <typename T>
inline T at(char* const* data, const int64_t* strides, int arg, int64_t i) {
  return *reinterpret_cast<const T*>(data[arg] + i * strides[arg]);
}

template <typename T>
inline T& at_out(char* const* data, const int64_t* strides, int arg, int64_t i) {
  return *reinterpret_cast<T*>(data[arg] + i * strides[arg]);
}

// The iterator's operands: out, [mask,] x, scale, step, k_lo, k_hi, span, lo, hi (MASK: with the mask).
template <typename T, int ROUND, bool WRAP, bool MASK>
void run(at::TensorIterator& iter) {
  iter.for_each([](char** data, const int64_t* strides, int64_t n) {
    constexpr int X = MASK ? 2 : 1;  // the first input
    T* out = reinterpret_cast<T*>(data[0]);
    T* mask = reinterpret_cast<T*>(data[1]);  // (x when there is no mask: not written then)
    const T* x = reinterpret_cast<const T*>(data[X]);
    bool constant_grid = strides[0] == sizeof(T) && strides[X] == sizeof(T) && (!MASK || strides[1] == sizeof(T));
    for (int arg = X + 1; arg < X + 8; arg++) constant_grid = constant_grid && strides[arg] == 0;
    if (constant_grid) {  // the common case (a scalar, per-member or per-channel grid): the loop vectorizes
      const T scale = at<T>(data, strides, X + 1, 0), step = at<T>(data, strides, X + 2, 0);
      const T k_lo = at<T>(data, strides, X + 3, 0), k_hi = at<T>(data, strides, X + 4, 0);
      const T span = at<T>(data, strides, X + 5, 0);
      const T lo = at<T>(data, strides, X + 6, 0), hi = at<T>(data, strides, X + 7, 0);
#pragma omp simd
      for (int64_t i = 0; i < n; i++) {
        out[i] = element<T, ROUND, WRAP>(x[i], scale, step, k_lo, k_hi, span);
        if (MASK) mask[i] = inside<T>(x[i], lo, hi);
      }
      return;
    }
    for (int64_t i = 0; i < n; i++) {
      const T xi = at<T>(data, strides, X, i);
      at_out<T>(data, strides, 0, i) =
          element<T, ROUND, WRAP>(xi, at<T>(data, strides, X + 1, i), at<T>(data, strides, X + 2, i),
                                  at<T>(data, strides, X + 3, i), at<T>(data, strides, X + 4, i),
                                  at<T>(data, strides, X + 5, i));
      if (MASK) at_out<T>(data, strides, 1, i) = inside<T>(xi, at<T>(data, strides, X + 6, i),
                                                           at<T>(data, strides, X + 7, i));
    }
  });
}

template <typename T, bool MASK>
void dispatch(at::TensorIterator& iter, int64_t round, bool wrap) {
  if (round == 0) {
    wrap ? run<T, 0, true, MASK>(iter) : run<T, 0, false, MASK>(iter);
  } else if (round == 1) {
    wrap ? run<T, 1, true, MASK>(iter) : run<T, 1, false, MASK>(iter);
  } else {
    wrap ? run<T, 2, true, MASK>(iter) : run<T, 2, false, MASK>(iter);
  }
}

// (out, mask) of x on the grid; round: 0 nearest_even, 1 nearest_up, 2 truncate. with_mask false (nothing
// will take a gradient): the mask is not computed, an empty tensor is returned in its place.
std::tuple<at::Tensor, at::Tensor> fixed_quantize(const at::Tensor& x, const at::Tensor& scale,
                                                  const at::Tensor& step, const at::Tensor& k_lo,
                                                  const at::Tensor& k_hi, const at::Tensor& span,
                                                  const at::Tensor& lo, const at::Tensor& hi, int64_t round,
                                                  bool wrap, bool with_mask) {
  TORCH_CHECK(round >= 0 && round <= 2, "fixed_quantize: unknown round code ", round);
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "fixed_quantize: float32 or float64 values only");
  // real tensors in, real tensors out: a Python dispatch mode active around the call (an op counter) does not
  // see or replace the outputs (the caller passes only plain CPU tensors, never fake ones)
  c10::impl::ExcludeDispatchKeyGuard no_python(
      c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::PythonTLSSnapshot}));
  // the values' layout where it is dense (a channels-last activation stays one), else contiguous: as the chain
  at::Tensor out = at::empty_like(x, at::MemoryFormat::Preserve);
  at::Tensor mask = with_mask ? at::empty_like(x, at::MemoryFormat::Preserve) : at::empty({0}, x.options());
  at::TensorIteratorConfig config;
  config.add_output(out);
  if (with_mask) config.add_output(mask);
  config.add_const_input(x)
      .add_const_input(scale)
      .add_const_input(step)
      .add_const_input(k_lo)
      .add_const_input(k_hi)
      .add_const_input(span)
      .add_const_input(lo)
      .add_const_input(hi)
      .resize_outputs(false);
  auto iter = config.build();
  if (x.scalar_type() == at::kFloat) {
    with_mask ? dispatch<float, true>(iter, round, wrap) : dispatch<float, false>(iter, round, wrap);
  } else {
    with_mask ? dispatch<double, true>(iter, round, wrap) : dispatch<double, false>(iter, round, wrap);
  }
  return {out, mask};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fixed_quantize", &fixed_quantize, "netcarve's integer quantizer and its STE mask in one pass");
}

// libtorch's numeric switches that tch does not expose: TF32 on cuDNN and cuBLAS, and autocast
// on a given device with a given dtype.

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

#include "shim.h"

using fgstp::guarded;

extern "C" {

// TF32 for cuDNN convolutions and cuBLAS matrix products (PyTorch's
// torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32).
int fgstp_set_tf32(int cudnn, int cublas) {
  return guarded([&] {
    at::globalContext().setAllowTF32CuDNN(cudnn != 0);
    at::globalContext().setAllowTF32CuBLAS(cublas != 0);
  });
}

int fgstp_get_tf32(int* cudnn, int* cublas) {
  return guarded([&] {
    *cudnn = at::globalContext().allowTF32CuDNN() ? 1 : 0;
    *cublas = at::globalContext().allowTF32CuBLAS() ? 1 : 0;
  });
}

// Autocast on the CPU (device 0) or CUDA (device 1) with bfloat16 (dtype 0) or float16 (1).
int fgstp_set_autocast(int device, int enabled, int dtype) {
  return guarded([&] {
    auto type = device == 1 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_dtype(type, dtype == 1 ? at::kHalf : at::kBFloat16);
    at::autocast::set_autocast_enabled(type, enabled != 0);
    if (enabled == 0) {
      at::autocast::clear_cache();
    }
  });
}

}  // extern "C"

// libtorch settings and CUDA graphs that tch does not expose: TF32 on cuDNN and cuBLAS,
// autocast on a given device with a given dtype, and capturing/replaying a CUDA graph.
// Every function catches C++ exceptions and reports them through fgstp_last_error().

#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#ifdef FGSTP_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <optional>
#endif

namespace {
thread_local std::string last_error;

template <typename F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown C++ exception";
  }
  return 1;
}
}  // namespace

extern "C" {

const char* fgstp_last_error() { return last_error.c_str(); }

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

// One optimiser step for each parameter with a gradient, with the same ATen calls in the same
// order as the Python optimiser it reproduces, including the `value`/`alpha` arguments tch
// cannot pass (without them each step needs model-sized temporaries). `lrs` holds one learning
// rate per parameter (parameter groups); `steps` counts per parameter, as PyTorch does.
//   rule 0: torch.optim.Adam's single-tensor path (its CPU default);
//   rule 1: SLT-Net's utils/adamw.py (eps on the uncorrected sqrt(v), decay p*(1 - wd) first).
//   foreach (rule 0 only): the same arithmetic through ATen's multi-tensor kernels, as
//   torch.optim.Adam's foreach path (its CUDA default) calls them — a handful of launches per
//   step instead of eight per parameter.
int fgstp_adam_step(at::Tensor** params, at::Tensor** exp_avgs, at::Tensor** exp_avg_sqs,
                    int64_t* steps, const double* lrs, int64_t n, double beta1, double beta2,
                    double eps, double weight_decay, int rule, int foreach) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    if (foreach != 0 && rule == 0) {
      std::vector<at::Tensor> ps, grads, ms, vs;
      std::vector<at::Scalar> neg_step_sizes, bias_correction2_sqrts;
      for (int64_t i = 0; i < n; ++i) {
        at::Tensor grad = params[i]->grad();
        if (!grad.defined()) {
          continue;
        }
        steps[i] += 1;
        const double step = static_cast<double>(steps[i]);
        const double bias_correction1 = 1 - std::pow(beta1, step);
        const double bias_correction2 = 1 - std::pow(beta2, step);
        ps.push_back(*params[i]);
        grads.push_back(grad);
        ms.push_back(*exp_avgs[i]);
        vs.push_back(*exp_avg_sqs[i]);
        neg_step_sizes.emplace_back(-(lrs[i] / bias_correction1));
        bias_correction2_sqrts.emplace_back(std::sqrt(bias_correction2));
      }
      if (ps.empty()) {
        return;
      }
      if (weight_decay != 0) {
        grads = at::_foreach_add(grads, ps, weight_decay);
      }
      at::_foreach_lerp_(ms, grads, 1 - beta1);
      at::_foreach_mul_(vs, beta2);
      at::_foreach_addcmul_(vs, grads, grads, 1 - beta2);
      std::vector<at::Tensor> denom = at::_foreach_sqrt(vs);
      at::_foreach_div_(denom, bias_correction2_sqrts);
      at::_foreach_add_(denom, eps);
      at::_foreach_addcdiv_(ps, ms, denom, neg_step_sizes);
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor& param = *params[i];
      at::Tensor grad = param.grad();
      if (!grad.defined()) {
        continue;
      }
      at::Tensor& exp_avg = *exp_avgs[i];
      at::Tensor& exp_avg_sq = *exp_avg_sqs[i];
      steps[i] += 1;
      const double step = static_cast<double>(steps[i]);
      const double bias_correction1 = 1 - std::pow(beta1, step);
      const double bias_correction2 = 1 - std::pow(beta2, step);
      if (rule == 1) {
        exp_avg.mul_(beta1).add_(grad, 1 - beta1);
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
        at::Tensor denom = exp_avg_sq.sqrt().add_(eps);
        const double step_size = lrs[i] * std::sqrt(bias_correction2) / bias_correction1;
        param.mul_(1 - weight_decay).addcdiv_(exp_avg, denom, -step_size);
        continue;
      }
      if (weight_decay != 0) {
        grad = grad.add(param, weight_decay);
      }
      exp_avg.lerp_(grad, 1 - beta1);
      exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), 1 - beta2);
      const double step_size = lrs[i] / bias_correction1;
      const double bias_correction2_sqrt = std::sqrt(bias_correction2);
      // (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps), dividing the fresh sqrt in place.
      at::Tensor denom = exp_avg_sq.sqrt().div_(bias_correction2_sqrt).add_(eps);
      param.addcdiv_(exp_avg, denom, -step_size);
    }
  });
}

// Clamps every defined gradient to [-max, max] in place (the reference's clip_gradient).
// With `foreach`, through the multi-tensor clamp kernels (two launches instead of one per
// parameter; the same values).
int fgstp_clamp_grads(at::Tensor** params, int64_t n, double max, int foreach) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    if (foreach != 0) {
      std::vector<at::Tensor> grads;
      for (int64_t i = 0; i < n; ++i) {
        at::Tensor grad = params[i]->grad();
        if (grad.defined()) {
          grads.push_back(grad);
        }
      }
      if (!grads.empty()) {
        at::_foreach_clamp_min_(grads, -max);
        at::_foreach_clamp_max_(grads, max);
      }
      return;
    }
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor grad = params[i]->grad();
      if (grad.defined()) {
        grad.clamp_(-max, max);
      }
    }
  });
}

// Drops every gradient (PyTorch's `zero_grad(set_to_none=True)`, its default since 2.0): the
// next backward allocates them afresh, so they take no memory during the forward.
int fgstp_clear_grads(at::Tensor** params, int64_t n) {
  return guarded([&] {
    for (int64_t i = 0; i < n; ++i) {
      params[i]->mutable_grad().reset();
    }
  });
}

// `t` (on the host) on CUDA device `device`, through pinned memory and without waiting; the
// caching host allocator keeps the pinned block until the copy has run.
int fgstp_upload_pinned(at::Tensor* t, int device, at::Tensor** out) {
  return guarded([&] {
    auto target = c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device));
    *out = new at::Tensor(t->pin_memory().to(target, /*non_blocking=*/true));
  });
}

// A marker in a device's current stream: synchronising on it waits for the work queued before
// it, not for later work. Goes through c10's device-generic event API (libc10_cuda registers
// CUDA's), so no CUDA headers are needed; device types as c10::DeviceType numbers.
int fgstp_stream_event_record(int device_type, int device_index, void** out) {
  return guarded([&] {
    auto type = static_cast<c10::DeviceType>(device_type);
    c10::impl::VirtualGuardImpl impl(type);
    auto stream = impl.getStream(c10::Device(type, static_cast<c10::DeviceIndex>(device_index)));
    auto event = std::make_unique<c10::Event>(type);
    event->record(stream);
    *out = event.release();
  });
}

int fgstp_stream_event_synchronize(void* event) {
  return guarded([&] { static_cast<c10::Event*>(event)->synchronize(); });
}

void fgstp_stream_event_free(void* event) { delete static_cast<c10::Event*>(event); }

int fgstp_cuda_graphs_available() {
#ifdef FGSTP_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

#ifdef FGSTP_WITH_CUDA
// A graph, and the stream that was current before its capture switched to a side stream
// (capture needs a non-default stream). Only functions exported by libc10_cuda are used for
// the switch, so that nothing here calls the CUDA runtime directly (the binary then needs no
// link to libcudart of its own).
struct FgstpGraph {
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStream> previous;
};

int fgstp_cuda_graph_new(void** out) {
  return guarded([&] { *out = new FgstpGraph(); });
}

int fgstp_cuda_graph_capture_begin(void* g, int device) {
  return guarded([&] {
    auto* graph = static_cast<FgstpGraph*>(g);
    auto stream = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device));
    // Work queued on the current stream must finish before the side stream starts (as
    // torch.cuda.graph does).
    c10::cuda::device_synchronize();
    graph->previous.emplace(c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)));
    c10::cuda::setCurrentCUDAStream(stream);
    graph->graph.capture_begin();
  });
}

int fgstp_cuda_graph_capture_end(void* g) {
  return guarded([&] {
    auto* graph = static_cast<FgstpGraph*>(g);
    auto restore = [graph] {
      if (graph->previous) {
        c10::cuda::setCurrentCUDAStream(*graph->previous);
        graph->previous.reset();
      }
    };
    try {
      graph->graph.capture_end();
      c10::cuda::device_synchronize();
    } catch (...) {
      restore();
      throw;
    }
    restore();
  });
}

// Replays on the current stream; later work on that stream sees the results.
int fgstp_cuda_graph_replay(void* g) {
  return guarded([&] { static_cast<FgstpGraph*>(g)->graph.replay(); });
}

void fgstp_cuda_graph_free(void* g) { delete static_cast<FgstpGraph*>(g); }
#else
int fgstp_cuda_graph_new(void** out) {
  *out = nullptr;
  last_error = "this fgstp was built without CUDA headers: CUDA graphs are not available";
  return 1;
}
int fgstp_cuda_graph_capture_begin(void*, int) { return fgstp_cuda_graph_new(nullptr); }
int fgstp_cuda_graph_capture_end(void*) { return fgstp_cuda_graph_new(nullptr); }
int fgstp_cuda_graph_replay(void*) { return fgstp_cuda_graph_new(nullptr); }
void fgstp_cuda_graph_free(void*) {}
#endif

}  // extern "C"

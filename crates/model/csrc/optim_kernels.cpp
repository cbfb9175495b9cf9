// The optimiser's element-wise work with the ATen calls of the Python optimisers: the Adam
// and AdamW steps, clamping gradients and dropping them.

#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "shim.h"

using fgstp::guarded;

extern "C" {

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

}  // extern "C"

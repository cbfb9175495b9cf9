// Distributed training on libtorch's own engine, c10d: the TCPStore rendezvous, a process group
// (Gloo on the CPU, NCCL on CUDA), the collectives training needs, DDP's Reducer (gradients
// averaged in buckets while backward still runs) and an all-reduce that autograd can go
// through (SyncBatchNorm's statistics). See src/runtime/distributed.rs.

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/comm.hpp>
#include <torch/csrc/distributed/c10d/logger.hpp>
#include <torch/csrc/distributed/c10d/reducer.hpp>

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "shim.h"

using fgstp::guarded;

// distributed_nccl.cpp (compiled only with NCCL's headers at hand).
c10::intrusive_ptr<c10d::Backend> fgstp_make_nccl_backend(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
    std::chrono::milliseconds timeout);
bool fgstp_nccl_compiled();

namespace {

// The Reducer warns once per process, "Grad strides do not match bucket view strides", for the
// depthwise convolutions' weights ([C, 1, k, k]): their gradients come back with another stride
// on the size-1 dimension, which describes the same memory, and are copied into the bucket
// instead of written in place. Every data-parallel run would print it; this handler drops that
// one message and passes every other warning on.
class BucketStrideWarningFilter : public c10::WarningHandler {
 public:
  explicit BucketStrideWarningFilter(c10::WarningHandler* next) : next_(next) {}
  void process(const c10::Warning& warning) override {
    if (warning.msg().find("Grad strides do not match bucket view strides") != std::string::npos) {
      return;
    }
    next_->process(warning);
  }

 private:
  c10::WarningHandler* next_;
};

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::shared_ptr<c10d::Reducer> reducer;
  // DDP's runtime statistics (backward compute and communication times, their overlap).
  std::shared_ptr<c10d::Logger> logger;
  int rank = 0;
  int world = 1;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// all-reduce (sum) whose backward is an all-reduce (sum) of the gradient: with y = Σ_r x_r and
// every rank's loss depending on y, ∂(Σ_k L_k)/∂x_r = Σ_k ∂L_k/∂y.
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            int64_t group) {
    ctx->saved_data["group"] = group;
    std::vector<at::Tensor> tensors{x.detach().clone()};
    reinterpret_cast<Group*>(group)->pg->allreduce(tensors)->wait();
    return tensors[0];
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* group = reinterpret_cast<Group*>(ctx->saved_data["group"].toInt());
    std::vector<at::Tensor> tensors{grads[0].contiguous().clone()};
    group->pg->allreduce(tensors)->wait();
    return {tensors[0], at::Tensor()};
  }
};

}  // namespace

extern "C" {

// Which backends this build carries: bit 0 Gloo, bit 1 NCCL.
int fgstp_dist_backends() {
  int bits = 0;
#ifdef USE_C10D_GLOO
  bits |= 1;
#endif
  if (fgstp_nccl_compiled()) bits |= 2;
  return bits;
}

// Joins the job: the TCPStore at host:port (hosted here when `host_store`, else connected to as
// a client; namespaced by `prefix`), then a process group of `backend` (1 Gloo, 2 NCCL) with
// collectives timing out after `timeout_ms`. NCCL uses the current CUDA device.
int fgstp_dist_init(const char* host, int port, int rank, int world, int host_store,
                    const char* prefix, int64_t timeout_ms, int backend, void** out) {
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.isServer = host_store != 0;
    options.numWorkers = host_store ? std::optional<std::size_t>(world) : std::nullopt;
    options.waitWorkers = false;
    options.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    auto group = std::make_unique<Group>();
    group->store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    group->rank = rank;
    group->world = world;
    group->pg = c10::make_intrusive<c10d::ProcessGroup>(group->store, rank, world);
    if (backend == 1) {
#ifdef USE_C10D_GLOO
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
        gloo_options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForInterface(std::string(ifname)));
      } else if (is_loopback(host)) {
        gloo_options->devices.push_back(
            c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        gloo_options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      auto prefixed = c10::make_intrusive<c10d::PrefixStore>("gloo", group->store);
      c10::intrusive_ptr<c10d::Backend> gloo =
          c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world, gloo_options);
      group->pg->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, gloo);
      group->pg->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
#else
      throw std::runtime_error(
          "this fgstp was built without Gloo (its headers were missing at build time: "
          "install Debian's libgloo-dev, as scripts/setup-libtorch does, and rebuild)");
#endif
    } else if (backend == 2) {
      auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", group->store);
      auto nccl = fgstp_make_nccl_backend(prefixed, rank, world, timeout);
      group->pg->setBackend(c10::DeviceType::CUDA, c10d::ProcessGroup::BackendType::NCCL, nccl);
      group->pg->setDefaultBackend(c10d::ProcessGroup::BackendType::NCCL);
    } else {
      throw std::runtime_error("unknown backend " + std::to_string(backend));
    }
    *out = group.release();
  });
}

void fgstp_dist_free(void* group) { delete static_cast<Group*>(group); }

int fgstp_dist_broadcast(void* group, at::Tensor** tensors, int n, int root) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> list;
    for (int i = 0; i < n; ++i) list.push_back(*tensors[i]);
    // DDP's coalesced broadcast: the tensors flattened into buckets of one dtype (DDP's 250
    // MiB), one collective per bucket, copied back on the other ranks. One collective per
    // tensor costs a round trip each: with the ~150 BatchNorm buffers of a small model that
    // was 15% of a CPU training step.
    constexpr size_t kBucketBytes = 250u * 1024u * 1024u;
    c10d::broadcast_coalesced(static_cast<Group*>(group)->pg, list, kBucketBytes, root);
  });
}

// In place: the sum over ranks.
int fgstp_dist_allreduce_sum(void* group, at::Tensor* t) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> one{*t};
    static_cast<Group*>(group)->pg->allreduce(one)->wait();
  });
}

// Differentiable: a new tensor, the sum over ranks of `t`; its gradient is summed likewise.
int fgstp_dist_allreduce_sum_autograd(void* group, at::Tensor* t, at::Tensor** out) {
  return guarded([&] {
    *out = new at::Tensor(AllReduceSum::apply(*t, reinterpret_cast<int64_t>(group)));
  });
}

int fgstp_dist_barrier(void* group) {
  return guarded([&] { static_cast<Group*>(group)->pg->barrier()->wait(); });
}

// The job's store: `value` under `key` (namespaced like everything of this group).
int fgstp_dist_store_set(void* group, const char* key, const uint8_t* value, size_t len) {
  return guarded([&] {
    std::vector<uint8_t> bytes(value, value + len);
    static_cast<Group*>(group)->store->set(std::string(key), bytes);
  });
}

// Waits (up to the store's timeout) for `key`; the value in a malloc'd buffer the caller frees
// with fgstp_dist_bytes_free.
int fgstp_dist_store_get(void* group, const char* key, uint8_t** value, size_t* len) {
  return guarded([&] {
    auto bytes = static_cast<Group*>(group)->store->get(std::string(key));
    *len = bytes.size();
    *value = static_cast<uint8_t*>(std::malloc(bytes.size() ? bytes.size() : 1));
    std::copy(bytes.begin(), bytes.end(), *value);
  });
}

void fgstp_dist_bytes_free(uint8_t* value) { std::free(value); }

int fgstp_dist_store_add(void* group, const char* key, int64_t value, int64_t* out) {
  return guarded([&] { *out = static_cast<Group*>(group)->store->add(std::string(key), value); });
}

// A second connection to the job's store, for another thread (a blocking get on one
// connection holds it until the key appears).
int fgstp_dist_store_clone(void* group, void** out) {
  return guarded([&] {
    auto clone = static_cast<Group*>(group)->store->clone();
    *out = new c10::intrusive_ptr<c10d::Store>(std::move(clone));
  });
}

int fgstp_dist_store_clone_add(void* store, const char* key, int64_t value, int64_t* out) {
  return guarded([&] {
    *out = (*static_cast<c10::intrusive_ptr<c10d::Store>*>(store))->add(std::string(key), value);
  });
}

void fgstp_dist_store_clone_free(void* store) {
  delete static_cast<c10::intrusive_ptr<c10d::Store>*>(store);
}

// DDP's Reducer over `params` (the same order on every rank): gradient buckets of at most
// `bucket_bytes` (the first one `first_bucket_bytes`), in the reverse order of `params` as DDP
// assumes gradients arrive, all-reduced and divided by the world size from autograd hooks.
int fgstp_dist_reducer_new(void* group, at::Tensor** params, const char** names, int n,
                           int64_t first_bucket_bytes, int64_t bucket_bytes,
                           int find_unused, int sync_bn) {
  return guarded([&] {
    static BucketStrideWarningFilter filter(c10::WarningUtils::get_warning_handler());
    static const bool filtering = (c10::WarningUtils::set_warning_handler(&filter), true);
    (void)filtering;
    auto* g = static_cast<Group*>(group);
    std::vector<at::Tensor> list;
    std::unordered_map<size_t, std::string> param_names;
    for (int i = 0; i < n; ++i) {
      list.push_back(*params[i]);
      param_names[static_cast<size_t>(i)] = names[i];
    }
    std::vector<bool> sparse(list.size(), false);
    auto [buckets, limits] = c10d::compute_bucket_assignment_by_size(
        list, {static_cast<size_t>(first_bucket_bytes), static_cast<size_t>(bucket_bytes)},
        sparse);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(limits.begin(), limits.end());
    std::vector<int64_t> caps(limits.begin(), limits.end());
    g->logger.reset();
    g->reducer = std::make_shared<c10d::Reducer>(
        list, buckets, g->pg, sparse, bucket_bytes, find_unused != 0,
        /*gradient_as_bucket_view=*/false, param_names, first_bucket_bytes,
        /*skip_all_reduce_unused_params=*/false, /*use_python_reducer=*/false, caps);
    g->logger = std::make_shared<c10d::Logger>(g->reducer);
    g->reducer->set_logger(g->logger);
    g->logger->set_construction_data_and_log("fgstp", {}, -1, /*broadcast_buffers=*/true,
                                             sync_bn != 0, /*static_graph=*/false);
    // Timings of every step (DDP samples one in 100 after the first 10).
    g->reducer->set_ddp_runtime_logging_sample_rate(1);
  });
}

// Before each backward: arms the Reducer's hooks (`outputs` let it find unused parameters).
int fgstp_dist_reducer_prepare(void* group, at::Tensor** outputs, int n) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    if (!g->reducer) throw std::runtime_error("no Reducer was set up");
    std::vector<at::Tensor> list;
    for (int i = 0; i < n; ++i) list.push_back(*outputs[i]);
    // As DDP's forward: the previous step's timings are taken in, then the Reducer armed.
    g->logger->set_runtime_stats_and_log();
    g->reducer->prepare_for_forward();
    g->reducer->prepare_for_backward(list);
  });
}

// Number of buckets of the Reducer (for the logs).
int fgstp_dist_reducer_buckets(void* group, int64_t* out) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    *out = g->reducer ? static_cast<int64_t>(g->reducer->get_grad_buckets(false).size()) : 0;
  });
}

// DDP's running averages over the steps timed so far (nanoseconds): backward compute, backward
// communication, and the part of the communication that overlapped the compute; `steps` is how
// many steps they average.
int fgstp_dist_reducer_timings(void* group, int64_t* compute, int64_t* comm, int64_t* overlap,
                               int64_t* steps) {
  return guarded([&] {
    auto* g = static_cast<Group*>(group);
    if (!g->logger) throw std::runtime_error("no Reducer was set up");
    auto data = g->logger->get_ddp_logging_data();
    auto get = [&](const char* key) {
      auto it = data.ints_map.find(key);
      return it == data.ints_map.end() ? int64_t{0} : it->second;
    };
    *compute = get("avg_backward_compute_time");
    *comm = get("avg_backward_comm_time");
    *overlap = get("avg_backward_compute_comm_overlap_time");
    *steps = get("num_iterations_stats_recorded");
  });
}

}  // extern "C"

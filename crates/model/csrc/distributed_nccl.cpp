// The NCCL backend of distributed.cpp. ProcessGroupNCCL's header needs NCCL's and CUDA's
// headers, so this file is compiled with them (FGSTP_WITH_NCCL, see build.rs) or without, in
// which case asking for NCCL is an error that says how to get it.

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#ifdef FGSTP_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <stdexcept>

c10::intrusive_ptr<c10d::Backend> fgstp_make_nccl_backend(
    const c10::intrusive_ptr<c10d::Store>& store, int rank, int world,
    std::chrono::milliseconds timeout) {
#ifdef FGSTP_WITH_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
#else
  (void)store;
  (void)rank;
  (void)world;
  (void)timeout;
  throw std::runtime_error(
      "this fgstp was built without NCCL (NCCL's and CUDA's headers were not found at build "
      "time: set CUDA_HOME to a CUDA toolkit and rebuild, see the book's distributed-training "
      "page), or use train.dist_backend = \"gloo\"");
#endif
}

bool fgstp_nccl_compiled() {
#ifdef FGSTP_WITH_NCCL
  return true;
#else
  return false;
#endif
}

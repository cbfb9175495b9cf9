// Capturing and replaying CUDA graphs. Without the CUDA runtime headers (FGSTP_WITH_CUDA unset
// by build.rs) the functions report that graphs are not available.

#include "shim.h"

#ifdef FGSTP_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <optional>
#endif

using fgstp::guarded;

extern "C" {

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
  fgstp::last_error = "this fgstp was built without CUDA headers: CUDA graphs are not available";
  return 1;
}
int fgstp_cuda_graph_capture_begin(void*, int) { return fgstp_cuda_graph_new(nullptr); }
int fgstp_cuda_graph_capture_end(void*) { return fgstp_cuda_graph_new(nullptr); }
int fgstp_cuda_graph_replay(void*) { return fgstp_cuda_graph_new(nullptr); }
void fgstp_cuda_graph_free(void*) {}
#endif

}  // extern "C"

// Moving data to a GPU without waiting: pinned, non-blocking uploads and markers in a device's
// current stream.

#include <ATen/core/Tensor.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <memory>

#include "shim.h"

using fgstp::guarded;

extern "C" {

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

}  // extern "C"

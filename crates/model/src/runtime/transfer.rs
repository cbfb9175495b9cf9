//! Moving data to a GPU without waiting for it (`csrc/transfer.cpp`): pinned, non-blocking
//! uploads ([`upload`]) and markers in a device's stream ([`StreamEvent`]).

use std::ffi::{c_int, c_void};

use anyhow::Result;
use tch::{Device, Tensor};

use super::check;

extern "C" {
    fn fgstp_upload_pinned(t: *mut c_void, device: c_int, out: *mut *mut c_void) -> c_int;
    fn fgstp_stream_event_record(
        device_type: c_int,
        device_index: c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn fgstp_stream_event_synchronize(event: *mut c_void) -> c_int;
    fn fgstp_stream_event_free(event: *mut c_void);
}

/// `t` (on the host) on `device`. To a GPU the copy goes through pinned memory and does not
/// wait: the CPU goes on queuing work while it runs (libtorch keeps the pinned block until the
/// copy is done). A pageable copy would wait for everything queued before it on the stream.
pub fn upload(t: &Tensor, device: Device) -> Result<Tensor> {
    let (Device::Cuda(index), Device::Cpu) = (device, t.device()) else {
        return Ok(t.to_device(device));
    };
    let mut out = std::ptr::null_mut();
    // SAFETY: `t` is a live tensor; on success the shim hands over a new one, owned by the
    // returned `Tensor` (tch frees it).
    check(
        unsafe { fgstp_upload_pinned(t.as_ptr() as *mut c_void, index as c_int, &mut out) },
        "copying a batch to the GPU",
    )?;
    // SAFETY: `out` is a newly allocated at::Tensor.
    Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
}

/// A marker in a CUDA device's current stream, for reading results without waiting for the
/// work queued after them: [`StreamEvent::synchronize`] returns once everything queued before
/// the marker is done.
pub struct StreamEvent {
    raw: *mut c_void,
}

impl StreamEvent {
    /// Marks the current stream of `device`; `None` on the CPU, where work is done when it
    /// returns.
    pub fn record(device: Device) -> Result<Option<StreamEvent>> {
        let Device::Cuda(index) = device else {
            return Ok(None);
        };
        // c10::DeviceType::CUDA
        const CUDA: c_int = 1;
        let mut raw = std::ptr::null_mut();
        // SAFETY: on success the shim hands over a newly allocated event.
        check(
            unsafe { fgstp_stream_event_record(CUDA, index as c_int, &mut raw) },
            "marking the CUDA stream",
        )?;
        Ok(Some(StreamEvent { raw }))
    }

    /// Waits until the work queued before the marker is done.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: `raw` is a live, recorded event.
        check(
            unsafe { fgstp_stream_event_synchronize(self.raw) },
            "waiting for the CUDA stream",
        )
    }
}

impl Drop for StreamEvent {
    fn drop(&mut self) {
        // SAFETY: `raw` came from fgstp_stream_event_record and is freed once.
        unsafe { fgstp_stream_event_free(self.raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_events_and_uploads_are_plain_on_the_cpu_and_errors_without_a_gpu() {
        assert!(StreamEvent::record(Device::Cpu).unwrap().is_none());
        let t = Tensor::from_slice(&[1f32, 2.0]);
        assert_eq!(upload(&t, Device::Cpu).unwrap(), t);
        if !tch::Cuda::is_available() {
            // Without a GPU these are errors naming what failed, not crashes.
            let err = StreamEvent::record(Device::Cuda(0)).err().unwrap();
            assert!(
                format!("{err}").contains("marking the CUDA stream"),
                "{err}"
            );
            let err = upload(&t, Device::Cuda(0)).err().unwrap();
            assert!(
                format!("{err}").contains("copying a batch to the GPU"),
                "{err}"
            );
        }
    }
}

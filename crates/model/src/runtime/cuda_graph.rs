//! CUDA graphs (`csrc/cuda_graph.cpp`). On a GPU at fgstp's sizes most of a forward is kernel
//! launches, not arithmetic; a captured graph launches them all at once. [`CudaGraph`] records
//! the kernels a closure launches once and replays them with one launch; [`GraphReplays`]
//! replays fixed-shape inference that way.
//!
//! [`GraphReplays::run`] keys each call by a name and its inputs' shapes and kinds. The first
//! call with a key runs eagerly (this is also the warm-up capture needs: cuDNN's algorithm
//! choice, lazy initialisation); the second captures the call as a graph over copies of its
//! inputs and replays it; later calls copy their inputs into the captured ones and replay.
//! Shapes seen once (the last, shorter batch of a video) are never captured, and at most
//! `limit` graphs are kept (each holds its activations in a memory pool of its own); beyond
//! that, calls run eagerly. The outputs are copied out of the graph's memory, so they stay
//! valid after the next replay.
//!
//! [`GraphReplays::emulated`] does the same bookkeeping on any device without a graph — a
//! "replay" reruns the call on the captured inputs and writes the results into the captured
//! outputs — so that the copying in and out is tested where no GPU is.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_int, c_void};

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use super::check;

extern "C" {
    fn fgstp_cuda_graphs_available() -> c_int;
    fn fgstp_cuda_graph_new(out: *mut *mut c_void) -> c_int;
    fn fgstp_cuda_graph_capture_begin(graph: *mut c_void, device: c_int) -> c_int;
    fn fgstp_cuda_graph_capture_end(graph: *mut c_void) -> c_int;
    fn fgstp_cuda_graph_replay(graph: *mut c_void) -> c_int;
    fn fgstp_cuda_graph_free(graph: *mut c_void);
}

/// Whether this build can capture CUDA graphs (it was compiled with the CUDA runtime headers);
/// a GPU is needed as well.
pub fn cuda_graphs_built() -> bool {
    // SAFETY: returns a constant.
    unsafe { fgstp_cuda_graphs_available() != 0 }
}

/// A captured CUDA graph: the kernels of one call, replayed with a single launch. Tensors
/// created during capture live in the graph's private memory pool and are rewritten by every
/// replay; inputs must be copied into the tensors the capture read.
pub struct CudaGraph {
    raw: *mut c_void,
}

impl CudaGraph {
    /// Runs `f` once on a side stream while recording its kernels. Run `f` eagerly a few times
    /// first (cuDNN picks its algorithms and libtorch initialises lazily on first calls;
    /// neither may happen during a capture).
    pub fn capture<T>(device: Device, f: impl FnOnce() -> Result<T>) -> Result<(CudaGraph, T)> {
        let Device::Cuda(index) = device else {
            bail!("CUDA graphs need a CUDA device, not {device:?}");
        };
        if !cuda_graphs_built() {
            bail!(
                "this fgstp was built without the CUDA runtime headers, so it cannot capture CUDA \
                 graphs; run without them (or rebuild with CUDA_HOME set)"
            );
        }
        let mut raw = std::ptr::null_mut();
        // SAFETY: the shim allocates a graph and returns its pointer.
        check(
            unsafe { fgstp_cuda_graph_new(&mut raw) },
            "creating a CUDA graph",
        )?;
        let graph = CudaGraph { raw };
        let device_index = c_int::try_from(index)?;
        // SAFETY: `raw` is a live graph.
        check(
            unsafe { fgstp_cuda_graph_capture_begin(graph.raw, device_index) },
            "starting a CUDA graph capture",
        )?;
        let out = f();
        // SAFETY: as above; the capture must end even when `f` failed.
        let ended = check(
            unsafe { fgstp_cuda_graph_capture_end(graph.raw) },
            "ending a CUDA graph capture",
        );
        let out = out?;
        ended?;
        Ok((graph, out))
    }

    /// Launches the recorded kernels again on the current stream.
    pub fn replay(&self) -> Result<()> {
        // SAFETY: `raw` is a live, captured graph.
        check(
            unsafe { fgstp_cuda_graph_replay(self.raw) },
            "replaying a CUDA graph",
        )
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from fgstp_cuda_graph_new and is freed once.
        unsafe { fgstp_cuda_graph_free(self.raw) }
    }
}

/// A call's name and its inputs' shapes and kinds.
type Key = (&'static str, Vec<(Vec<i64>, Kind)>);

enum Entry {
    /// Ran eagerly once; captured on the next call.
    SeenOnce,
    Captured(Captured),
}

struct Captured {
    /// `None` when emulated.
    graph: Option<CudaGraph>,
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

/// Captured graphs of one run (a split, a video), by call and input shapes.
pub struct GraphReplays {
    device: Device,
    emulated: bool,
    limit: usize,
    entries: RefCell<HashMap<Key, Entry>>,
}

impl GraphReplays {
    /// Graphs kept by default: a split's steady batch shapes (the first chunk of a video
    /// encodes two more frames than the others) for encoding and decoding.
    pub const DEFAULT_LIMIT: usize = 6;

    /// CUDA graphs on `device`; an error naming the reason where there are none.
    pub fn cuda(device: Device, limit: usize) -> Result<Self> {
        if !device.is_cuda() {
            bail!(
                "CUDA graphs need a CUDA device, not {device:?}: set eval.cuda_graphs = false \
                 (or leave out --cuda-graphs) on this machine"
            );
        }
        if !cuda_graphs_built() {
            bail!(
                "this fgstp was built without the CUDA runtime headers and cannot capture CUDA \
                 graphs: rebuild with CUDA_HOME set, or set eval.cuda_graphs = false"
            );
        }
        Ok(Self::with(device, false, limit))
    }

    /// The same bookkeeping without graphs (see the module docs), on any device.
    pub fn emulated(device: Device, limit: usize) -> Self {
        Self::with(device, true, limit)
    }

    fn with(device: Device, emulated: bool, limit: usize) -> Self {
        Self {
            device,
            emulated,
            limit,
            entries: RefCell::new(HashMap::new()),
        }
    }

    /// How many calls are captured.
    pub fn captured(&self) -> usize {
        let entries = self.entries.borrow();
        entries
            .values()
            .filter(|e| matches!(e, Entry::Captured(_)))
            .count()
    }

    /// How many calls (by name and input shapes) are kept: seen once or captured.
    pub fn shapes(&self) -> usize {
        self.entries.borrow().len()
    }

    /// `f(inputs)`, eagerly or replayed (see the module docs). `f` must launch the same work
    /// for inputs of the same shapes, without reading values back to the host.
    pub fn run(
        &self,
        name: &'static str,
        inputs: &[&Tensor],
        f: impl Fn(&[&Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        let key: Key = (name, inputs.iter().map(|t| (t.size(), t.kind())).collect());
        let mut entries = self.entries.borrow_mut();
        match entries.get(&key) {
            None => {
                if entries.len() < self.limit {
                    entries.insert(key, Entry::SeenOnce);
                }
                drop(entries);
                f(inputs)
            }
            Some(Entry::SeenOnce) => {
                drop(entries);
                let captured = self.capture(name, inputs, &f)?;
                let outputs = copies(&captured.outputs);
                self.entries
                    .borrow_mut()
                    .insert(key, Entry::Captured(captured));
                Ok(outputs)
            }
            Some(Entry::Captured(captured)) => {
                tch::no_grad(|| {
                    for (target, input) in captured.inputs.iter().zip(inputs) {
                        target.shallow_clone().copy_(input);
                    }
                });
                self.replay(name, captured, &f)?;
                Ok(copies(&captured.outputs))
            }
        }
    }

    /// Records `f` over copies of `inputs` and replays it once (a capture computes nothing).
    fn capture(
        &self,
        name: &str,
        inputs: &[&Tensor],
        f: &dyn Fn(&[&Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Captured> {
        let inputs: Vec<Tensor> = inputs.iter().map(|t| copy(t)).collect();
        let refs: Vec<&Tensor> = inputs.iter().collect();
        if self.emulated {
            let outputs = f(&refs)?;
            return Ok(Captured {
                graph: None,
                inputs,
                outputs,
            });
        }
        let (graph, outputs) = CudaGraph::capture(self.device, || f(&refs)).with_context(|| {
            format!(
                "cannot capture `{name}` as a CUDA graph; run without graphs \
                 (eval.cuda_graphs = false)"
            )
        })?;
        graph.replay()?;
        Ok(Captured {
            graph: Some(graph),
            inputs,
            outputs,
        })
    }

    fn replay(
        &self,
        name: &str,
        captured: &Captured,
        f: &dyn Fn(&[&Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<()> {
        match &captured.graph {
            Some(graph) => graph
                .replay()
                .with_context(|| format!("replaying `{name}`")),
            None => {
                let refs: Vec<&Tensor> = captured.inputs.iter().collect();
                let fresh = f(&refs)?;
                tch::no_grad(|| {
                    for (target, value) in captured.outputs.iter().zip(&fresh) {
                        target.shallow_clone().copy_(value);
                    }
                });
                Ok(())
            }
        }
    }
}

/// A tensor of its own with `t`'s values.
fn copy(t: &Tensor) -> Tensor {
    let mut out = t.empty_like();
    tch::no_grad(|| out.copy_(t));
    out
}

fn copies(ts: &[Tensor]) -> Vec<Tensor> {
    ts.iter().map(copy).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_call_of_a_shape_is_captured_and_replays_follow_new_inputs() {
        let replays = GraphReplays::emulated(Device::Cpu, 4);
        let double = |x: &[&Tensor]| Ok(vec![x[0] * 2.0]);
        let a = Tensor::from_slice(&[1f32, 2.0]);
        let b = Tensor::from_slice(&[3f32, 4.0]);
        let c = Tensor::from_slice(&[5f32, 6.0]);
        assert_eq!(replays.run("double", &[&a], double).unwrap()[0], &a * 2.0);
        assert_eq!(replays.captured(), 0, "seen once: not captured");
        let first = replays.run("double", &[&b], double).unwrap().remove(0);
        assert_eq!(replays.captured(), 1);
        let second = replays.run("double", &[&c], double).unwrap().remove(0);
        assert_eq!(second, &c * 2.0, "the replay reads the new input");
        assert_eq!(
            first,
            &b * 2.0,
            "an earlier output is not overwritten by a replay"
        );
        // Another shape is another entry.
        let d = Tensor::from_slice(&[1f32, 2.0, 3.0]);
        assert_eq!(replays.run("double", &[&d], double).unwrap()[0], &d * 2.0);
        assert_eq!(replays.captured(), 1);
    }

    #[test]
    fn beyond_the_limit_calls_run_eagerly() {
        let replays = GraphReplays::emulated(Device::Cpu, 1);
        let neg = |x: &[&Tensor]| Ok(vec![-x[0]]);
        let a = Tensor::from_slice(&[1f32]);
        let b = Tensor::from_slice(&[1f32, 2.0]);
        for _ in 0..3 {
            assert_eq!(replays.run("neg", &[&a], neg).unwrap()[0], -&a);
            assert_eq!(replays.run("neg", &[&b], neg).unwrap()[0], -&b);
        }
        assert_eq!(replays.captured(), 1);
        assert_eq!(replays.entries.borrow().len(), 1);
    }

    #[test]
    fn cuda_graphs_refuse_the_cpu_naming_the_setting() {
        let err = GraphReplays::cuda(Device::Cpu, 4).err().unwrap();
        assert!(format!("{err}").contains("eval.cuda_graphs"), "{err}");
    }

    #[test]
    fn cuda_graphs_refuse_the_cpu_with_a_reason() {
        let err = CudaGraph::capture(Device::Cpu, || Ok(())).err().unwrap();
        assert!(format!("{err}").contains("CUDA device"), "{err}");
    }
}

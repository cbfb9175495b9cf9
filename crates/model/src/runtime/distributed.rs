//! c10d, PyTorch's distributed engine, through the shim (`csrc/distributed.cpp`): the job's
//! TCPStore, a process group (Gloo on the CPU, NCCL on CUDA), the collectives of data-parallel
//! training, DDP's Reducer, and SyncBatchNorm's differentiable all-reduce.
//!
//! The group that SyncBatchNorm reduces over is process-wide ([`set_sync_batch_norm`]): the
//! model's BatchNorm layers consult it in their forward, as PyTorch's `SyncBatchNorm` uses the
//! default process group.

use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::Tensor;

use super::check;

extern "C" {
    fn fgstp_dist_backends() -> c_int;
    fn fgstp_dist_init(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        host_store: c_int,
        prefix: *const c_char,
        timeout_ms: i64,
        backend: c_int,
        out: *mut *mut c_void,
    ) -> c_int;
    fn fgstp_dist_free(group: *mut c_void);
    fn fgstp_dist_broadcast(
        group: *mut c_void,
        t: *const *mut c_void,
        n: c_int,
        root: c_int,
    ) -> c_int;
    fn fgstp_dist_allreduce_sum(group: *mut c_void, t: *mut c_void) -> c_int;
    fn fgstp_dist_allreduce_sum_autograd(
        group: *mut c_void,
        t: *mut c_void,
        out: *mut *mut c_void,
    ) -> c_int;
    fn fgstp_dist_barrier(group: *mut c_void) -> c_int;
    fn fgstp_dist_store_set(
        group: *mut c_void,
        key: *const c_char,
        value: *const u8,
        len: usize,
    ) -> c_int;
    fn fgstp_dist_store_get(
        group: *mut c_void,
        key: *const c_char,
        value: *mut *mut u8,
        len: *mut usize,
    ) -> c_int;
    fn fgstp_dist_bytes_free(value: *mut u8);
    fn fgstp_dist_store_add(group: *mut c_void, key: *const c_char, v: i64, out: *mut i64)
        -> c_int;
    fn fgstp_dist_store_clone(group: *mut c_void, out: *mut *mut c_void) -> c_int;
    fn fgstp_dist_store_clone_add(
        store: *mut c_void,
        key: *const c_char,
        v: i64,
        out: *mut i64,
    ) -> c_int;
    fn fgstp_dist_store_clone_free(store: *mut c_void);
    fn fgstp_dist_reducer_new(
        group: *mut c_void,
        params: *const *mut c_void,
        names: *const *const c_char,
        n: c_int,
        first_bucket_bytes: i64,
        bucket_bytes: i64,
        find_unused: c_int,
        sync_bn: c_int,
    ) -> c_int;
    fn fgstp_dist_reducer_prepare(
        group: *mut c_void,
        outputs: *const *mut c_void,
        n: c_int,
    ) -> c_int;
    fn fgstp_dist_reducer_buckets(group: *mut c_void, out: *mut i64) -> c_int;
    fn fgstp_dist_reducer_timings(
        group: *mut c_void,
        compute: *mut i64,
        comm: *mut i64,
        overlap: *mut i64,
        steps: *mut i64,
    ) -> c_int;
}

/// The communication backend of a process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Gloo,
    Nccl,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Gloo => "gloo",
            Backend::Nccl => "nccl",
        }
    }

    /// Whether this build carries the backend (Gloo needs its headers at build time; NCCL
    /// needs NCCL's and CUDA's).
    pub fn compiled(self) -> bool {
        // SAFETY: reads two compile-time flags.
        let bits = unsafe { fgstp_dist_backends() };
        match self {
            Backend::Gloo => bits & 1 != 0,
            Backend::Nccl => bits & 2 != 0,
        }
    }
}

/// Where and how a process joins its job.
#[derive(Clone, Debug)]
pub struct JoinOptions {
    /// The store's host and port (`MASTER_ADDR`, `MASTER_PORT`).
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world: usize,
    /// Whether this process hosts the store (rank 0 unless a launcher's agent hosts it).
    pub host_store: bool,
    /// Namespace of this job's keys in the store (a restarted worker group gets a new one).
    pub prefix: String,
    /// How long a collective or a store read may wait before failing.
    pub timeout: Duration,
    pub backend: Backend,
}

/// This process's membership of a c10d process group, with its store.
pub struct ProcessGroup {
    raw: *mut c_void,
    rank: usize,
    world: usize,
    backend: Backend,
}

// SAFETY: c10d's process groups and stores are used from several threads by PyTorch itself
// (collectives are queued to the backend's own threads; the store serialises its operations).
unsafe impl Send for ProcessGroup {}
unsafe impl Sync for ProcessGroup {}

fn raw_tensor(t: &Tensor) -> *mut c_void {
    t.as_ptr() as *mut c_void
}

impl ProcessGroup {
    /// Connects to (or hosts) the store and forms the group; returns once every rank joined,
    /// or fails after the timeout.
    pub fn join(opts: &JoinOptions) -> Result<Self> {
        let host = CString::new(opts.host.as_str()).context("MASTER_ADDR contains a NUL byte")?;
        let prefix = CString::new(opts.prefix.as_str())?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: the strings live for the call; on success the shim hands over a new group.
        check(
            unsafe {
                fgstp_dist_init(
                    host.as_ptr(),
                    c_int::from(opts.port),
                    opts.rank as c_int,
                    opts.world as c_int,
                    c_int::from(opts.host_store),
                    prefix.as_ptr(),
                    opts.timeout.as_millis() as i64,
                    match opts.backend {
                        Backend::Gloo => 1,
                        Backend::Nccl => 2,
                    },
                    &mut raw,
                )
            },
            "joining the distributed job",
        )?;
        Ok(Self {
            raw,
            rank: opts.rank,
            world: opts.world,
            backend: opts.backend,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world(&self) -> usize {
        self.world
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Overwrites `tensors` with rank `root`'s (outside autograd), coalesced as DDP does: one
    /// collective per dtype, not per tensor.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let raw: Vec<*mut c_void> = tensors.iter().map(|t| raw_tensor(t)).collect();
        // SAFETY: live tensors for the duration of the call.
        check(
            unsafe {
                fgstp_dist_broadcast(self.raw, raw.as_ptr(), raw.len() as c_int, root as c_int)
            },
            &format!("broadcasting from rank {root}"),
        )
    }

    /// `t` becomes the sum over ranks (in place, outside autograd).
    pub fn all_reduce_sum(&self, t: &Tensor) -> Result<()> {
        // SAFETY: a live tensor.
        check(
            unsafe { fgstp_dist_allreduce_sum(self.raw, raw_tensor(t)) },
            "all-reduce",
        )
    }

    /// The sum over ranks of `t` as a new tensor that autograd goes through: its gradient is
    /// the sum over ranks of the gradients (SyncBatchNorm's statistics).
    pub fn all_reduce_sum_autograd(&self, t: &Tensor) -> Result<Tensor> {
        let mut out = std::ptr::null_mut();
        // SAFETY: a live tensor; on success a new one is handed over.
        check(
            unsafe { fgstp_dist_allreduce_sum_autograd(self.raw, raw_tensor(t), &mut out) },
            "all-reduce of batch statistics",
        )?;
        // SAFETY: `out` is a newly allocated at::Tensor.
        Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
    }

    pub fn barrier(&self) -> Result<()> {
        // SAFETY: plain call.
        check(unsafe { fgstp_dist_barrier(self.raw) }, "barrier")
    }

    /// Sets `key` in the job's store.
    pub fn store_set(&self, key: &str, value: &[u8]) -> Result<()> {
        let key_c = CString::new(key)?;
        // SAFETY: live buffers for the call.
        check(
            unsafe { fgstp_dist_store_set(self.raw, key_c.as_ptr(), value.as_ptr(), value.len()) },
            &format!("writing {key:?} to the job's store"),
        )
    }

    /// Waits (up to the timeout) for `key` in the job's store and returns its value.
    pub fn store_get(&self, key: &str) -> Result<Vec<u8>> {
        let key_c = CString::new(key)?;
        let mut value = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: on success the shim hands over a malloc'd buffer of `len` bytes.
        check(
            unsafe { fgstp_dist_store_get(self.raw, key_c.as_ptr(), &mut value, &mut len) },
            &format!("reading {key:?} from the job's store"),
        )?;
        // SAFETY: `value` holds `len` bytes until freed below.
        let bytes = unsafe { std::slice::from_raw_parts(value, len) }.to_vec();
        // SAFETY: allocated by the shim.
        unsafe { fgstp_dist_bytes_free(value) };
        Ok(bytes)
    }

    /// Adds `value` to the counter `key` and returns the new count.
    pub fn store_add(&self, key: &str, value: i64) -> Result<i64> {
        let key_c = CString::new(key)?;
        let mut out = 0;
        // SAFETY: plain call.
        check(
            unsafe { fgstp_dist_store_add(self.raw, key_c.as_ptr(), value, &mut out) },
            &format!("updating {key:?} in the job's store"),
        )?;
        Ok(out)
    }

    /// A second connection to the job's store, for another thread.
    pub fn store_connection(&self) -> Result<StoreConnection> {
        let mut raw = std::ptr::null_mut();
        // SAFETY: on success the shim hands over a new store handle.
        check(
            unsafe { fgstp_dist_store_clone(self.raw, &mut raw) },
            "connecting to the job's store",
        )?;
        Ok(StoreConnection { raw })
    }

    /// Sets up DDP's Reducer over `params` (named, in the same order on every rank): from
    /// then on, each backward prepared by [`ProcessGroup::prepare_backward`] leaves every
    /// gradient averaged over the ranks, all-reduced bucket by bucket while backward runs.
    pub fn attach_reducer(
        &self,
        params: &[(String, Tensor)],
        first_bucket_bytes: i64,
        bucket_bytes: i64,
        find_unused: bool,
        sync_batch_norm: bool,
    ) -> Result<()> {
        let names: Vec<CString> = params
            .iter()
            .map(|(n, _)| CString::new(n.as_str()))
            .collect::<std::result::Result<_, _>>()?;
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let raw: Vec<*mut c_void> = params.iter().map(|(_, t)| raw_tensor(t)).collect();
        // SAFETY: live tensors and strings for the call; the Reducer keeps its own references.
        check(
            unsafe {
                fgstp_dist_reducer_new(
                    self.raw,
                    raw.as_ptr(),
                    name_ptrs.as_ptr(),
                    raw.len() as c_int,
                    first_bucket_bytes,
                    bucket_bytes,
                    c_int::from(find_unused),
                    c_int::from(sync_batch_norm),
                )
            },
            "setting up the gradient reducer",
        )
    }

    /// Arms the Reducer for the next backward (of a graph reaching `outputs`).
    pub fn prepare_backward(&self, outputs: &[&Tensor]) -> Result<()> {
        let raw: Vec<*mut c_void> = outputs.iter().map(|t| raw_tensor(t)).collect();
        // SAFETY: live tensors for the call.
        check(
            unsafe { fgstp_dist_reducer_prepare(self.raw, raw.as_ptr(), raw.len() as c_int) },
            "preparing the gradient reducer",
        )
    }

    /// The Reducer's number of gradient buckets (0 without one).
    pub fn reducer_buckets(&self) -> Result<i64> {
        let mut n = 0;
        // SAFETY: plain call.
        check(
            unsafe { fgstp_dist_reducer_buckets(self.raw, &mut n) },
            "reading the reducer's buckets",
        )?;
        Ok(n)
    }
}

impl ProcessGroup {
    /// DDP's timings of backward so far (averages over the steps timed).
    pub fn reducer_timings(&self) -> Result<ReducerTimings> {
        let (mut compute, mut comm, mut overlap, mut _steps) = (0, 0, 0, 0);
        // SAFETY: plain call.
        check(
            unsafe {
                fgstp_dist_reducer_timings(
                    self.raw,
                    &mut compute,
                    &mut comm,
                    &mut overlap,
                    &mut _steps,
                )
            },
            "reading the reducer's timings",
        )?;
        let secs = |ns: i64| ns.max(0) as f64 * 1e-9;
        Ok(ReducerTimings {
            backward_compute: secs(compute),
            backward_comm: secs(comm),
            overlap: secs(overlap),
        })
    }
}

/// DDP's runtime statistics of backward, as `DistributedDataParallel._get_ddp_logging_data()`
/// reports them: running means over the steps timed so far (each step's are taken in when the
/// next one is prepared), in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReducerTimings {
    /// From the start of backward to the last gradient computed.
    pub backward_compute: f64,
    /// From the first bucket's all-reduce started to the last one finished.
    pub backward_comm: f64,
    /// The part of `backward_comm` that ran while gradients were still being computed.
    pub overlap: f64,
}

impl ReducerTimings {
    /// Communication not hidden behind compute, per step.
    pub fn exposed_comm(&self) -> f64 {
        (self.backward_comm - self.overlap).max(0.0)
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: created by fgstp_dist_init, freed once.
        unsafe { fgstp_dist_free(self.raw) }
    }
}

/// A connection of its own to the job's store.
pub struct StoreConnection {
    raw: *mut c_void,
}

// SAFETY: one connection, used by one thread at a time (&mut self).
unsafe impl Send for StoreConnection {}

impl StoreConnection {
    pub fn add(&mut self, key: &str, value: i64) -> Result<i64> {
        let key_c = CString::new(key)?;
        let mut out = 0;
        // SAFETY: plain call on a live handle.
        check(
            unsafe { fgstp_dist_store_clone_add(self.raw, key_c.as_ptr(), value, &mut out) },
            &format!("updating {key:?} in the job's store"),
        )?;
        Ok(out)
    }
}

impl Drop for StoreConnection {
    fn drop(&mut self) {
        // SAFETY: created by fgstp_dist_store_clone, freed once.
        unsafe { fgstp_dist_store_clone_free(self.raw) }
    }
}

static SYNC_BATCH_NORM_NANOS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Seconds spent in SyncBatchNorm's all-reduces (forward and backward of the forward's
/// reductions: the forward's are counted) since the process started.
pub fn sync_batch_norm_seconds() -> f64 {
    SYNC_BATCH_NORM_NANOS.load(std::sync::atomic::Ordering::Relaxed) as f64 * 1e-9
}

static SYNC_FAILURE: std::sync::Mutex<Option<anyhow::Error>> = std::sync::Mutex::new(None);

/// Keeps the first failure of a SyncBatchNorm all-reduce (inside a forward, which cannot fail).
pub fn record_sync_failure(error: anyhow::Error) {
    let mut slot = SYNC_FAILURE.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        *slot = Some(error);
    }
}

/// The failure kept by [`record_sync_failure`] since the last call, if any.
pub fn take_sync_failure() -> Option<anyhow::Error> {
    SYNC_FAILURE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

static SYNC_BATCH_NORM: RwLock<Option<Arc<ProcessGroup>>> = RwLock::new(None);

/// Makes the model's BatchNorm layers reduce their batch statistics over `group` while they
/// use batch statistics (SyncBatchNorm); `None` turns it off.
pub fn set_sync_batch_norm(group: Option<Arc<ProcessGroup>>) {
    *SYNC_BATCH_NORM.write().unwrap_or_else(|e| e.into_inner()) = group;
}

/// The group BatchNorm layers synchronise over, if any (and if it has more than one rank).
pub fn sync_batch_norm_group() -> Option<Arc<ProcessGroup>> {
    SYNC_BATCH_NORM
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|g| g.world() > 1)
        .cloned()
}

/// BatchNorm over `[N, C, …]` with batch statistics taken over every rank's batch (as
/// `torch.nn.SyncBatchNorm` in training), the running statistics updated with them (unbiased
/// variance over the global count). Two all-reduces: the sums and counts for the mean, then the
/// squared deviations from it, so the variance is as exact as a single process's.
#[allow(clippy::too_many_arguments)]
pub fn sync_batch_norm(
    group: &ProcessGroup,
    xs: &Tensor,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    running_mean: &Tensor,
    running_var: &Tensor,
    momentum: f64,
    eps: f64,
) -> Result<Tensor> {
    let dims: Vec<i64> = (0..xs.dim() as i64).filter(|&d| d != 1).collect();
    let channels = xs.size()[1];
    let local = (xs.numel() as i64 / channels.max(1)) as f64;
    let shape: Vec<i64> = (0..xs.dim() as i64)
        .map(|d| if d == 1 { channels } else { 1 })
        .collect();
    // Every rank's batch has the same size (the sampler pads the last global batch), so this
    // check needs nothing from the other ranks.
    if local * group.world() as f64 <= 1.0 {
        bail!(
            "SyncBatchNorm: expected more than 1 value per channel over all ranks' batches \
             (got {})",
            local * group.world() as f64
        );
    }
    let count_local = Tensor::full([1], local, (xs.kind(), xs.device()));
    // [C + 1]: per-channel sums, then the element count.
    let sums = Tensor::cat(
        &[
            xs.sum_dim_intlist(dims.as_slice(), false, xs.kind()),
            count_local,
        ],
        0,
    );
    let started = std::time::Instant::now();
    let sums = group.all_reduce_sum_autograd(&sums)?;
    let count = sums.narrow(0, channels, 1);
    let mean = sums.narrow(0, 0, channels) / &count;
    let centered = xs - mean.view(shape.as_slice());
    let squares = centered
        .square()
        .sum_dim_intlist(dims.as_slice(), false, xs.kind());
    let var = group.all_reduce_sum_autograd(&squares)? / &count;
    SYNC_BATCH_NORM_NANOS.fetch_add(
        started.elapsed().as_nanos() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    tch::no_grad(|| {
        // Unbiased by the global count, kept on the device (no read-back per layer on a GPU).
        let count = count.detach();
        let unbiased = var.detach() * (&count / (&count - 1.0));
        let mut running_mean = running_mean.shallow_clone();
        let mut running_var = running_var.shallow_clone();
        running_mean *= 1.0 - momentum;
        running_mean += mean.detach() * momentum;
        running_var *= 1.0 - momentum;
        running_var += unbiased * momentum;
    });
    let normalised = centered * (var + eps).rsqrt().view(shape.as_slice());
    let scaled = match weight {
        Some(w) => normalised * w.view(shape.as_slice()),
        None => normalised,
    };
    let ys = match bias {
        Some(b) => scaled + b.view(shape.as_slice()),
        None => scaled,
    };
    Ok(ys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port on 127.0.0.1")
    }

    /// Rank `rank`'s tensors: floats, doubles and integers of several shapes (BatchNorm's
    /// running statistics and batch counters are of such mixed kinds).
    fn rank_tensors(rank: usize) -> Vec<Tensor> {
        let offset = 100.0 * rank as f64;
        vec![
            Tensor::arange(7, (Kind::Float, Device::Cpu)) + offset,
            Tensor::from(rank as i64 * 1000 + 3),
            Tensor::arange(12, (Kind::Double, Device::Cpu)).view([3, 4]) * (rank as f64 + 1.0),
            Tensor::arange(5, (Kind::Int64, Device::Cpu)) - rank as i64,
            Tensor::full([2, 2, 2], offset + 0.5, (Kind::Float, Device::Cpu)),
        ]
    }

    #[test]
    fn broadcast_gives_every_rank_the_roots_tensors_of_every_kind() {
        let port = free_port();
        let ranks: Vec<_> = (0..2)
            .map(|rank| {
                std::thread::spawn(move || -> Result<Vec<Vec<Tensor>>> {
                    let group = ProcessGroup::join(&JoinOptions {
                        host: "127.0.0.1".into(),
                        port,
                        rank,
                        world: 2,
                        host_store: rank == 0,
                        prefix: "broadcast-test".into(),
                        timeout: Duration::from_secs(60),
                        backend: Backend::Gloo,
                    })?;
                    let mut seen = Vec::new();
                    for root in [0, 1] {
                        let tensors = rank_tensors(rank);
                        let refs: Vec<&Tensor> = tensors.iter().collect();
                        group.broadcast(&refs, root)?;
                        seen.push(tensors);
                    }
                    Ok(seen)
                })
            })
            .collect();
        let results: Vec<Vec<Vec<Tensor>>> = ranks
            .into_iter()
            .map(|h| h.join().expect("rank thread").expect("rank"))
            .collect();
        for root in [0usize, 1] {
            let expected = rank_tensors(root);
            for (rank, seen) in results.iter().enumerate() {
                for (got, want) in seen[root].iter().zip(&expected) {
                    assert_eq!(got.kind(), want.kind(), "rank {rank}, root {root}");
                    assert_eq!(got.size(), want.size(), "rank {rank}, root {root}");
                    assert!(
                        got.equal(want),
                        "rank {rank} after broadcast from {root}: {got} instead of {want}"
                    );
                }
            }
        }
    }
}

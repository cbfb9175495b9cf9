//! Data-parallel training over several processes, as PyTorch's DistributedDataParallel does it
//! and on the same engine (c10d, [`fgstp_model::runtime::distributed`]):
//!
//! - [`launch_env`]: where a worker stands in its job (torchrun, srun, by hand, `--nproc`);
//! - [`local_workers`]: `fgstp train --nproc N`, which starts the workers itself;
//! - [`Dist`]: one process's membership — joining (the store, the process group and the
//!   checks made before the first step), the agreements every rank must reach (run directory,
//!   configuration, data), and naming the rank that was lost when a collective fails.

pub mod launch_env;
pub mod local_workers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fgstp_model::runtime::distributed::{Backend, JoinOptions, ProcessGroup};
use tch::{Device, Kind, Tensor};

use crate::run_config::{DistBackend, TrainConfig};
pub use launch_env::{LaunchEnv, Launcher};

/// How often each rank tells the store it is alive (see [`Dist::explain_failure`]).
const HEARTBEAT: Duration = Duration::from_millis(500);

/// The longest `train.dist_timeout`, in seconds (about 4 months). Beyond `u64::MAX` seconds
/// `Duration::from_secs_f64` panics, and c10d adds its timeouts to a clock counted in
/// nanoseconds in an `i64` (about 292 years): this bound keeps well inside both.
pub const MAX_DIST_TIMEOUT_SECS: f64 = 1e7;

/// `train.dist_timeout` (seconds) as a [`Duration`]: an error naming the key unless it is
/// positive and at most [`MAX_DIST_TIMEOUT_SECS`] (NaN and infinities included).
pub fn dist_timeout(seconds: f64) -> Result<Duration> {
    if !(seconds > 0.0 && seconds <= MAX_DIST_TIMEOUT_SECS) {
        bail!(
            "train.dist_timeout must be a positive number of seconds up to {MAX_DIST_TIMEOUT_SECS:e} \
             (about 4 months), not {seconds}"
        );
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// This process's membership of a distributed training job.
pub struct Dist {
    pub env: LaunchEnv,
    pub group: Arc<ProcessGroup>,
    /// The device this rank trains on (`cuda:LOCAL_RANK` on GPUs).
    pub device: Device,
    timeout: Duration,
    heartbeat_stop: Arc<AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

impl Dist {
    /// Joins the job `env` describes: checks the backend against the device, connects to (or
    /// hosts) the store and forms the process group. `device` is the configured one; on CUDA
    /// each process takes the GPU of its local rank.
    pub fn join(env: LaunchEnv, train: &TrainConfig, device: Device) -> Result<Self> {
        let device = match device {
            Device::Cuda(_) => Device::Cuda(env.local_rank),
            other => other,
        };
        let backend = match (train.dist_backend, device) {
            (DistBackend::Auto, Device::Cuda(_)) | (DistBackend::Nccl, _) => Backend::Nccl,
            _ => Backend::Gloo,
        };
        if backend == Backend::Nccl && !device.is_cuda() {
            bail!(
                "train.dist_backend = \"nccl\" needs CUDA, but this process trains on the CPU \
                 (train.device = {:?}): NCCL only moves GPU tensors. Use \
                 train.dist_backend = \"gloo\" (or \"auto\") on the CPU",
                train.device
            );
        }
        if let Device::Cuda(index) = device {
            let count = tch::Cuda::device_count() as usize;
            if index >= count {
                bail!(
                    "rank {} has LOCAL_RANK {index}, but this machine shows {count} GPU(s): start at \
                     most {count} processes per node (torchrun --nproc-per-node {count})",
                    env.rank
                );
            }
        }
        if !backend.compiled() {
            bail!(
                "this fgstp was built without c10d's {} backend: {}",
                backend.name(),
                match backend {
                    Backend::Gloo =>
                        "Gloo's headers were missing when it was built (Debian's \
                        libgloo-dev, which scripts/setup-libtorch installs); rebuild after \
                        installing it",
                    Backend::Nccl =>
                        "NCCL's and CUDA's headers were missing when it was built \
                        (set CUDA_HOME to a CUDA toolkit and rebuild), or train with \
                        train.dist_backend = \"gloo\"",
                }
            );
        }
        let timeout = dist_timeout(train.dist_timeout)?;
        let options = JoinOptions {
            host: env.master_addr.clone(),
            port: env.master_port,
            rank: env.rank,
            world: env.world_size,
            host_store: env.hosts_store(),
            // A restarted worker group starts over in a namespace of its own.
            prefix: format!("fgstp/{}/", env.restart_count),
            timeout,
            backend,
        };
        let group = ProcessGroup::join(&options).map_err(|e| join_error(e, &env, timeout))?;
        let group = Arc::new(group);
        let heartbeat_stop = Arc::new(AtomicBool::new(false));
        let heartbeat = spawn_heartbeat(&group, Arc::clone(&heartbeat_stop))?;
        eprintln!("distributed: {}, {}", env.describe(), backend.name());
        Ok(Self {
            env,
            group,
            device,
            timeout,
            heartbeat_stop,
            heartbeat: Some(heartbeat),
        })
    }

    pub fn rank(&self) -> usize {
        self.env.rank
    }

    pub fn world(&self) -> usize {
        self.env.world_size
    }

    /// Rank 0 writes the checkpoints and the logs.
    pub fn is_main(&self) -> bool {
        self.env.rank == 0
    }

    /// The run directory of the job: rank 0's (ranks may have stamped different times).
    pub fn agree_on_run_dir(&self, proposed: &Path) -> Result<PathBuf> {
        if self.is_main() {
            let text = proposed
                .to_str()
                .context("the run directory's path is not UTF-8")?;
            self.group.store_set("run_dir", text.as_bytes())?;
            Ok(proposed.to_path_buf())
        } else {
            let bytes = self
                .group
                .store_get("run_dir")
                .map_err(|e| self.explain_failure(e))?;
            Ok(PathBuf::from(String::from_utf8(bytes)?))
        }
    }

    /// Fails on every rank, before the first step, unless every rank resolved the same run
    /// configuration as rank 0 (the same file, overrides and defaults): ranks that train
    /// differently would average gradients of different things.
    pub fn agree_on_config(&self, config_toml: &str) -> Result<()> {
        let rank = self.rank();
        if self.is_main() {
            self.group.store_set("config", config_toml.as_bytes())?;
        } else {
            let ours = config_toml;
            let theirs = String::from_utf8(
                self.group
                    .store_get("config")
                    .map_err(|e| self.explain_failure(e))?,
            )?;
            let verdict = if theirs == ours {
                "same".to_string()
            } else {
                first_difference(&theirs, ours)
            };
            self.group
                .store_set(&format!("config_check/{rank}"), verdict.as_bytes())?;
        }
        // Every rank reads every verdict, so all fail together.
        for other in 1..self.world() {
            let verdict = String::from_utf8(
                self.group
                    .store_get(&format!("config_check/{other}"))
                    .map_err(|e| self.explain_failure(e))?,
            )?;
            if verdict != "same" {
                bail!(
                    "rank {other}'s run configuration differs from rank 0's ({verdict}): every \
                     process must be started with the same --config and --set options"
                );
            }
        }
        Ok(())
    }

    /// Runs `prepare` on rank 0 only (e.g. generating the synthetic dataset once, on a shared
    /// filesystem); the other ranks wait for it and fail with its error if it fails.
    pub fn on_main_first(&self, what: &str, prepare: impl FnOnce() -> Result<()>) -> Result<()> {
        let key = format!("done/{what}");
        if self.is_main() {
            let result = prepare();
            let verdict = match &result {
                Ok(()) => "ok".to_string(),
                Err(e) => format!("{e:#}"),
            };
            self.group.store_set(&key, verdict.as_bytes())?;
            result
        } else {
            let verdict = String::from_utf8(
                self.group
                    .store_get(&key)
                    .map_err(|e| self.explain_wait(e, Some(what)))?,
            )?;
            if verdict != "ok" {
                bail!("rank 0 failed while {what}: {verdict}");
            }
            Ok(())
        }
    }

    /// Waits until every rank got here (a one-element all-reduce on the training device,
    /// which works for every backend).
    pub fn barrier(&self) -> Result<()> {
        let one = Tensor::ones([1], (Kind::Float, self.device));
        self.group
            .all_reduce_sum(&one)
            .map_err(|e| self.explain_failure(e))
    }

    /// `error` (a failed collective or store access) with the ranks that stopped answering
    /// named: every rank adds to its heartbeat counter in the store twice a second, so a
    /// counter that does not move for a few heartbeats belongs to a lost rank. When the store
    /// itself is gone, so is its host (rank 0, unless torchrun's agent hosts it). When every
    /// rank still answers, one was busy for longer than `train.dist_timeout`, which is named.
    /// The explanation comes first, then c10d's message without its C++ backtrace.
    pub fn explain_failure(&self, error: anyhow::Error) -> anyhow::Error {
        self.explain_wait(error, None)
    }

    /// [`Dist::explain_failure`] for a rank that waited for rank 0 while rank 0 was doing
    /// `waiting_for` (e.g. "preparing the run directory and the data"), named when rank 0 still
    /// answers: it is still at it.
    fn explain_wait(&self, error: anyhow::Error, waiting_for: Option<&str>) -> anyhow::Error {
        let error = without_backtrace(error);
        let started = Instant::now();
        let read = || -> Result<Vec<i64>> {
            (0..self.world())
                .map(|r| self.group.store_add(&format!("heartbeat/{r}"), 0))
                .collect()
        };
        let lost = read().and_then(|before| {
            std::thread::sleep(HEARTBEAT * 4);
            let after = read()?;
            Ok((0..self.world())
                .filter(|&r| r != self.rank() && after[r] == before[r])
                .collect::<Vec<_>>())
        });
        let timeout = self.timeout.as_secs_f64();
        let context = match (lost, waiting_for) {
            (Ok(lost), Some(what)) if lost.is_empty() => format!(
                "rank {} gave up waiting for rank 0 after train.dist_timeout = {timeout} s: rank 0 \
                 is still {what} (it still answers; checked in {:.1} s). Raise \
                 train.dist_timeout (--set train.dist_timeout=SECONDS) above the time that takes",
                self.rank(),
                started.elapsed().as_secs_f64()
            ),
            (Ok(lost), None) if lost.is_empty() => format!(
                "rank {}: a collective failed, but every rank still answers (checked in {:.1} \
                 s): if a rank was busy for longer than train.dist_timeout = {timeout} s, raise \
                 train.dist_timeout",
                self.rank(),
                started.elapsed().as_secs_f64()
            ),
            (Ok(lost), _) => format!(
                "rank {}: lost rank{} {} (no heartbeat for {:.1} s): the job cannot go on",
                self.rank(),
                if lost.len() > 1 { "s" } else { "" },
                lost.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                (HEARTBEAT * 4).as_secs_f64()
            ),
            (Err(_), _) if self.env.use_agent_store => format!(
                "rank {}: lost the launcher's store at {}:{} (torchrun's agent is gone)",
                self.rank(),
                self.env.master_addr,
                self.env.master_port
            ),
            (Err(_), _) => format!(
                "rank {}: lost rank 0 (its store at {}:{} no longer answers)",
                self.rank(),
                self.env.master_addr,
                self.env.master_port
            ),
        };
        error.context(context)
    }

    /// How long collectives wait (`train.dist_timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl Drop for Dist {
    fn drop(&mut self) {
        self.heartbeat_stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.heartbeat.take() {
            let _ = handle.join();
        }
    }
}

/// The first line where rank 0's configuration (`theirs`) and this rank's differ.
fn first_difference(theirs: &str, ours: &str) -> String {
    let mut a = theirs.lines();
    let mut b = ours.lines();
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => {
                return format!(
                    "rank 0 has {:?}, this rank {:?}",
                    x.unwrap_or("<end>"),
                    y.unwrap_or("<end>")
                )
            }
        }
    }
}

/// `error`'s message without the C++ backtrace c10d appends to it ("Exception raised from …
/// (most recent call first):" and a score of "frame #N: …" lines), which says where in
/// libtorch it failed, not what to do; `error` itself when it has none.
fn without_backtrace(error: anyhow::Error) -> anyhow::Error {
    let text = format!("{error:#}");
    let cut = ["\nException raised from ", "\nframe #"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min();
    match cut {
        Some(at) => anyhow!("{}", text[..at].trim_end()),
        None => error,
    }
}

/// A failed join, said in terms of the launcher's variables: the hint first, then c10d's
/// message without its backtrace.
fn join_error(error: anyhow::Error, env: &LaunchEnv, timeout: Duration) -> anyhow::Error {
    let text = format!("{error:#}");
    let place = format!("{}:{}", env.master_addr, env.master_port);
    let hint = if text.contains("EADDRINUSE") || text.contains("address already in use") {
        format!(
            "rank 0 cannot host the store at {place}: the port is in use (another job?). {}",
            port_advice(env)
        )
    } else if env.hosts_store() {
        format!(
            "rank 0 hosts the store at {place} but not every one of the {} ranks joined within \
             train.dist_timeout = {} s: check that all were started with the same WORLD_SIZE",
            env.world_size,
            timeout.as_secs_f64()
        )
    } else {
        format!(
            "rank {} could not join the job through the store at {place} within \
             train.dist_timeout = {} s: check MASTER_ADDR/MASTER_PORT, that rank 0 (or torchrun's \
             agent) runs, and that this host can reach it",
            env.rank,
            timeout.as_secs_f64()
        )
    };
    without_backtrace(error).context(hint)
}

/// What sets the store's port, for each launcher (`fgstp train` itself has no port option).
fn port_advice(env: &LaunchEnv) -> &'static str {
    match env.launcher {
        Launcher::Local => {
            "fgstp --nproc picked it as free a moment before, and another process took it: \
             start again (it picks another port)"
        }
        Launcher::Slurm => {
            "Set MASTER_PORT to a free port for this job (without it a Slurm job's store listens \
             on 29500 + SLURM_JOB_ID % 1000, the same for jobs whose ids end alike)"
        }
        Launcher::Torchrun => {
            "Choose another port for torchrun (its --master-port, which it passes on as \
             MASTER_PORT)"
        }
        Launcher::Static => "Set another MASTER_PORT for this job, the same for every rank",
    }
}

fn spawn_heartbeat(
    group: &ProcessGroup,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let mut store = group.store_connection()?;
    let key = format!("heartbeat/{}", group.rank());
    Ok(std::thread::Builder::new()
        .name("fgstp-heartbeat".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if store.add(&key, 1).is_err() {
                    return;
                }
                std::thread::sleep(HEARTBEAT);
            }
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_timeout_is_bounded_where_it_becomes_a_duration() {
        assert_eq!(dist_timeout(1800.0).unwrap(), Duration::from_secs(1800));
        assert_eq!(dist_timeout(0.5).unwrap(), Duration::from_millis(500));
        assert_eq!(
            dist_timeout(MAX_DIST_TIMEOUT_SECS).unwrap(),
            Duration::from_secs(10_000_000)
        );
        // 1e20 made `Duration::from_secs_f64` panic.
        for bad in [1e20, 1.0e7 + 1.0, f64::INFINITY, f64::NAN, 0.0, -1.0] {
            let e = dist_timeout(bad).unwrap_err().to_string();
            assert!(
                e.contains("train.dist_timeout must be a positive number of seconds up to 1e7"),
                "{bad}: {e}"
            );
        }
    }

    /// What c10d's TCPStore says when a read times out (torch 2.13), shortened.
    const TIMED_OUT: &str = "wait timeout after 1000ms, keys: /fgstp/0//done/x\n\
        Exception raised from doWait at /__w/pytorch/torch/csrc/distributed/c10d/TCPStore.cpp:603 \
        (most recent call first):\n\
        frame #0: c10::Error::Error(c10::SourceLocation, std::string) + 0x9d (0x7f in libc10.so)\n\
        frame #1: <unknown function> + 0x12fde6e (0x55 in fgstp)\n";

    #[test]
    fn the_backtrace_of_a_c10d_error_is_left_out() {
        let error = anyhow!("{TIMED_OUT}").context("reading \"done/x\" from the job's store");
        assert_eq!(
            format!("{:#}", without_backtrace(error)),
            "reading \"done/x\" from the job's store: wait timeout after 1000ms, keys: \
             /fgstp/0//done/x"
        );
        let plain = anyhow!("Connection closed by peer").context("all-reduce");
        assert_eq!(
            format!("{:#}", without_backtrace(plain)),
            "all-reduce: Connection closed by peer"
        );
    }

    #[test]
    fn a_port_in_use_is_said_first_with_what_sets_the_port() {
        let env = |launcher| LaunchEnv {
            rank: 0,
            world_size: 2,
            local_rank: 0,
            local_world_size: 2,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
            use_agent_store: false,
            restart_count: 0,
            launcher,
        };
        let in_use = || {
            anyhow!("The server socket has failed to listen on any local network address. port: 29500, useIpv6: 0, code: -98, name: EADDRINUSE, message: address already in use\nException raised from makeWithPort at TCPStoreLibUvBackend.cpp:1\nframe #0: c10::Error::Error")
                .context("joining the distributed job")
        };
        for (launcher, advice) in [
            (Launcher::Local, "start again (it picks another port)"),
            (Launcher::Static, "Set another MASTER_PORT"),
            (Launcher::Slurm, "Set MASTER_PORT to a free port"),
            (Launcher::Torchrun, "torchrun (its --master-port"),
        ] {
            let e = format!(
                "{:#}",
                join_error(in_use(), &env(launcher), Duration::from_secs(5))
            );
            assert!(
                e.starts_with(
                    "rank 0 cannot host the store at 127.0.0.1:29500: the port is in use"
                ),
                "{e}"
            );
            assert!(e.contains(advice), "{launcher}: {e}");
            assert!(e.ends_with("message: address already in use"), "{e}");
            assert!(!e.contains("or --master-port"), "{e}");
        }
    }
}

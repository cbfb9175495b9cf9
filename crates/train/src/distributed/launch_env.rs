//! How a worker learns its place in a distributed job: PyTorch's launcher contract.
//!
//! A launcher starts one process per rank and tells each, through environment variables, its
//! rank, the size of the job and where rank 0's rendezvous store listens:
//!
//! - **torchrun** (`torch.distributed.run`): `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//!   `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, plus its own `TORCHELASTIC_*` and
//!   `GROUP_RANK`. With `TORCHELASTIC_USE_AGENT_STORE=True` the elastic agent already hosts the
//!   TCPStore at `MASTER_ADDR:MASTER_PORT`, so every rank (rank 0 included) connects as a client.
//! - **static**: the same six variables set by hand or by another tool (rank 0 hosts the store).
//! - **Slurm**: tasks started by `srun` (recognised by `SLURM_PROCID` together with
//!   `SLURM_STEP_ID`; a batch script alone runs no tasks), read from `SLURM_*`. A step of one
//!   task (`srun --pty bash`, salloc's interactive step) is no launcher: its process trains
//!   as if started by hand.
//! - **local**: `fgstp train --nproc N` ([`super::local_workers`]) sets the six variables and
//!   `FGSTP_LOCAL_LAUNCH=1`.
//!
//! Variables set to an empty (or all-blank) string count as unset; values are trimmed.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};

/// The port of a Slurm job's store when `MASTER_PORT` is unset: `29500 + SLURM_JOB_ID % 1000`.
pub const SLURM_BASE_PORT: u16 = 29500;

/// Who started this worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// `torchrun` / `python -m torch.distributed.run` (elastic agent variables present).
    Torchrun,
    /// `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT` set by hand or another tool.
    Static,
    /// A task of an `srun` job step.
    Slurm,
    /// `fgstp train --nproc N`.
    Local,
}

impl fmt::Display for Launcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Launcher::Torchrun => "torchrun",
            Launcher::Static => "static",
            Launcher::Slurm => "slurm",
            Launcher::Local => "fgstp --nproc",
        })
    }
}

/// This worker's place in a distributed job, as its launcher described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchEnv {
    pub rank: usize,
    pub world_size: usize,
    pub local_rank: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
    /// torchrun's agent already hosts the TCPStore: every rank connects as a client.
    pub use_agent_store: bool,
    /// TORCHELASTIC_RESTART_COUNT (0 unless a worker group was restarted).
    pub restart_count: u32,
    pub launcher: Launcher,
}

impl LaunchEnv {
    /// Reads the process environment; see [`LaunchEnv::from_vars`].
    ///
    /// `None` when no launcher variables are set (single-process training).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads the launcher variables through `get` (the environment, or a map in tests).
    ///
    /// - `RANK` and `WORLD_SIZE` (both or neither) make a torchrun, static or local job:
    ///   `LOCAL_RANK` defaults to `RANK` and `LOCAL_WORLD_SIZE` to `WORLD_SIZE` (one node);
    ///   `MASTER_ADDR` and `MASTER_PORT` are required. The launcher is
    ///   [`Launcher::Local`] with `FGSTP_LOCAL_LAUNCH=1`, else [`Launcher::Torchrun`] when
    ///   `TORCHELASTIC_USE_AGENT_STORE` is true (`true`/`1`, any case),
    ///   `TORCHELASTIC_RESTART_COUNT` or `GROUP_RANK` is set, else [`Launcher::Static`].
    /// - Otherwise an `srun` task (`SLURM_PROCID` and `SLURM_STEP_ID` set) of a step of more
    ///   than one task makes a Slurm job (the only task of a step, e.g. `srun --pty bash`, is
    ///   `None`: a single process, which may start its own local workers):
    ///   rank `SLURM_PROCID`, world `SLURM_NTASKS` (or `SLURM_NPROCS`), local rank
    ///   `SLURM_LOCALID`; the local world size is the first number of
    ///   `SLURM_NTASKS_PER_NODE`, else this node's entry (by `SLURM_NODEID`) of
    ///   `SLURM_STEP_TASKS_PER_NODE`, else the **first** entry of `SLURM_STEP_TASKS_PER_NODE`
    ///   or `SLURM_TASKS_PER_NODE` (formats like `2(x3),1`) — an approximation that is exact
    ///   when every node runs the same number of tasks. The store is at `MASTER_ADDR` if set,
    ///   else the first host of `SLURM_STEP_NODELIST` (or `SLURM_JOB_NODELIST`,
    ///   `SLURM_NODELIST`), on `MASTER_PORT` if set, else on port
    ///   `29500 + SLURM_JOB_ID % 1000` — the same for every task of a job.
    /// - Otherwise `None`.
    ///
    /// A world size of 1 is still `Some`: a one-process distributed job is valid.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let rank = get("RANK");
        let world = get("WORLD_SIZE");
        match (rank, world) {
            (Some(rank), Some(world)) => from_rank_vars(&get, &rank, &world).map(Some),
            (None, Some(world)) => bail!(
                "WORLD_SIZE={world} is set but RANK is not: set both (a launcher such as \
                 torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), or unset \
                 WORLD_SIZE for single-process training"
            ),
            (Some(rank), None) => bail!(
                "RANK={rank} is set but WORLD_SIZE is not: set both (a launcher such as \
                 torchrun sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT), or unset RANK \
                 for single-process training"
            ),
            (None, None) => {
                if get("SLURM_PROCID").is_some() && get("SLURM_STEP_ID").is_some() {
                    if is_one_task_slurm_step(&get) {
                        return Ok(None);
                    }
                    from_slurm_vars(&get).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// One line for logs, e.g.
    /// `rank 1 of 2 (local 1 of 2), torchrun, store at HOST:PORT (agent's)`.
    pub fn describe(&self) -> String {
        let host = if self.master_addr.contains(':') && !self.master_addr.starts_with('[') {
            format!("[{}]", self.master_addr) // an IPv6 address
        } else {
            self.master_addr.clone()
        };
        let host_of_store = if self.use_agent_store {
            "agent's"
        } else if self.rank == 0 {
            "hosted here, by rank 0"
        } else {
            "rank 0's"
        };
        let mut line = format!(
            "rank {} of {} (local {} of {}), {}, store at {host}:{} ({host_of_store})",
            self.rank,
            self.world_size,
            self.local_rank,
            self.local_world_size,
            self.launcher,
            self.master_port,
        );
        if self.restart_count > 0 {
            line.push_str(&format!(", restart {}", self.restart_count));
        }
        line
    }

    /// Whether this process hosts the rendezvous store (rank 0, unless torchrun's agent does).
    pub fn hosts_store(&self) -> bool {
        self.rank == 0 && !self.use_agent_store
    }
}

/// The torchrun / static / local contract: `RANK` and `WORLD_SIZE` are both set.
fn from_rank_vars(
    get: &impl Fn(&str) -> Option<String>,
    rank: &str,
    world: &str,
) -> Result<LaunchEnv> {
    let rank: usize = parse_var("RANK", rank)?;
    let world_size: usize = parse_var("WORLD_SIZE", world)?;
    check_world("RANK", rank, "WORLD_SIZE", world_size)?;
    let local_rank = match get("LOCAL_RANK") {
        Some(v) => parse_var("LOCAL_RANK", &v)?,
        None => rank,
    };
    let local_world_size = match get("LOCAL_WORLD_SIZE") {
        Some(v) => parse_var("LOCAL_WORLD_SIZE", &v)?,
        None => world_size,
    };
    check_local(
        "LOCAL_RANK",
        local_rank,
        "LOCAL_WORLD_SIZE",
        local_world_size,
    )?;

    let (master_addr, port) = match (get("MASTER_ADDR"), get("MASTER_PORT")) {
        (Some(addr), Some(port)) => (addr, port),
        (addr, port) => {
            let missing = match (addr, port) {
                (None, None) => "MASTER_ADDR and MASTER_PORT are",
                (None, Some(_)) => "MASTER_ADDR is",
                _ => "MASTER_PORT is",
            };
            bail!(
                "RANK and WORLD_SIZE are set but {missing} not: set MASTER_ADDR and \
                 MASTER_PORT (torchrun sets them) to the host and port of rank 0's store"
            )
        }
    };
    let master_port = parse_port("MASTER_PORT", &port)?;

    let truthy = |k: &str| get(k).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let use_agent_store = truthy("TORCHELASTIC_USE_AGENT_STORE");
    let restart_count = match get("TORCHELASTIC_RESTART_COUNT") {
        Some(v) => parse_var("TORCHELASTIC_RESTART_COUNT", &v)?,
        None => 0,
    };
    let launcher = if truthy("FGSTP_LOCAL_LAUNCH") {
        Launcher::Local
    } else if use_agent_store
        || get("TORCHELASTIC_RESTART_COUNT").is_some()
        || get("GROUP_RANK").is_some()
    {
        Launcher::Torchrun
    } else {
        Launcher::Static
    };
    Ok(LaunchEnv {
        rank,
        world_size,
        local_rank,
        local_world_size,
        master_addr,
        master_port,
        use_agent_store,
        restart_count,
        launcher,
    })
}

/// Whether this is the only task of its Slurm step (`SLURM_NTASKS`, else `SLURM_NPROCS`, is
/// 1, and `SLURM_PROCID` 0): an interactive shell (`srun --pty bash`, salloc's interactive
/// step) or a one-task `srun`. No launcher started this process as a rank of a job, so it
/// trains alone or starts its own workers (`--nproc`, `train.processes`) rather than host a
/// store on the job's fixed port (which a second training in the same shell would find in use).
fn is_one_task_slurm_step(get: &impl Fn(&str) -> Option<String>) -> bool {
    let tasks = get("SLURM_NTASKS").or_else(|| get("SLURM_NPROCS"));
    tasks.as_deref() == Some("1") && get("SLURM_PROCID").as_deref() == Some("0")
}

/// A task of an `srun` step (`SLURM_PROCID` and `SLURM_STEP_ID` set, `RANK`/`WORLD_SIZE` not).
fn from_slurm_vars(get: &impl Fn(&str) -> Option<String>) -> Result<LaunchEnv> {
    let required = |k: &str| {
        get(k).with_context(|| {
            format!(
                "srun task (SLURM_PROCID and SLURM_STEP_ID are set) without {k}: run the job \
                 with srun, or set RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR \
                 and MASTER_PORT yourself"
            )
        })
    };
    let rank: usize = parse_var("SLURM_PROCID", &required("SLURM_PROCID")?)?;
    let (world_var, world) = match get("SLURM_NTASKS") {
        Some(v) => ("SLURM_NTASKS", v),
        None => match get("SLURM_NPROCS") {
            Some(v) => ("SLURM_NPROCS", v),
            None => ("SLURM_NTASKS", required("SLURM_NTASKS")?),
        },
    };
    let world_size: usize = parse_var(world_var, &world)?;
    check_world("SLURM_PROCID", rank, world_var, world_size)?;
    let local_rank: usize = parse_var("SLURM_LOCALID", &required("SLURM_LOCALID")?)?;

    let (local_var, local_world_size) = slurm_local_world_size(get)?;
    check_local("SLURM_LOCALID", local_rank, local_var, local_world_size)?;

    let master_addr = match get("MASTER_ADDR") {
        Some(addr) => addr,
        None => {
            let (var, list) = [
                "SLURM_STEP_NODELIST",
                "SLURM_JOB_NODELIST",
                "SLURM_NODELIST",
            ]
            .into_iter()
            .find_map(|k| get(k).map(|v| (k, v)))
            .context(
                "srun task without SLURM_STEP_NODELIST or SLURM_JOB_NODELIST: set \
                     MASTER_ADDR to the host of rank 0",
            )?;
            first_slurm_host(&list).with_context(|| {
                format!("cannot read the first host of {var}={list:?}: set MASTER_ADDR to the host of rank 0")
            })?
        }
    };
    let master_port = match get("MASTER_PORT") {
        Some(port) => parse_port("MASTER_PORT", &port)?,
        None => {
            let job = get("SLURM_JOB_ID").or_else(|| get("SLURM_JOBID")).context(
                "srun task without SLURM_JOB_ID (which picks the store's port): set MASTER_PORT",
            )?;
            let job: u64 = parse_var("SLURM_JOB_ID", &job)?;
            SLURM_BASE_PORT + u16::try_from(job % 1000).expect("below 1000")
        }
    };
    Ok(LaunchEnv {
        rank,
        world_size,
        local_rank,
        local_world_size,
        master_addr,
        master_port,
        use_agent_store: false,
        restart_count: 0,
        launcher: Launcher::Slurm,
    })
}

/// The number of tasks on this node, and the variable it came from (see
/// [`LaunchEnv::from_vars`]).
fn slurm_local_world_size(get: &impl Fn(&str) -> Option<String>) -> Result<(&'static str, usize)> {
    if let Some(v) = get("SLURM_NTASKS_PER_NODE") {
        let first = v.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("");
        return Ok((
            "SLURM_NTASKS_PER_NODE",
            parse_var("SLURM_NTASKS_PER_NODE", first)?,
        ));
    }
    for var in ["SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE"] {
        let Some(v) = get(var) else { continue };
        let counts = parse_slurm_tasks_per_node(&v).with_context(|| {
            format!("cannot read {var}={v:?} (expected counts like \"2(x3),1\")")
        })?;
        // `SLURM_NODEID` and the step's list are both relative to the step's nodes.
        let this_node = match (var, get("SLURM_NODEID")) {
            ("SLURM_STEP_TASKS_PER_NODE", Some(id)) => id
                .parse::<usize>()
                .ok()
                .and_then(|id| counts.get(id).copied()),
            _ => None,
        };
        return Ok((var, this_node.unwrap_or(counts[0])));
    }
    bail!(
        "srun task without SLURM_NTASKS_PER_NODE, SLURM_STEP_TASKS_PER_NODE or \
         SLURM_TASKS_PER_NODE: run the job with srun --ntasks-per-node"
    )
}

fn parse_var<T: FromStr>(var: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| {
        anyhow::anyhow!(
            "{var}={value:?} is not a non-negative integer: set {var} to a number (or unset it)"
        )
    })
}

fn parse_port(var: &str, value: &str) -> Result<u16> {
    let port: u64 = parse_var(var, value)?;
    match u16::try_from(port) {
        Ok(port) if port > 0 => Ok(port),
        _ => bail!("{var}={port} is out of range: set {var} to a port from 1 to 65535"),
    }
}

fn check_world(rank_var: &str, rank: usize, world_var: &str, world: usize) -> Result<()> {
    if world == 0 {
        bail!("{world_var}=0: a job has at least one process; set {world_var} to 1 or more");
    }
    if rank >= world {
        bail!(
            "{rank_var}={rank} is not below {world_var}={world}: ranks run from 0 to {}; \
             fix {rank_var} or {world_var}",
            world - 1
        );
    }
    Ok(())
}

fn check_local(rank_var: &str, rank: usize, world_var: &str, world: usize) -> Result<()> {
    if world == 0 {
        bail!("{world_var}=0: a node runs at least one process; set {world_var} to 1 or more");
    }
    if rank >= world {
        bail!(
            "{rank_var}={rank} is not below {world_var}={world}: local ranks run from 0 to {}; \
             fix {rank_var} or {world_var}",
            world - 1
        );
    }
    Ok(())
}

/// The first host of a Slurm hostlist, leading zeros kept:
/// `node[01-04,07],gpu5` → `node01`, `a,b` → `a`, `n[3]` → `n3`,
/// `rack[1-2]-n[08-09]` → `rack1-n08`. `None` when empty or malformed.
pub fn first_slurm_host(list: &str) -> Option<String> {
    let mut host = String::new();
    let mut chars = list.trim().chars();
    while let Some(c) = chars.next() {
        match c {
            ',' => break,
            '[' => {
                let mut group = String::new();
                loop {
                    match chars.next()? {
                        ']' => break,
                        c => group.push(c),
                    }
                }
                let first = group.split(',').next()?.split('-').next()?.trim();
                if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                host.push_str(first);
            }
            ']' => return None,
            c => host.push(c),
        }
    }
    let host = host.trim();
    (!host.is_empty()).then(|| host.to_owned())
}

/// Slurm's tasks-per-node counts, one per node: `2(x3),1` → `[2, 2, 2, 1]`.
/// `None` when empty or malformed.
pub fn parse_slurm_tasks_per_node(value: &str) -> Option<Vec<usize>> {
    let mut counts = Vec::new();
    for entry in value.trim().split(',') {
        let entry = entry.trim();
        let (count, repeat) = match entry.split_once('(') {
            Some((count, rest)) => {
                let repeat = rest.strip_suffix(')')?.trim().strip_prefix('x')?;
                (count.trim(), repeat.trim().parse::<usize>().ok()?)
            }
            None => (entry, 1),
        };
        let count: usize = count.parse().ok()?;
        counts.extend(std::iter::repeat_n(count, repeat));
    }
    (!counts.is_empty()).then_some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<Option<LaunchEnv>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LaunchEnv::from_vars(|k| map.get(k).cloned())
    }

    fn env(vars: &[(&str, &str)]) -> LaunchEnv {
        read(vars).unwrap().expect("a launch environment")
    }

    fn error(vars: &[(&str, &str)]) -> String {
        format!("{:#}", read(vars).expect_err("an error"))
    }

    const STATIC: [(&str, &str); 4] = [
        ("RANK", "1"),
        ("WORLD_SIZE", "2"),
        ("MASTER_ADDR", "10.0.0.1"),
        ("MASTER_PORT", "29500"),
    ];

    fn with<'a>(
        base: &[(&'a str, &'a str)],
        extra: &[(&'a str, &'a str)],
    ) -> Vec<(&'a str, &'a str)> {
        let mut vars: Vec<_> = base
            .iter()
            .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
            .copied()
            .collect();
        vars.extend(extra.iter().filter(|(_, v)| !v.is_empty()).copied());
        vars
    }

    #[test]
    fn nothing_set_is_single_process() {
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(
            read(&[("PATH", "/bin"), ("SLURM_JOB_ID", "12")]).unwrap(),
            None
        );
        // A batch script (no srun step) runs no tasks.
        let batch = [
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_JOB_ID", "7"),
            ("SLURM_JOB_NODELIST", "n[1-2]"),
        ];
        assert_eq!(read(&batch).unwrap(), None);
        // Empty values count as unset.
        assert_eq!(read(&[("RANK", ""), ("WORLD_SIZE", " ")]).unwrap(), None);
    }

    #[test]
    fn static_launch() {
        let e = env(&STATIC);
        assert_eq!(
            e,
            LaunchEnv {
                rank: 1,
                world_size: 2,
                local_rank: 1,
                local_world_size: 2,
                master_addr: "10.0.0.1".into(),
                master_port: 29500,
                use_agent_store: false,
                restart_count: 0,
                launcher: Launcher::Static,
            }
        );
        assert!(!e.hosts_store());
        assert_eq!(
            e.describe(),
            "rank 1 of 2 (local 1 of 2), static, store at 10.0.0.1:29500 (rank 0's)"
        );
        let two_nodes = env(&with(
            &STATIC,
            &[
                ("RANK", "3"),
                ("WORLD_SIZE", "4"),
                ("LOCAL_RANK", "1"),
                ("LOCAL_WORLD_SIZE", "2"),
            ],
        ));
        assert_eq!((two_nodes.local_rank, two_nodes.local_world_size), (1, 2));
        let one = env(&with(&STATIC, &[("RANK", "0"), ("WORLD_SIZE", "1")]));
        assert_eq!((one.rank, one.world_size), (0, 1));
        assert!(one.hosts_store());
        assert!(one.describe().contains("(hosted here, by rank 0)"));
        let v6 = env(&with(&STATIC, &[("MASTER_ADDR", "::1")]));
        assert!(
            v6.describe().contains("store at [::1]:29500"),
            "{}",
            v6.describe()
        );
    }

    #[test]
    fn torchrun_launch() {
        let torchrun = with(
            &STATIC,
            &[
                ("LOCAL_RANK", "1"),
                ("LOCAL_WORLD_SIZE", "2"),
                ("GROUP_RANK", "0"),
                ("TORCHELASTIC_USE_AGENT_STORE", "True"),
                ("TORCHELASTIC_RESTART_COUNT", "0"),
                ("MASTER_ADDR", "host"),
                ("MASTER_PORT", "1234"),
            ],
        );
        let e = env(&torchrun);
        assert_eq!(e.launcher, Launcher::Torchrun);
        assert!(e.use_agent_store);
        assert!(!env(&with(&torchrun, &[("RANK", "0")])).hosts_store());
        assert_eq!(
            e.describe(),
            "rank 1 of 2 (local 1 of 2), torchrun, store at host:1234 (agent's)"
        );
        for truthy in ["true", "TRUE", "1"] {
            assert!(
                env(&with(
                    &torchrun,
                    &[("TORCHELASTIC_USE_AGENT_STORE", truthy)]
                ))
                .use_agent_store
            );
        }
        let no_agent = env(&with(
            &torchrun,
            &[("TORCHELASTIC_USE_AGENT_STORE", "False")],
        ));
        assert!(!no_agent.use_agent_store);
        assert_eq!(no_agent.launcher, Launcher::Torchrun); // GROUP_RANK, RESTART_COUNT
        let restarted = env(&with(&STATIC, &[("TORCHELASTIC_RESTART_COUNT", "2")]));
        assert_eq!(
            (restarted.launcher, restarted.restart_count),
            (Launcher::Torchrun, 2)
        );
        assert!(
            restarted.describe().ends_with(", restart 2"),
            "{}",
            restarted.describe()
        );
        let group = env(&with(&STATIC, &[("GROUP_RANK", "1")]));
        assert_eq!(group.launcher, Launcher::Torchrun);
    }

    #[test]
    fn local_launch() {
        let e = env(&with(
            &STATIC,
            &[
                ("FGSTP_LOCAL_LAUNCH", "1"),
                ("MASTER_ADDR", "127.0.0.1"),
                ("LOCAL_RANK", "1"),
            ],
        ));
        assert_eq!(e.launcher, Launcher::Local);
        assert!(!e.use_agent_store);
        assert!(e.describe().contains("fgstp --nproc"), "{}", e.describe());
    }

    const SLURM: [(&str, &str); 8] = [
        ("SLURM_PROCID", "5"),
        ("SLURM_STEP_ID", "0"),
        ("SLURM_NTASKS", "8"),
        ("SLURM_LOCALID", "1"),
        ("SLURM_STEP_TASKS_PER_NODE", "4(x2)"),
        ("SLURM_STEP_NODELIST", "gpu[007-008]"),
        ("SLURM_JOB_NODELIST", "gpu[001-008]"),
        ("SLURM_JOB_ID", "123456"),
    ];

    #[test]
    fn slurm_launch() {
        let e = env(&SLURM);
        assert_eq!(
            e,
            LaunchEnv {
                rank: 5,
                world_size: 8,
                local_rank: 1,
                local_world_size: 4,
                master_addr: "gpu007".into(),
                master_port: 29500 + 456,
                use_agent_store: false,
                restart_count: 0,
                launcher: Launcher::Slurm,
            }
        );
        assert_eq!(
            e.describe(),
            "rank 5 of 8 (local 1 of 4), slurm, store at gpu007:29956 (rank 0's)"
        );
        // MASTER_ADDR / MASTER_PORT win; the job's node list when the step's is absent.
        let set = env(&with(
            &SLURM,
            &[("MASTER_ADDR", "login"), ("MASTER_PORT", "4000")],
        ));
        assert_eq!((set.master_addr.as_str(), set.master_port), ("login", 4000));
        let job = env(&with(&SLURM, &[("SLURM_STEP_NODELIST", "")]));
        assert_eq!(job.master_addr, "gpu001");
        // Local world size: SLURM_NTASKS_PER_NODE first, then this node's entry, then the first.
        let per_node = env(&with(&SLURM, &[("SLURM_NTASKS_PER_NODE", "2")]));
        assert_eq!(per_node.local_world_size, 2);
        let uneven = with(
            &SLURM,
            &[("SLURM_STEP_TASKS_PER_NODE", "2,6"), ("SLURM_NTASKS", "8")],
        );
        assert_eq!(
            env(&with(&uneven, &[("SLURM_NODEID", "1")])).local_world_size,
            6
        );
        assert_eq!(
            env(&with(&uneven, &[("SLURM_LOCALID", "0")])).local_world_size,
            2 // the first entry, without SLURM_NODEID
        );
        let job_counts = with(
            &SLURM,
            &[
                ("SLURM_STEP_TASKS_PER_NODE", ""),
                ("SLURM_TASKS_PER_NODE", "3(x2),2"),
            ],
        );
        assert_eq!(env(&job_counts).local_world_size, 3);
        // RANK / WORLD_SIZE override Slurm's variables.
        let both = with(&SLURM, &STATIC);
        assert_eq!(env(&both).launcher, Launcher::Static);
    }

    #[test]
    fn the_only_task_of_a_slurm_step_is_single_process() {
        // `srun --pty bash` (or salloc's interactive step) sets these in the shell, and so in
        // every `fgstp train` started from it: no launcher, so `--nproc` and
        // `train.processes` start local workers, and no store is hosted on the job's port.
        let shell = [
            ("SLURM_PROCID", "0"),
            ("SLURM_STEP_ID", "0"),
            ("SLURM_NTASKS", "1"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_NTASKS_PER_NODE", "1"),
            ("SLURM_JOB_ID", "1234"),
            ("SLURM_STEP_NODELIST", "localhost"),
        ];
        assert_eq!(read(&shell).unwrap(), None);
        // SLURM_NPROCS stands in for SLURM_NTASKS, as it does for a job.
        let nprocs = with(&shell, &[("SLURM_NTASKS", ""), ("SLURM_NPROCS", "1")]);
        assert_eq!(read(&nprocs).unwrap(), None);
        // Inside the step, the variables of `--nproc`'s workers (or torchrun's) still win.
        let worker = with(&shell, &with(&STATIC, &[("FGSTP_LOCAL_LAUNCH", "1")]));
        assert_eq!(env(&worker).launcher, Launcher::Local);
        // A step of two tasks is a job of two ranks.
        let two = env(&with(
            &shell,
            &[("SLURM_NTASKS", "2"), ("SLURM_NTASKS_PER_NODE", "2")],
        ));
        assert_eq!(
            (two.rank, two.world_size, two.launcher),
            (0, 2, Launcher::Slurm)
        );
        // A task numbered beyond its one-task step is still a mistake, named.
        let e = error(&with(&shell, &[("SLURM_PROCID", "1")]));
        assert!(
            e.contains("SLURM_PROCID=1 is not below SLURM_NTASKS=1"),
            "{e}"
        );
    }

    #[test]
    fn slurm_errors() {
        assert!(error(&with(&SLURM, &[("SLURM_NTASKS", "")])).contains("SLURM_NTASKS"));
        assert!(error(&with(&SLURM, &[("SLURM_LOCALID", "")])).contains("SLURM_LOCALID"));
        let e = error(&with(&SLURM, &[("SLURM_PROCID", "8")]));
        assert!(
            e.contains("SLURM_PROCID=8") && e.contains("SLURM_NTASKS=8"),
            "{e}"
        );
        let e = error(&with(&SLURM, &[("SLURM_LOCALID", "4")]));
        assert!(
            e.contains("SLURM_LOCALID=4") && e.contains("SLURM_STEP_TASKS_PER_NODE=4"),
            "{e}"
        );
        let e = error(&with(&SLURM, &[("SLURM_STEP_TASKS_PER_NODE", "four")]));
        assert!(e.contains("SLURM_STEP_TASKS_PER_NODE=\"four\""), "{e}");
        let e = error(&with(
            &SLURM,
            &[("SLURM_STEP_NODELIST", "n[01"), ("SLURM_JOB_NODELIST", "")],
        ));
        assert!(
            e.contains("SLURM_STEP_NODELIST") && e.contains("MASTER_ADDR"),
            "{e}"
        );
        let e = error(&with(
            &SLURM,
            &[("SLURM_STEP_NODELIST", ""), ("SLURM_JOB_NODELIST", "")],
        ));
        assert!(e.contains("MASTER_ADDR"), "{e}");
        let e = error(&with(&SLURM, &[("SLURM_JOB_ID", "")]));
        assert!(
            e.contains("SLURM_JOB_ID") && e.contains("MASTER_PORT"),
            "{e}"
        );
        let e = error(&with(&SLURM, &[("SLURM_PROCID", "x")]));
        assert!(e.contains("SLURM_PROCID=\"x\""), "{e}");
        let e = error(&with(
            &SLURM,
            &[
                ("SLURM_STEP_TASKS_PER_NODE", ""),
                ("SLURM_TASKS_PER_NODE", ""),
            ],
        ));
        assert!(e.contains("SLURM_TASKS_PER_NODE"), "{e}");
    }

    #[test]
    fn errors() {
        let e = error(&[("WORLD_SIZE", "2")]);
        assert!(e.contains("WORLD_SIZE=2 is set but RANK is not"), "{e}");
        let e = error(&[("RANK", "0")]);
        assert!(e.contains("RANK=0 is set but WORLD_SIZE is not"), "{e}");
        for var in [
            "RANK",
            "WORLD_SIZE",
            "LOCAL_RANK",
            "LOCAL_WORLD_SIZE",
            "MASTER_PORT",
            "TORCHELASTIC_RESTART_COUNT",
        ] {
            let e = error(&with(&STATIC, &[(var, "two")]));
            assert!(
                e.contains(&format!("{var}=\"two\" is not a non-negative integer")),
                "{e}"
            );
        }
        let e = error(&with(&STATIC, &[("RANK", "-1")]));
        assert!(e.contains("RANK=\"-1\""), "{e}");
        let e = error(&with(&STATIC, &[("RANK", "2")]));
        assert!(e.contains("RANK=2 is not below WORLD_SIZE=2"), "{e}");
        let e = error(&with(&STATIC, &[("RANK", "0"), ("WORLD_SIZE", "0")]));
        assert!(e.contains("WORLD_SIZE=0"), "{e}");
        let e = error(&with(
            &STATIC,
            &[("LOCAL_RANK", "2"), ("LOCAL_WORLD_SIZE", "2")],
        ));
        assert!(
            e.contains("LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2"),
            "{e}"
        );
        let e = error(&with(&STATIC, &[("LOCAL_WORLD_SIZE", "1")]));
        assert!(
            e.contains("LOCAL_RANK=1 is not below LOCAL_WORLD_SIZE=1"),
            "{e}"
        );
        let e = error(&with(
            &STATIC,
            &[("LOCAL_RANK", "0"), ("LOCAL_WORLD_SIZE", "0")],
        ));
        assert!(e.contains("LOCAL_WORLD_SIZE=0"), "{e}");
        for (unset, which) in [
            (vec![("MASTER_ADDR", "")], "MASTER_ADDR is not"),
            (vec![("MASTER_PORT", "")], "MASTER_PORT is not"),
            (
                vec![("MASTER_ADDR", ""), ("MASTER_PORT", "")],
                "MASTER_ADDR and MASTER_PORT are not",
            ),
        ] {
            let e = error(&with(&STATIC, &unset));
            assert!(e.contains(which), "{e}");
            assert!(
                e.contains("set MASTER_ADDR and MASTER_PORT (torchrun sets them)"),
                "{e}"
            );
        }
        for port in ["0", "65536", "99999999999"] {
            let e = error(&with(&STATIC, &[("MASTER_PORT", port)]));
            assert!(
                e.contains(&format!("MASTER_PORT={port} is out of range")),
                "{e}"
            );
        }
        assert_eq!(
            env(&with(&STATIC, &[("MASTER_PORT", "65535")])).master_port,
            65535
        );
    }

    #[test]
    fn slurm_hostlists() {
        let first = |s: &str| first_slurm_host(s);
        assert_eq!(first("node[01-04,07],gpu5").as_deref(), Some("node01"));
        assert_eq!(first("a,b").as_deref(), Some("a"));
        assert_eq!(first("n[3]").as_deref(), Some("n3"));
        assert_eq!(first("gpu5").as_deref(), Some("gpu5"));
        assert_eq!(first("node[007,010-011]").as_deref(), Some("node007"));
        assert_eq!(first("rack[1-2]-n[08-09],x").as_deref(), Some("rack1-n08"));
        assert_eq!(
            first(" host.example.org ").as_deref(),
            Some("host.example.org")
        );
        for bad in ["", "   ", ",a", "n[01", "n[]", "n]", "n[a-b]"] {
            assert_eq!(first(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_slurm_tasks_per_node("2(x3),1"),
            Some(vec![2, 2, 2, 1])
        );
        assert_eq!(parse_slurm_tasks_per_node("4"), Some(vec![4]));
        assert_eq!(parse_slurm_tasks_per_node("1,2"), Some(vec![1, 2]));
        for bad in ["", "x", "2(3)", "2(x", "2(xa)", "1,,2"] {
            assert_eq!(parse_slurm_tasks_per_node(bad), None, "{bad:?}");
        }
    }
}

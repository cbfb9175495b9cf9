//! `fgstp train --nproc N`: N local workers of the same binary, as one job on 127.0.0.1.
//!
//! Like torchrun's standalone mode, each worker gets `RANK`, `WORLD_SIZE`, `LOCAL_RANK`,
//! `LOCAL_WORLD_SIZE`, `MASTER_ADDR=127.0.0.1`, `MASTER_PORT` (a free port) and
//! `FGSTP_LOCAL_LAUNCH=1` (read back by [`super::launch_env::LaunchEnv`]), and
//! `OMP_NUM_THREADS=1` unless the user set it.
//!
//! Signals: the workers stay in this process's process group, so Ctrl-C at the terminal
//! reaches every worker directly, and [`run`] passes each SIGINT/SIGTERM this process receives
//! on to every worker still running, as SIGTERM (through the counter the caller's signal
//! handler increments; `fgstp train` installs one): `kill PID`, `docker stop` or Kubernetes
//! signal the launcher alone, and each worker saves and stops as it does on its own signal. A
//! Ctrl-C at the terminal thus reaches a worker twice within milliseconds (from the terminal
//! and passed on); `fgstp train`'s workers take a repeat within 3 s as that echo, not as the
//! second Ctrl-C that aborts. And each worker is started with a parent-death signal
//! (SIGTERM, Linux's `PR_SET_PDEATHSIG`): when this process dies without passing anything on
//! (SIGKILL, a crash, the OOM killer) the workers save and stop instead of training on as
//! orphans. The kernel sends it when the *thread* that started the worker ends, so call
//! [`run`] from a thread that lives until it returns (the main thread, as `fgstp train` does).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The signal `Child::kill` sends.
const SIGKILL: i32 = 9;

/// The signal passed on to the workers, and their parent-death signal: `fgstp train` saves
/// `last` and stops on it as on Ctrl-C.
const SIGTERM: i32 = 15;

// The C library's calls this module needs (the `libc` crate is not a dependency of this crate;
// these are the signatures of glibc and musl on Linux, where `pid_t` is `int`).
extern "C" {
    fn kill(pid: i32, signal: i32) -> i32;
    #[cfg(target_os = "linux")]
    fn getppid() -> i32;
    #[cfg(target_os = "linux")]
    fn prctl(option: i32, ...) -> i32;
}

/// Linux's `prctl` option that sets the signal a process gets when its parent dies.
#[cfg(target_os = "linux")]
const PR_SET_PDEATHSIG: i32 = 1;

/// `ESRCH` ("no such process"), the error of a worker whose launcher died before it started.
#[cfg(target_os = "linux")]
const ESRCH: i32 = 3;

/// How often the workers are polled.
const POLL: Duration = Duration::from_millis(50);

/// Variables of an enclosing launcher that must not leak into the local workers (they would
/// make a worker believe torchrun's agent hosts the store).
const OUTER_LAUNCHER_VARS: [&str; 3] = [
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCHELASTIC_RESTART_COUNT",
    "GROUP_RANK",
];

/// Starts `n` copies of `exe args…` as ranks 0..n of one job on 127.0.0.1 (RANK, WORLD_SIZE,
/// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT = a free port,
/// FGSTP_LOCAL_LAUNCH=1, and OMP_NUM_THREADS=1 unless the user set it — as torchrun does),
/// waits for all; when one fails, the others are given `grace` to exit on their own (they
/// notice the lost peer) and then killed; returns Ok(()) if all exited 0, else an error naming
/// each failed rank and its exit status/signal, the first failure first.
///
/// `signals` counts the SIGINT/SIGTERM this process received (the caller's signal handler adds
/// 1 to it for each): each one counted is passed on to every worker still running as SIGTERM.
///
/// The workers inherit stdin, stdout and stderr, and this process's process group, and get
/// SIGTERM if the calling thread dies (see the module documentation for signals). Workers are
/// polled, and signals passed on, every 50 ms.
pub fn run(
    n: usize,
    exe: &Path,
    args: &[OsString],
    grace: Duration,
    signals: &AtomicUsize,
) -> Result<()> {
    if n == 0 {
        bail!("--nproc 0: start at least one worker");
    }
    let port = free_port()?;
    let set_omp = std::env::var_os("OMP_NUM_THREADS").is_none();
    let mut children: Vec<Child> = Vec::with_capacity(n);
    for rank in 0..n {
        let mut cmd = Command::new(exe);
        cmd.args(args)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("MASTER_ADDR", Ipv4Addr::LOCALHOST.to_string())
            .env("MASTER_PORT", port.to_string())
            .env("FGSTP_LOCAL_LAUNCH", "1");
        for var in OUTER_LAUNCHER_VARS {
            cmd.env_remove(var);
        }
        if set_omp {
            cmd.env("OMP_NUM_THREADS", "1");
        }
        stop_with_parent(&mut cmd);
        match cmd.spawn() {
            Ok(child) => children.push(child),
            Err(err) => {
                for child in &mut children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(err).with_context(|| {
                    format!("cannot start worker rank {rank} of {n}: {}", exe.display())
                });
            }
        }
    }
    let outcomes = supervise(children, grace, signals)?;
    report(n, &outcomes, grace)
}

/// Makes the process `cmd` starts get SIGTERM when the thread that starts it ends (with this
/// process, whatever kills it), so that a worker saves and stops rather than train on as an
/// orphan. If the launcher died between the fork and the `prctl` (the signal would never
/// come), the worker is not started.
#[cfg(target_os = "linux")]
fn stop_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // Read before the fork: the worker's parent is this process.
    let launcher = std::process::id() as i32;
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes two system calls and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if prctl(PR_SET_PDEATHSIG, SIGTERM as std::ffi::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Reparented already: the launcher died before the prctl took effect.
            if getppid() != launcher {
                return Err(std::io::Error::from_raw_os_error(ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_cmd: &mut Command) {}

/// A free TCP port on 127.0.0.1: binds port 0, reads the port the system chose, and releases
/// it (another process could take it before rank 0 binds it, as with torchrun).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot find a free port on 127.0.0.1 for the workers' store")?;
    Ok(listener.local_addr()?.port())
}

/// How one worker ended.
#[derive(Debug)]
enum Outcome {
    Running,
    /// Exited by itself; `order` counts the workers that ended before it.
    Exited {
        status: ExitStatus,
        order: usize,
    },
    /// Killed by this launcher after the grace period.
    Killed,
}

/// Waits for every worker, passing on to those still running each signal `signals` counts;
/// after the first failure, kills those still running once `grace` has passed.
fn supervise(
    mut children: Vec<Child>,
    grace: Duration,
    signals: &AtomicUsize,
) -> Result<Vec<Outcome>> {
    let mut outcomes: Vec<Outcome> = children.iter().map(|_| Outcome::Running).collect();
    let mut ended = 0;
    let mut deadline: Option<Instant> = None;
    // From 0: a signal that came while the workers were being started is passed on too.
    let mut passed_on = 0;
    loop {
        for (rank, child) in children.iter_mut().enumerate() {
            if !matches!(outcomes[rank], Outcome::Running) {
                continue;
            }
            let polled = child
                .try_wait()
                .with_context(|| format!("cannot wait for worker rank {rank}"));
            let status = match polled {
                Ok(status) => status,
                Err(err) => {
                    kill_all(&mut children, &outcomes);
                    return Err(err);
                }
            };
            if let Some(status) = status {
                outcomes[rank] = Outcome::Exited {
                    status,
                    order: ended,
                };
                ended += 1;
                if !status.success() && deadline.is_none() {
                    deadline = Some(Instant::now() + grace);
                }
            }
        }
        if ended == children.len() {
            return Ok(outcomes);
        }
        let received = signals.load(Ordering::SeqCst);
        while passed_on < received {
            for (child, outcome) in children.iter().zip(&outcomes) {
                if matches!(outcome, Outcome::Running) {
                    // Not reaped yet, so the id is still this worker's. SAFETY: a plain call.
                    unsafe { kill(child.id() as i32, SIGTERM) };
                }
            }
            passed_on += 1;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            for (rank, child) in children.iter_mut().enumerate() {
                if matches!(outcomes[rank], Outcome::Running) {
                    let _ = child.kill(); // fails only when it has just exited
                    let status = child
                        .wait()
                        .with_context(|| format!("cannot wait for worker rank {rank}"))?;
                    outcomes[rank] = if status.signal() == Some(SIGKILL) {
                        Outcome::Killed
                    } else {
                        // It ended by itself just before the kill.
                        ended += 1;
                        Outcome::Exited {
                            status,
                            order: ended - 1,
                        }
                    };
                }
            }
            return Ok(outcomes);
        }
        thread::sleep(POLL);
    }
}

/// Kills and reaps the workers still running (on an error of this launcher).
fn kill_all(children: &mut [Child], outcomes: &[Outcome]) {
    for (child, outcome) in children.iter_mut().zip(outcomes) {
        if matches!(outcome, Outcome::Running) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `Ok(())` when every worker exited 0, else an error naming each failed rank.
fn report(n: usize, outcomes: &[Outcome], grace: Duration) -> Result<()> {
    let mut failed: Vec<(usize, usize, &ExitStatus)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(rank, outcome)| match outcome {
            Outcome::Exited { status, order } if !status.success() => Some((*order, rank, status)),
            _ => None,
        })
        .collect();
    failed.sort_by_key(|&(order, ..)| order);
    let killed: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(rank, outcome)| matches!(outcome, Outcome::Killed).then_some(rank))
        .collect();
    if failed.is_empty() && killed.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{} of {n} local worker{} failed: ",
        failed.len() + killed.len(),
        if n == 1 { "" } else { "s" }
    );
    for (i, (_, rank, status)) in failed.iter().enumerate() {
        if i > 0 {
            message.push_str("; ");
        }
        let _ = write!(message, "rank {rank} {}", describe_status(status));
        if i == 0 && failed.len() + killed.len() > 1 {
            message.push_str(" (first)");
        }
    }
    if !killed.is_empty() {
        let ranks: Vec<String> = killed.iter().map(usize::to_string).collect();
        let _ = write!(
            message,
            "; rank{} {} still running {:.1?} after rank {} failed: killed",
            if killed.len() == 1 { "" } else { "s" },
            ranks.join(", "),
            grace,
            failed.first().map_or(0, |f| f.1),
        );
    }
    bail!(message)
}

/// `exited with status 3`, `was killed by signal 9 (SIGKILL)`.
fn describe_status(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("was killed by signal {signal}{name}{core}")
        }
        (None, None) => format!("ended with {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<OsString> {
        vec!["-c".into(), script.into()]
    }

    /// No signal received.
    static NONE: AtomicUsize = AtomicUsize::new(0);

    #[test]
    fn every_rank_gets_the_launch_variables() {
        let script = r#"test "$RANK" -lt 2 && test "$WORLD_SIZE" = 2 && test -n "$MASTER_PORT" \
            && test "$LOCAL_RANK" = "$RANK" && test "$LOCAL_WORLD_SIZE" = 2 \
            && test "$MASTER_ADDR" = 127.0.0.1 && test "$FGSTP_LOCAL_LAUNCH" = 1 \
            && test -n "$OMP_NUM_THREADS" && test -z "$TORCHELASTIC_USE_AGENT_STORE""#;
        run(
            2,
            Path::new("/bin/sh"),
            &sh(script),
            Duration::from_secs(1),
            &NONE,
        )
        .unwrap();
        run(
            1,
            Path::new("/bin/sh"),
            &sh("test $RANK = 0"),
            Duration::from_secs(1),
            &NONE,
        )
        .unwrap();
    }

    #[test]
    fn a_failed_rank_is_named_with_its_status() {
        let err = run(
            2,
            Path::new("/bin/sh"),
            &sh("exit $((RANK*3))"),
            Duration::from_secs(5),
            &NONE,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("rank 1 exited with status 3"), "{err}");
        assert!(!err.contains("rank 0"), "{err}");
        assert!(err.starts_with("1 of 2 local workers failed"), "{err}");
    }

    #[test]
    fn the_others_are_killed_after_the_grace_period() {
        let grace = Duration::from_millis(500);
        let start = Instant::now();
        let script = r#"if [ "$RANK" = 1 ]; then exit 7; fi; exec sleep 30"#;
        let err = run(2, Path::new("/bin/sh"), &sh(script), grace, &NONE)
            .unwrap_err()
            .to_string();
        let elapsed = start.elapsed();
        assert!(elapsed < grace + Duration::from_secs(1), "{elapsed:?}");
        assert!(err.contains("rank 1 exited with status 7 (first)"), "{err}");
        assert!(
            err.contains("rank 0 still running") && err.contains("killed"),
            "{err}"
        );
        assert!(err.starts_with("2 of 2 local workers failed"), "{err}");
    }

    #[test]
    fn the_others_may_exit_within_the_grace_period() {
        let script = r#"if [ "$RANK" = 0 ]; then exit 2; fi; sleep 0.2; exit 1"#;
        let err = run(
            3,
            Path::new("/bin/sh"),
            &sh(script),
            Duration::from_secs(10),
            &NONE,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("3 of 3 local workers failed: rank 0 exited with status 2 (first)"),
            "{err}"
        );
        assert!(err.contains("rank 1 exited with status 1"), "{err}");
        assert!(err.contains("rank 2 exited with status 1"), "{err}");
        assert!(!err.contains("killed"), "{err}");
    }

    #[test]
    fn signals_are_named() {
        let err = run(
            1,
            Path::new("/bin/sh"),
            &sh("kill -TERM $$"),
            Duration::from_secs(1),
            &NONE,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("rank 0 was killed by signal 15 (SIGTERM)"),
            "{err}"
        );
    }

    #[test]
    fn a_signal_to_the_launcher_is_passed_on_to_every_worker() {
        let dir = tempfile::tempdir().unwrap();
        // Each worker exits 0 on SIGTERM, and 1 after 10 s without it.
        let script = format!(
            r#"trap 'exit 0' TERM; touch "{}/ready.$RANK"; i=0
            while [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; exit 1"#,
            dir.path().display()
        );
        let signals = AtomicUsize::new(0);
        let start = Instant::now();
        thread::scope(|scope| {
            // As `fgstp train`'s signal handler does, once both workers trap SIGTERM.
            scope.spawn(|| {
                while !(0..2).all(|r| dir.path().join(format!("ready.{r}")).exists()) {
                    thread::sleep(Duration::from_millis(10));
                }
                signals.fetch_add(1, Ordering::SeqCst);
            });
            run(
                2,
                Path::new("/bin/sh"),
                &sh(&script),
                Duration::from_secs(1),
                &signals,
            )
            .unwrap();
        });
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn a_worker_gets_sigterm_when_the_thread_that_started_it_ends() {
        // The launcher's death, in miniature: the kernel sends the parent-death signal when
        // the starting thread ends, as it does when the whole launcher dies.
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "exec sleep 30"]);
        stop_with_parent(&mut cmd);
        let start = Instant::now();
        let mut child = thread::spawn(move || cmd.spawn().unwrap()).join().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(SIGTERM), "{status}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn launch_errors() {
        let err = run(0, Path::new("/bin/sh"), &[], Duration::ZERO, &NONE)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--nproc 0"), "{err}");
        let err = run(
            2,
            Path::new("/nonexistent/fgstp"),
            &[],
            Duration::ZERO,
            &NONE,
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot start worker rank 0 of 2: /nonexistent/fgstp"),
            "{err:#}"
        );
        assert_ne!(free_port().unwrap(), 0);
    }
}

//! Distributed training on the CPU (c10d's Gloo backend), through the `fgstp` binary as the
//! launchers start it: `--nproc`, two processes started by hand with PyTorch's variables, and
//! torchrun. Tiny configuration (b0 encoder, 64 px, 12 training samples: 3 steps per epoch at
//! a global batch of 4).

use crate::common;
use common::{fgstp, free_port, ok, s, shared_scratch_dir, stderr, synth_64, FGSTP};

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fgstp_model::checkpoint::{read_safetensors_metadata, StateDict};

pub(crate) struct Fixture {
    root: PathBuf,
    pub(crate) config: PathBuf,
    /// 2 processes × batch 2 with SyncBatchNorm, started by `--nproc 2` (2 epochs).
    pub(crate) two: PathBuf,
}

/// Options every run of this module shares beyond the config file.
pub(crate) const SYNC_BN: [&str; 2] = ["--set", "train.sync_batchnorm=true"];

pub(crate) fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = shared_scratch_dir();
        let data = root.join("data");
        synth_64(&data, 4, 8, 3, &[]);
        let config = root.join("tiny.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[model]
backbone = "b0"
correlation_pools = [2, 2, 2]
[data]
root = "{}"
train_size = 64
eval_batch_size = 4
threads = 1
[train]
epochs = 2
batch_size = 2
lr = 1e-3
device = "cpu"
threads = 1
dist_timeout = 20
[eval]
every = 1
at_start = true
[log]
loss_every = 1
images = 0
progress = false
"#,
                data.display()
            ),
        )
        .unwrap();
        let two = root.join("two");
        let mut args = vec!["train", "--nproc", "2", "--config", s(&config)];
        args.extend(["--run-dir", s(&two)]);
        args.extend(SYNC_BN);
        ok(fgstp(&args));
        Fixture { root, config, two }
    })
}

/// `fgstp ARGS` as rank `rank` of `world`, started by hand with PyTorch's variables (rank 0
/// hosts the store at 127.0.0.1:`port`).
fn rank_process(rank: usize, world: usize, port: u16, args: &[&str]) -> Command {
    let mut cmd = Command::new(FGSTP);
    cmd.args(args)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("LOCAL_WORLD_SIZE", world.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("OMP_NUM_THREADS", "1")
        .env_remove("TORCHELASTIC_USE_AGENT_STORE")
        .env_remove("TORCHELASTIC_RESTART_COUNT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Starts `world` ranks of `fgstp ARGS` by hand.
fn start_ranks(world: usize, args: &[&str]) -> Vec<Child> {
    let port = free_port();
    (0..world)
        .map(|r| rank_process(r, world, port, args).spawn().unwrap())
        .collect()
}

/// Waits for every rank, failing the test after `limit`.
fn wait_all(children: Vec<Child>, limit: Duration) -> Vec<Output> {
    let start = Instant::now();
    let mut children: Vec<Option<Child>> = children.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<Output>> = (0..children.len()).map(|_| None).collect();
    while outputs.iter().any(Option::is_none) {
        for (k, slot) in children.iter_mut().enumerate() {
            let done = slot
                .as_mut()
                .is_some_and(|c| c.try_wait().unwrap().is_some());
            if done {
                outputs[k] = Some(slot.take().unwrap().wait_with_output().unwrap());
            }
        }
        if start.elapsed() > limit {
            for c in children.iter_mut().flatten() {
                let _ = c.kill();
            }
            panic!("the ranks did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    outputs.into_iter().map(Option::unwrap).collect()
}

fn all_ok(outputs: &[Output]) {
    for (rank, out) in outputs.iter().enumerate() {
        assert!(
            out.status.success(),
            "rank {rank} failed ({}):\n{}",
            out.status,
            stderr(out)
        );
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn weights(path: &Path) -> BTreeMap<String, tch::Tensor> {
    let sd = StateDict::read(path).unwrap();
    sd.iter()
        .map(|(k, t)| (k.to_string(), t.shallow_clone()))
        .collect()
}

fn progress(path: &Path) -> serde_json::Value {
    serde_json::from_str(&read_safetensors_metadata(path).unwrap()["progress"]).unwrap()
}

pub(crate) fn assert_same_weights(a: &Path, b: &Path) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (key, t) in &a {
        assert!(t.equal(&b[key]), "{key} differs");
    }
}

/// Every weight tensor of `a` (the model's, not the optimiser's moments) within `tol` of its
/// largest magnitude from `b`'s.
fn assert_close_weights(a: &Path, b: &Path, tol: f64) {
    let (a, b) = (weights(a), weights(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = (0.0, String::new());
    for (key, t) in a.iter().filter(|(k, _)| !k.starts_with("optimizer.")) {
        let t = t.to_kind(tch::Kind::Double);
        let u = b[key].to_kind(tch::Kind::Double);
        let scale = t.abs().max().double_value(&[]).max(1e-12);
        let diff = (&t - &u).abs().max().double_value(&[]) / scale;
        if diff > worst.0 {
            worst = (diff, key.clone());
        }
    }
    assert!(
        worst.0 <= tol,
        "{} differs by {:.2e} of its largest magnitude (allowed {tol:.0e})",
        worst.1,
        worst.0
    );
}

fn loss_values(path: &Path) -> Vec<(u64, f64)> {
    lines(path)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].as_f64().unwrap())
        })
        .collect()
}

/// Two processes × batch 2 with SyncBatchNorm and one process × batch 4 (SyncBatchNorm is a
/// no-op with one process) take the same steps.
///
/// Both start from trained weights with Adam's ε = 1e-3. With PyTorch's ε = 1e-8 each element's
/// first steps are ±lr whatever the size of its gradient, so an element whose gradient is zero
/// up to rounding (an attention key bias, a bias ahead of a LayerNorm) steps by ±lr with its
/// sign set by rounding, and weights would compare rounding, not gradients. With ε above such
/// gradients, each step is proportional to the gradient: equal weights mean equal averaged
/// gradients. Zero-initialised biases would likewise be measured against their own few
/// steps; trained weights give every tensor its size. And at the reference's learning rate
/// (1e-4): at 1e-3 training on these 12 samples is unstable (the loss jumps to twice its value
/// at step 2) and rounding differences grew 20–50× per step from the fifth on (measured).
#[test]
fn two_processes_of_batch_2_with_sync_batchnorm_train_as_one_of_batch_4() {
    let f = fixture();
    let pretrained = format!("train.pretrained={:?}", s(&f.two.join("last.safetensors")));
    let common = [
        "--config",
        s(&f.config),
        "--set",
        &pretrained,
        "--set",
        "train.adam_eps=1e-3",
        "--set",
        "train.lr=1e-4",
        "--set",
        "train.sync_batchnorm=true",
    ];
    let (one, two) = (f.root.join("one"), f.root.join("two-again"));
    let mut args = vec!["train", "--run-dir", s(&one), "--set", "train.batch_size=4"];
    args.extend(common);
    ok(fgstp(&args));
    // The configuration's `train.processes` starts the two workers as `--nproc 2` (the
    // fixture's way) does.
    let mut args = vec!["train", "--set", "train.processes=2", "--run-dir", s(&two)];
    args.extend(common);
    let started = ok(fgstp(&args));
    assert!(
        String::from_utf8_lossy(&started.stderr).contains("starting 2 local workers"),
        "train.processes = 2 did not start two workers"
    );

    let (a, b) = (
        loss_values(&one.join("losses.jsonl")),
        loss_values(&two.join("losses.jsonl")),
    );
    assert_eq!(a.len(), 6, "3 steps per epoch, 2 epochs");
    assert_eq!(
        a.iter().map(|x| x.0).collect::<Vec<_>>(),
        b.iter().map(|x| x.0).collect::<Vec<_>>()
    );
    for ((step, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            (x - y).abs() <= 1e-5 * x.abs(),
            "step {step}: loss {x} with one process, {y} with two"
        );
    }
    assert_close_weights(
        &one.join("last.safetensors"),
        &two.join("last.safetensors"),
        1e-5,
    );
    // Equal weights (before the first step: rank 0's, broadcast) validate identically, the
    // two ranks' halves of the videos merged.
    let (va, vb) = (
        lines(&one.join("metrics.jsonl")),
        lines(&two.join("metrics.jsonl")),
    );
    assert_eq!(va.len(), 3);
    assert_eq!(va[0], vb[0], "validation of the initial weights differs");
}

#[test]
fn an_interrupted_two_process_run_started_by_hand_resumes_to_the_straight_run() {
    let f = fixture();
    let run = f.root.join("interrupted");
    let mut args = vec!["train", "--config", s(&f.config), "--run-dir", s(&run)];
    args.extend(SYNC_BN);
    // 3 steps per epoch: stop after the first step of epoch 2.
    args.extend(["--stop-after-steps", "4"]);
    let outs = wait_all(start_ranks(2, &args), Duration::from_secs(180));
    all_ok(&outs);
    assert!(
        !stderr(&outs[1]).contains("validation after epoch"),
        "only rank 0 reports"
    );
    let saved = progress(&run.join("last.safetensors"));
    assert_eq!(
        (
            saved["epoch"].as_u64(),
            saved["step"].as_u64(),
            saved["samples"].as_u64()
        ),
        (Some(1), Some(4), Some(4)),
        "{saved}"
    );
    // Kept for the next test before resuming.
    let copy = f.root.join("interrupted-copy");
    copy_dir(&run, &copy);

    let resume = ["train", "--resume", s(&run)];
    all_ok(&wait_all(start_ranks(2, &resume), Duration::from_secs(180)));
    assert_eq!(
        lines(&run.join("losses.jsonl")),
        lines(&f.two.join("losses.jsonl"))
    );
    assert_eq!(
        lines(&run.join("metrics.jsonl")),
        lines(&f.two.join("metrics.jsonl"))
    );
    assert_same_weights(
        &run.join("last.safetensors"),
        &f.two.join("last.safetensors"),
    );

    // The position counts global samples: the same checkpoint continues with 1 or 3
    // processes (the rest of epoch 2: 8 samples).
    for n in ["1", "3"] {
        let dir = f.root.join(format!("resumed-with-{n}"));
        copy_dir(&copy, &dir);
        let out = ok(fgstp(&["train", "--nproc", n, "--resume", s(&dir)]));
        let done = progress(&dir.join("last.safetensors"));
        assert_eq!(done["epoch"].as_u64(), Some(2), "{}", stderr(&out));
        // Batch 2 per process: 1 process takes 4 steps (8 samples), 3 processes 2 steps
        // (6, then 2 padded to 3).
        let steps = if n == "1" { 8 } else { 6 };
        assert_eq!(done["step"].as_u64(), Some(steps), "{done}");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// torchrun of the venv that scripts/setup-libtorch made (libtorch is its `torch/` package).
pub(crate) fn torchrun() -> Option<PathBuf> {
    let lib = PathBuf::from(env!("FGSTP_LIBTORCH_LIB"));
    let venv = lib.ancestors().nth(5)?;
    let torchrun = venv.join("bin/torchrun");
    torchrun.exists().then_some(torchrun)
}

#[test]
fn torchrun_starts_the_workers_and_a_restarted_group_continues_from_last() {
    let f = fixture();
    let Some(torchrun) = torchrun() else {
        eprintln!(
            "SKIPPED: no torchrun beside libtorch ({}): libtorch is not the venv \
             scripts/setup-libtorch makes",
            env!("FGSTP_LIBTORCH_LIB")
        );
        return;
    };
    let run = f.root.join("torchrun");
    let port = free_port().to_string();
    let endpoint = format!("127.0.0.1:{port}");
    let out = Command::new(&torchrun)
        .args([
            "--nnodes",
            "1",
            "--nproc-per-node",
            "2",
            "--max-restarts",
            "1",
        ])
        .args(["--rdzv-backend", "c10d", "--rdzv-endpoint", &endpoint])
        .args(["--no-python", FGSTP, "train", "--config", s(&f.config)])
        .args(["--run-dir", s(&run)])
        .args(SYNC_BN)
        // The first worker group dies after step 5 (epoch 1's checkpoint is last); torchrun
        // restarts it, and the new group continues from there.
        .args(["--crash-after-steps", "5"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "torchrun failed:\n{err}");
    assert!(err.contains("crashing after step 5"), "{err}");
    assert!(
        err.contains("restart 1"),
        "the group was not restarted:\n{err}"
    );
    assert!(err.contains("resuming"), "{err}");
    assert_same_weights(
        &run.join("last.safetensors"),
        &f.two.join("last.safetensors"),
    );
}

/// Waits until the run has logged `n` losses.
fn wait_for_losses(run: &Path, n: usize, children: &mut [Child]) {
    let losses = run.join("losses.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&losses).map_or(0, |t| t.lines().count()) < n {
        if start.elapsed() > Duration::from_secs(120) {
            for c in children.iter_mut() {
                let _ = c.kill();
            }
            panic!("training made no progress");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn a_killed_worker_ends_the_job_with_the_lost_rank_named() {
    let f = fixture();
    let run = f.root.join("killed");
    let mut args = vec!["train", "--config", s(&f.config), "--run-dir", s(&run)];
    args.extend([
        "--set",
        "train.epochs=1000",
        "--set",
        "train.dist_timeout=5",
    ]);
    let mut children = start_ranks(2, &args);
    wait_for_losses(&run, 4, &mut children);
    signal(&children[1], "-KILL");
    let started = Instant::now();
    let outs = wait_all(children, Duration::from_secs(60));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "rank 0 took {:?} to notice",
        started.elapsed()
    );
    assert!(!outs[0].status.success());
    let err = stderr(&outs[0]);
    assert!(err.contains("lost rank 1"), "{err}");
    // `last` is whole: the last good checkpoint (epoch 1's).
    let saved = progress(&run.join("last.safetensors"));
    assert!(saved["step"].as_u64().unwrap() >= 3, "{saved}");
    weights(&run.join("last.safetensors"));
}

#[test]
fn ctrl_c_stops_every_rank_after_the_same_step_and_rank_0_saves() {
    let f = fixture();
    let run = f.root.join("ctrl-c");
    let mut args = vec!["train", "--config", s(&f.config), "--run-dir", s(&run)];
    args.extend(["--set", "train.epochs=1000"]);
    let mut children = start_ranks(2, &args);
    wait_for_losses(&run, 2, &mut children);
    // As a terminal does: every process of the job gets it.
    for c in &children {
        signal(c, "-INT");
    }
    let outs = wait_all(children, Duration::from_secs(60));
    all_ok(&outs);
    let saved = progress(&run.join("last.safetensors"));
    let step = saved["step"].as_u64().unwrap();
    let logged = loss_values(&run.join("losses.jsonl"));
    assert_eq!(logged.last().unwrap().0, step, "{saved}");
    assert!(
        stderr(&outs[0]).contains("stopped at"),
        "{}",
        stderr(&outs[0])
    );
}

/// A process, told apart from a later one given the same id by its start time.
#[derive(Clone, Copy, Debug)]
struct Proc {
    pid: u32,
    start: u64,
}

/// The state, parent and start time (clock ticks after boot) of process `pid`, from
/// /proc/PID/stat; `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "PID (COMM) ", which may hold spaces: state, ppid, …, starttime (the 20th).
    let fields: Vec<&str> = text[text.rfind(')')? + 2..].split(' ').collect();
    Some((
        fields.first()?.chars().next()?,
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

impl Proc {
    /// Neither gone nor a zombie: an orphan's zombie waits for PID 1 to reap it, which in a
    /// container may never happen.
    fn running(&self) -> bool {
        proc_stat(self.pid).is_some_and(|(state, _, start)| start == self.start && state != 'Z')
    }
}

/// The processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (_, ppid, start) = proc_stat(pid)?;
            (ppid == parent).then_some(Proc { pid, start })
        })
        .collect()
}

/// Workers that are SIGKILLed when dropped if still running, so that a failing test leaves no
/// training behind.
struct Workers(Vec<Proc>);

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in self.0.iter().filter(|w| w.running()) {
            let _ = Command::new("kill")
                .args(["-KILL", &worker.pid.to_string()])
                .status();
        }
    }
}

/// `fgstp train --nproc 2` on a long run (1000 epochs) into `run`, its output (and its
/// workers') in `run.log` beside it, once both workers train (2 losses logged); returns the
/// launcher and its two workers.
fn long_nproc_run(run: &Path) -> (Child, Workers, PathBuf) {
    let f = fixture();
    let log = run.with_extension("log");
    let mut launcher = Command::new(FGSTP)
        .args(["train", "--nproc", "2", "--config", s(&f.config)])
        .args(["--run-dir", s(run), "--set", "train.epochs=1000"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_losses(run, 2, std::slice::from_mut(&mut launcher));
    let workers = Workers(children_of(launcher.id()));
    assert_eq!(workers.0.len(), 2, "not two workers: {:?}", workers.0);
    (launcher, workers, log)
}

/// A stopped run's `last` holds the step of its last logged loss (nothing trained is lost).
fn assert_saved_at_the_last_logged_step(run: &Path) {
    let saved = progress(&run.join("last.safetensors"));
    let logged = loss_values(&run.join("losses.jsonl"));
    assert_eq!(
        logged.last().unwrap().0,
        saved["step"].as_u64().unwrap(),
        "{saved}"
    );
}

/// `kill PID`, `docker stop` and Kubernetes signal the launcher alone: it passes the signal
/// on, and the job stops as on Ctrl-C.
#[test]
fn sigterm_to_the_nproc_launcher_alone_stops_the_workers_and_saves_last() {
    let f = fixture();
    let run = f.root.join("launcher-sigterm");
    let (launcher, workers, log) = long_nproc_run(&run);
    signal(&launcher, "-TERM");
    let started = Instant::now();
    let out = wait_all(vec![launcher], Duration::from_secs(60)).remove(0);
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(out.status.success(), "launcher: {}\n{err}", out.status);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the job took {:?} to stop",
        started.elapsed()
    );
    assert!(err.contains("stopped at"), "{err}");
    assert_saved_at_the_last_logged_step(&run);
    assert!(!workers.0.iter().any(Proc::running), "{:?}", workers.0);
}

/// A launcher that dies without passing anything on (SIGKILL, a crash, the OOM killer) leaves
/// no orphans training on: each worker's parent-death signal stops it as SIGTERM would.
#[test]
fn the_workers_of_a_killed_nproc_launcher_stop_and_save_last() {
    let f = fixture();
    let run = f.root.join("launcher-sigkill");
    let (mut launcher, workers, log) = long_nproc_run(&run);
    signal(&launcher, "-KILL");
    launcher.wait().unwrap();
    let started = Instant::now();
    while workers.0.iter().any(Proc::running) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the workers still run {:?} after their launcher was killed:\n{}",
            started.elapsed(),
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Rank 0 saved `last` at the step where both stopped.
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(err.contains("stopped at"), "{err}");
    assert_saved_at_the_last_logged_step(&run);
}

/// A shell inside a one-task Slurm step (`srun --pty bash`, salloc's interactive step) is no
/// launcher: `--nproc` and `train.processes` start local workers there, on a free port (the
/// job's fixed port would be in use for a second training from the same shell).
#[test]
fn local_workers_start_inside_a_one_task_slurm_step() {
    let f = fixture();
    for (k, how) in [["--nproc", "2"], ["--set", "train.processes=2"]]
        .iter()
        .enumerate()
    {
        let run = f.root.join(format!("slurm-shell-{k}"));
        let out = Command::new(FGSTP)
            .args(["train", "--config", s(&f.config), "--run-dir", s(&run)])
            .args(how)
            .args(["--stop-after-steps", "1"])
            .env("SLURM_PROCID", "0")
            .env("SLURM_STEP_ID", "0")
            .env("SLURM_NTASKS", "1")
            .env("SLURM_LOCALID", "0")
            .env("SLURM_NTASKS_PER_NODE", "1")
            .env("SLURM_JOB_ID", "1234")
            .env("SLURM_STEP_NODELIST", "localhost")
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(out.status.success(), "{how:?}: {err}");
        assert!(err.contains("starting 2 local workers"), "{how:?}: {err}");
        assert!(err.contains("rank 1 of 2"), "{how:?}: {err}");
    }
}

/// Rank 0 generates a [synth] dataset before the first step while the others wait for it:
/// one that gives up after `train.dist_timeout` says what rank 0 is doing and which key to
/// raise, not only that "a collective failed" (with c10d's C++ backtrace, as before).
#[test]
fn a_rank_that_waits_too_long_for_rank_0_names_what_it_waits_for_and_the_key() {
    let f = fixture();
    let data = f.root.join("synth-slow");
    let tiny = std::fs::read_to_string(&f.config).unwrap();
    let root_line = tiny.lines().find(|l| l.starts_with("root = ")).unwrap();
    // 150 scenes take rank 0 a few seconds to generate (about 40 a second measured here).
    let config = tiny.replace(root_line, &format!("root = {:?}", s(&data)))
        + "[synth]\nscenes = 150\nframes = 4\nwidth = 64\nheight = 64\n";
    let path = f.root.join("synth-slow.toml");
    std::fs::write(&path, config).unwrap();
    let run = f.root.join("synth-slow-run");
    let mut args = vec!["train", "--nproc", "2", "--config", s(&path)];
    args.extend(["--run-dir", s(&run), "--set", "train.dist_timeout=1"]);
    let out = fgstp(&args);
    assert!(!out.status.success());
    let err = stderr(&out);
    let message = error_message(
        &err,
        "error: rank 1 gave up waiting for rank 0 after train.dist_timeout = 1 s: rank 0 is \
         still preparing the run directory and the data",
    );
    assert!(message.contains("Raise train.dist_timeout"), "{message}");
    // c10d's own words stay, after the hint; its C++ backtrace goes.
    assert!(message.contains("wait timeout after 1000ms"), "{message}");
    assert!(!message.contains("frame #"), "{message}");
}

#[test]
fn a_non_finite_loss_stops_every_rank_at_the_same_step() {
    let f = fixture();
    let run = f.root.join("nan");
    let mut args = vec!["train", "--config", s(&f.config), "--run-dir", s(&run)];
    args.extend(["--set", "train.lr=1e30", "--set", "train.clip=0"]);
    let outs = wait_all(start_ranks(2, &args), Duration::from_secs(120));
    let steps: Vec<String> = outs
        .iter()
        .map(|out| {
            assert!(!out.status.success());
            let err = stderr(out);
            let at = err
                .find("the loss became")
                .unwrap_or_else(|| panic!("{err}"));
            err[at..].lines().next().unwrap().to_string()
        })
        .collect();
    assert_eq!(steps[0], steps[1], "the ranks stopped at different steps");
    for (key, t) in weights(&run.join("last.safetensors")) {
        assert!(
            t.isfinite().all().int64_value(&[]) == 1,
            "{key} is not finite in the kept checkpoint"
        );
    }
}

/// The error message in `stderr` that starts with `start`: up to the next error, or the next
/// line c10d logs itself (`[W…]`, `[E…]`, which carry its backtraces and are not fgstp's).
fn error_message<'a>(stderr: &'a str, start: &str) -> &'a str {
    let at = stderr
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in:\n{stderr}"));
    let rest = &stderr[at..];
    let end = ["\nerror: ", "\n[W", "\n[E", "\n[I"]
        .iter()
        .filter_map(|next| rest.find(next))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

#[test]
fn launch_mistakes_are_named_before_the_first_step() {
    let f = fixture();
    let config = s(&f.config);
    let base = |run: &str| {
        vec![
            "train".to_string(),
            "--config".into(),
            config.into(),
            "--run-dir".into(),
            s(&f.root.join(run)).into(),
        ]
    };

    // Ranks with different configurations.
    let port = free_port();
    let mut a = base("mismatch");
    a.extend(["--set".into(), "train.lr=0.002".into()]);
    let b = base("mismatch");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let children = vec![
        rank_process(0, 2, port, &b).spawn().unwrap(),
        rank_process(1, 2, port, &a).spawn().unwrap(),
    ];
    for out in wait_all(children, Duration::from_secs(60)) {
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.contains("rank 1's run configuration differs"), "{err}");
        assert!(err.contains("lr = 0.002"), "{err}");
    }

    let one = base("alone");
    let one: Vec<&str> = one.iter().map(String::as_str).collect();
    // The store's port in use: said first, with what sets the port here (fgstp train has no
    // port option), then c10d's message without its C++ backtrace.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = rank_process(0, 1, port, &one).output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let message = error_message(
        &err,
        &format!("error: rank 0 cannot host the store at 127.0.0.1:{port}: the port is in use"),
    );
    assert!(message.contains("Set another MASTER_PORT"), "{message}");
    assert!(!message.contains("--master-port"), "{message}");
    assert!(!message.contains("frame #"), "{message}");
    drop(taken);

    // An unreachable master: rank 1 waits train.dist_timeout, then says where it looked.
    let mut late = one.clone();
    late.extend(["--set", "train.dist_timeout=3"]);
    let started = Instant::now();
    let out = rank_process(1, 2, free_port(), &late).output().unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = stderr(&out);
    let message = error_message(
        &err,
        "error: rank 1 could not join the job through the store at 127.0.0.1:",
    );
    assert!(!message.contains("frame #"), "{message}");

    // WORLD_SIZE without RANK.
    let out = Command::new(FGSTP)
        .args(&one)
        .env("WORLD_SIZE", "2")
        .env_remove("RANK")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("RANK is not"), "{}", stderr(&out));

    // NCCL on the CPU.
    let mut nccl = one.clone();
    nccl.extend(["--set", "train.dist_backend=\"nccl\""]);
    let out = rank_process(0, 1, free_port(), &nccl).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("needs CUDA"), "{}", stderr(&out));

    // No processes at all.
    let mut none = one.clone();
    none.extend(["--set", "train.processes=0"]);
    let out = Command::new(FGSTP).args(&none).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("train.processes must be 1 to 1024"),
        "{}",
        stderr(&out)
    );
}

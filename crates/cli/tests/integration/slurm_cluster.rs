//! The Slurm scripts on a real Slurm: Debian's slurm-wlm and munge (`scripts/setup-system`
//! installs them), started as a one-node cluster in a scratch folder — `munged`, `slurmctld`
//! and `slurmd` with their own key, socket, ports, state and spool — and stopped by their pid
//! files. `scripts/slurm/eval-array.sh` submits its job array and merge job there with `sbatch`;
//! `scripts/slurm/train.sh` its two-task training job (CPU, Gloo).

use crate::common::{fgstp, ok, s, FGSTP};
use crate::shard::{assert_one_video_rewritten, files, tiny_run};

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A free port of 127.0.0.1 (the daemons bind them a moment later).
fn port() -> u16 {
    crate::common::free_port()
}

/// A one-node Slurm in `dir`, stopped (by its pid files) when dropped.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Cluster {
    /// Starts munged, slurmctld and slurmd; `None` (with the reason printed) where the packages
    /// are not installed and cannot be.
    fn start(dir: &Path) -> Option<Self> {
        for tool in ["munged", "slurmctld", "slurmd", "sbatch", "sinfo"] {
            let found = ["/usr/sbin", "/usr/bin"]
                .iter()
                .any(|d| Path::new(d).join(tool).exists());
            if !found {
                eprintln!(
                    "skipped: {tool} is not installed (scripts/setup-system installs slurm-wlm \
                     and munge with apt-get, as root)"
                );
                return None;
            }
        }
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::create_dir_all(dir.join("spool")).unwrap();
        let key = dir.join("munge.key");
        let mut bytes = vec![0u8; 128];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut bytes)
            .unwrap();
        std::fs::write(&key, &bytes).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
        let munged = Command::new("munged")
            .args([
                &format!("--key-file={}", p("munge.key")),
                &format!("--socket={}", p("munge.sock")),
                &format!("--pid-file={}", p("munged.pid")),
                &format!("--log-file={}", p("munged.log")),
                &format!("--seed-file={}", p("munge.seed")),
                "--force",
            ])
            .output()
            .unwrap();
        assert!(munged.status.success(), "munged: {}", text(&munged.stderr));

        let host = text(&Command::new("hostname").arg("-s").output().unwrap().stdout)
            .trim()
            .to_string();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=fgstptest\n\
                 SlurmctldHost={host}(127.0.0.1)\n\
                 SlurmctldPort={}\n\
                 SlurmdPort={}\n\
                 SlurmUser=root\n\
                 SlurmdUser=root\n\
                 AuthType=auth/munge\n\
                 AuthInfo=socket={}\n\
                 CredType=cred/munge\n\
                 ProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\n\
                 SelectType=select/cons_tres\n\
                 SelectTypeParameters=CR_Core\n\
                 JobAcctGatherType=jobacct_gather/none\n\
                 AccountingStorageType=accounting_storage/none\n\
                 MpiDefault=none\n\
                 ReturnToService=2\n\
                 StateSaveLocation={}\n\
                 SlurmdSpoolDir={}\n\
                 SlurmctldPidFile={}\n\
                 SlurmdPidFile={}\n\
                 SlurmctldLogFile={}\n\
                 SlurmdLogFile={}\n\
                 NodeName={host} NodeAddr=127.0.0.1 CPUs={} RealMemory=1000 State=UNKNOWN\n\
                 PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                port(),
                port(),
                p("munge.sock"),
                p("state"),
                p("spool"),
                p("slurmctld.pid"),
                p("slurmd.pid"),
                p("slurmctld.log"),
                p("slurmd.log"),
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
        )
        .unwrap();
        let cluster = Self {
            dir: dir.to_path_buf(),
            conf,
        };
        for daemon in ["slurmctld", "slurmd"] {
            let started = Command::new(daemon)
                .args(["-f", s(&cluster.conf)])
                .env("SLURM_CONF", &cluster.conf)
                .output()
                .unwrap();
            assert!(
                started.status.success(),
                "{daemon}: {}{}",
                text(&started.stderr),
                cluster.logs()
            );
        }
        // The node idle within seconds.
        let start = Instant::now();
        loop {
            let sinfo = cluster
                .command("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .unwrap();
            if text(&sinfo.stdout).trim() == "idle" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the node is not idle: {}{}",
                text(&sinfo.stdout),
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(cluster)
    }

    /// A Slurm client command for this cluster.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log", "munged.log"]
            .iter()
            .map(|name| {
                let log = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "\n--- {name}:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect()
    }

    /// Waits until no job is queued or running.
    fn wait_idle(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let q = self.command("squeue").args(["-h"]).output().unwrap();
            if q.status.success() && text(&q.stdout).trim().is_empty() {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "jobs still queued after {limit:?}: {}{}",
                text(&q.stdout),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The state Slurm gives job `id` (COMPLETED, FAILED, …).
    fn job_state(&self, id: &str) -> String {
        let out = self
            .command("scontrol")
            .args(["show", "job", id])
            .output()
            .unwrap();
        let all = text(&out.stdout);
        all.split_whitespace()
            .filter_map(|w| w.strip_prefix("JobState="))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid_file in ["slurmd.pid", "slurmctld.pid", "munged.pid"] {
            let Ok(pid) = std::fs::read_to_string(self.dir.join(pid_file)) else {
                continue;
            };
            let pid = pid.trim().to_string();
            let _ = Command::new("kill").arg(&pid).status();
            // Gone before the next one is stopped (slurmd reports to slurmctld as it ends).
            let start = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists()
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// `bash scripts/slurm/<script> ARGS` on `cluster`, with this build's `fgstp`.
fn slurm_script(cluster: &Cluster, script: &str, args: &[&str]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/slurm")
        .join(script);
    cluster
        .command("bash")
        .arg(&path)
        .args(args)
        .env("FGSTP", FGSTP)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A cluster in `dir/slurm`, or `None` (the reason printed) without the packages.
fn cluster_in(dir: &tempfile::TempDir) -> Option<Cluster> {
    Cluster::start(&dir.path().join("slurm"))
}

#[test]
fn eval_array_runs_on_a_one_node_slurm_and_a_rerun_shard_changes_only_its_files() {
    let run = tiny_run();
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster_in(&dir) else {
        return;
    };
    let out = dir.path().join("eval");
    // Each shard takes both cores: libtorch's threads of two shards side by side would spin
    // against each other.
    let cpus = format!(
        "--cpus-per-task={}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let submitted = slurm_script(
        &cluster,
        "eval-array.sh",
        &[
            "--config",
            s(&run.config),
            "--weights",
            s(&run.weights),
            "--split",
            "train",
            "--shards",
            "3",
            "--out",
            s(&out),
            "--",
            &cpus,
        ],
    );
    let said = text(&submitted.stdout);
    assert!(
        submitted.status.success(),
        "{said}{}",
        text(&submitted.stderr)
    );
    // "submitted shards as job array A (…) and the merge as job M"
    let array_id = said
        .split("job array ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_default();
    let merge_id = said
        .split("the merge as job ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
        .unwrap_or_default();
    cluster.wait_idle(Duration::from_secs(300));
    let logs = || {
        let mut all = String::new();
        for entry in std::fs::read_dir(out.join("logs")).unwrap() {
            let path = entry.unwrap().path();
            all.push_str(&format!(
                "\n--- {}:\n{}",
                path.display(),
                std::fs::read_to_string(&path).unwrap_or_default()
            ));
        }
        all + &cluster.logs()
    };
    assert_eq!(cluster.job_state(&merge_id), "COMPLETED", "{}", logs());
    assert_eq!(
        cluster.job_state(&array_id),
        "COMPLETED,COMPLETED,COMPLETED",
        "{}",
        logs()
    );

    // The merged metrics: the unsharded eval's, byte for byte.
    let whole = dir.path().join("whole.json");
    ok(fgstp(&[
        "--threads",
        "1",
        "eval",
        "--config",
        s(&run.config),
        "--weights",
        s(&run.weights),
        "--split",
        "train",
        "--json",
        s(&whole),
    ]));
    assert_eq!(
        std::fs::read_to_string(out.join("metrics.json")).unwrap(),
        std::fs::read_to_string(&whole).unwrap()
    );

    // Shard 1 again, after its state was deleted, through sbatch as the script says: only its
    // video's files are rewritten, and the merge gives the same JSON.
    let before = files(&out.join("predictions"));
    std::fs::remove_file(out.join("states/shard-1.json")).unwrap();
    let rerun = said
        .lines()
        .find_map(|l| l.split_once("or: ").map(|(_, cmd)| cmd.to_string()))
        .unwrap_or_else(|| panic!("no rerun command in: {said}"))
        .replace("--shard K/", "--shard $SLURM_ARRAY_TASK_ID/")
        .replace("shard-K.json", "shard-$SLURM_ARRAY_TASK_ID.json");
    std::thread::sleep(Duration::from_millis(20));
    let again = cluster
        .command("sbatch")
        .args(["--parsable", "--wait", "--array=1", &cpus])
        .arg(format!("--output={}", s(&out.join("logs/rerun-%a.log"))))
        .arg(format!("--wrap={rerun}"))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}{}", text(&again.stderr), logs());
    assert!(out.join("states/shard-1.json").exists());
    assert_one_video_rewritten(&before, &files(&out.join("predictions")));
    let states: Vec<String> = (0..3)
        .map(|k| s(&out.join(format!("states/shard-{k}.json"))).to_string())
        .collect();
    let merged = dir.path().join("merged.json");
    let mut args = vec!["metrics", "merge"];
    args.extend(states.iter().map(String::as_str));
    args.extend(["--json", s(&merged)]);
    ok(fgstp(&args));
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        std::fs::read(&whole).unwrap()
    );

    // Stopped by its pid files: no daemon of this cluster is left.
    let pids: Vec<String> = ["slurmd.pid", "slurmctld.pid", "munged.pid"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(cluster.dir.join(f)).ok())
        .map(|p| p.trim().to_string())
        .collect();
    assert_eq!(pids.len(), 3);
    drop(cluster);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} still runs"
        );
    }
}

fn train_sh(cluster: &Cluster, args: &[&str]) -> (String, String) {
    let out = slurm_script(cluster, "train.sh", args);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    // "submitted job N: …"
    let id = said
        .split("submitted job ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("no job id in: {said}"))
        .to_string();
    (id, said)
}

#[test]
fn train_sh_with_two_tasks_equals_torchrun_and_a_killed_task_names_the_lost_rank() {
    use crate::distributed::{assert_same_weights, fixture, torchrun, SYNC_BN};
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let Some(cluster) = cluster_in(&dir) else {
        return;
    };
    let run = dir.path().join("slurm-run");
    let mut args = vec!["--config", s(&f.config), "--run-dir", s(&run)];
    args.extend(["--tasks-per-node", "2"]);
    args.extend(SYNC_BN);
    let (job, _) = train_sh(&cluster, &args);
    cluster.wait_idle(Duration::from_secs(300));
    let log =
        std::fs::read_to_string(run.join(format!("logs/slurm-{job}.out"))).unwrap_or_default();
    assert_eq!(
        cluster.job_state(&job),
        "COMPLETED",
        "{log}{}",
        cluster.logs()
    );
    assert!(log.contains("rank 1 of 2"), "{log}");

    // torchrun --nproc-per-node 2 on the same config: the same weights.
    match torchrun() {
        Some(torchrun) => {
            let endpoint = format!("127.0.0.1:{}", port());
            let by_torchrun = dir.path().join("torchrun-run");
            let out = Command::new(torchrun)
                .args(["--nnodes", "1", "--nproc-per-node", "2"])
                .args(["--rdzv-backend", "c10d", "--rdzv-endpoint", &endpoint])
                .args(["--no-python", FGSTP, "train", "--config", s(&f.config)])
                .args(["--run-dir", s(&by_torchrun)])
                .args(SYNC_BN)
                .output()
                .unwrap();
            assert!(out.status.success(), "torchrun: {}", text(&out.stderr));
            assert_same_weights(
                &run.join("last.safetensors"),
                &by_torchrun.join("last.safetensors"),
            );
        }
        None => eprintln!("no torchrun beside libtorch: compared with fgstp train --nproc 2 only"),
    }
    assert_same_weights(
        &run.join("last.safetensors"),
        &f.two.join("last.safetensors"),
    );

    // Task 1 of a long job killed (SIGKILL): the job fails, and its log names the lost rank.
    let long = dir.path().join("killed-run");
    let mut args = vec!["--config", s(&f.config), "--run-dir", s(&long)];
    args.extend(["--tasks-per-node", "2"]);
    args.extend([
        "--set",
        "train.epochs=1000",
        "--set",
        "train.dist_timeout=5",
    ]);
    let (job, _) = train_sh(&cluster, &args);
    let log_path = long.join(format!("logs/slurm-{job}.out"));
    let losses = long.join("losses.jsonl");
    let start = Instant::now();
    while std::fs::read_to_string(&losses).map_or(0, |t| t.lines().count()) < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no training progress: {}{}",
            std::fs::read_to_string(&log_path).unwrap_or_default(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Task 1's process, from Slurm's own list of the job's processes (PID JOBID STEPID
    // LOCALID GLOBALID).
    let listed = text(
        &cluster
            .command("scontrol")
            .args(["listpids", &job])
            .output()
            .unwrap()
            .stdout,
    );
    let task1 = listed
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 5 && cols[4] == "1").then(|| cols[0].to_string())
        })
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "fgstp")
        })
        .unwrap_or_else(|| panic!("no task 1 in: {listed}"));
    assert!(Command::new("kill")
        .args(["-KILL", &task1])
        .status()
        .unwrap()
        .success());
    cluster.wait_idle(Duration::from_secs(60));
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(cluster.job_state(&job), "FAILED", "{log}");
    assert!(log.contains("lost rank 1"), "{log}");
}

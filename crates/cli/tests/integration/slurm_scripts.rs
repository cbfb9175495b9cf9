//! Distributed training under Slurm, without Slurm: `scripts/slurm/train.sh --dry-run` and its
//! option errors; the job script it submits, run with stub `sbatch`, `srun` and `scontrol`
//! (starts a run, then continues it once the run directory holds one); and the srun launcher
//! contract itself — two `fgstp train` processes started by hand with only the `SLURM_*`
//! variables srun would give them train as one job.

use crate::common;
use common::{s, shared_scratch_dir, synth_64, FGSTP};

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variables of every launcher fgstp reads: none may leak into a test's processes from the
/// environment the tests run in (a torchrun or Slurm job, say).
const LAUNCHER_VARS: [&str; 10] = [
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_RANK",
    "TORCHELASTIC_USE_AGENT_STORE",
    "TORCHELASTIC_RESTART_COUNT",
    "FGSTP_LOCAL_LAUNCH",
];

/// A tiny config (one epoch, validation before and after it) on a synthetic dataset, made once.
struct Fixture {
    root: PathBuf,
    config: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let root = shared_scratch_dir();
        let data = root.join("data");
        synth_64(&data, 4, 6, 3, &[]);
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
epochs = 1
batch_size = 2
lr = 1e-3
device = "cpu"
threads = 1
dist_timeout = 60
[eval]
every = 1
[log]
loss_every = 1
images = 0
progress = false
"#,
                data.display()
            ),
        )
        .unwrap();
        Fixture { root, config }
    })
}

fn train_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm/train.sh")
}

/// `train.sh ARGS` in `dir`, with `FGSTP` set to `fgstp` and no launcher variables.
fn train_sh_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(train_sh());
    cmd.args(args).current_dir(dir).env("FGSTP", FGSTP);
    for var in LAUNCHER_VARS {
        cmd.env_remove(var);
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

/// The sbatch command and the job script of `train.sh --dry-run`'s output: the command's line
/// ends with a here-document, `<<'FGSTP_JOB'`, whose body is the script.
fn split_dry_run(stdout: &str) -> (String, String) {
    let (command, rest) = stdout.split_once('\n').expect("two parts");
    let command = command
        .strip_suffix("<<'FGSTP_JOB'")
        .unwrap_or_else(|| panic!("no here-document after the sbatch command:\n{stdout}"));
    let script = rest
        .strip_suffix("FGSTP_JOB\n")
        .unwrap_or_else(|| panic!("the here-document is not closed:\n{stdout}"));
    (command.trim().to_string(), script.to_string())
}

/// The one line of `script` that runs `srun`.
fn srun_line(script: &str) -> &str {
    let lines: Vec<&str> = script
        .lines()
        .filter(|l| l.trim_start().starts_with("srun "))
        .collect();
    assert_eq!(lines.len(), 1, "one srun line in:\n{script}");
    lines[0]
}

#[test]
fn dry_run_prints_the_sbatch_command_and_a_job_script_that_sruns_fgstp_train() {
    let f = fixture();
    let run = f.root.join("dry-run");
    let out = succeeded(
        train_sh_in(
            &f.root,
            &[
                "--config",
                s(&f.config),
                "--run-dir",
                s(&run),
                "--nodes",
                "2",
                "--tasks-per-node",
                "3",
                "--set",
                "train.epochs=4",
                "--dry-run",
                "--",
                "--partition=debug",
                "--time=00:10:00",
            ],
        )
        .output()
        .unwrap(),
        "train.sh --dry-run",
    );
    let (command, script) = split_dry_run(&text(&out.stdout));
    assert!(command.starts_with("sbatch "), "{command}");
    for option in [
        "--nodes=2",
        "--ntasks-per-node=3",
        &format!("--output={}/logs/slurm-%j.out", run.display()),
        "--open-mode=append",
        "--partition=debug",
        "--time=00:10:00",
    ] {
        assert!(
            command.split(' ').any(|word| word == option),
            "no {option} in: {command}"
        );
    }
    assert!(!command.contains("gpu"), "CPU-only by default: {command}");

    assert!(script.starts_with("#!/usr/bin/env bash\n"), "{script}");
    assert!(
        script.contains(&format!("\nrun_dir={}\n", run.display())),
        "the run directory is fixed at submission:\n{script}"
    );
    let srun = srun_line(&script);
    for part in [
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks=6",
        "--ntasks-per-node=3",
        &format!("{FGSTP} train \"${{train[@]}}\""),
    ] {
        assert!(srun.contains(part), "no {part} in: {srun}");
    }
    // Starts the run, or continues it when the run directory holds one.
    assert!(
        script.contains(&format!(
            "train=(--config {} --set train.epochs=4 --run-dir \"$run_dir\")",
            f.config.display()
        )),
        "{script}"
    );
    assert!(
        script.contains("if [[ -e $run_dir/last.safetensors ]]; then")
            && script.contains("train=(--resume \"$run_dir\")"),
        "{script}"
    );
    assert!(
        !run.exists(),
        "a dry run creates nothing: {}",
        run.display()
    );

    // --gpus-per-task 1: for sbatch and srun (binding off: each rank takes cuda:LOCAL_RANK); the
    // default run directory, absolute, under runs/ of the working directory.
    let out = succeeded(
        train_sh_in(
            &f.root,
            &["--config", "tiny.toml", "--gpus-per-task", "1", "--dry-run"],
        )
        .env("FGSTP", "fgstp")
        .output()
        .unwrap(),
        "train.sh --gpus-per-task 1 --dry-run",
    );
    let (command, script) = split_dry_run(&text(&out.stdout));
    assert!(
        command.contains(" --nodes=1 --ntasks-per-node=1 --gpus-per-task=1 "),
        "{command}"
    );
    let srun = srun_line(&script);
    assert!(
        srun.contains(" --gpus-per-task=1 --gpu-bind=none fgstp train "),
        "{srun}"
    );
    let default_dir = script
        .lines()
        .find_map(|l| l.strip_prefix("run_dir="))
        .expect("run_dir=");
    let prefix = format!("{}/runs/tiny-", f.root.display());
    assert!(default_dir.starts_with(&prefix), "{default_dir}");
}

#[test]
fn bad_options_are_named_and_exit_2() {
    let f = fixture();
    let config = s(&f.config);
    let no_run = f.root.join("no-run-here");
    let cases: [(&[&str], &str); 10] = [
        (&[], "give --config CONFIG"),
        (&["--config"], "--config needs a value"),
        (&["--config", "missing.toml"], "no config file missing.toml"),
        (
            &["--config", config, "--frobnicate"],
            "unknown option --frobnicate",
        ),
        (
            &["--config", config, "--nodes", "0"],
            "--nodes must be a positive number",
        ),
        (
            &["--config", config, "--tasks-per-node", "two"],
            "--tasks-per-node must be a positive number, not two",
        ),
        (
            &["--config", config, "--nodes", "--dry-run"],
            "--nodes needs a value",
        ),
        (
            &["--config", config, "--set", "train.epochs"],
            "--set takes KEY=VALUE",
        ),
        (
            &["--config", config, "--gpus-per-task", "2"],
            "fgstp trains each rank on one GPU",
        ),
        (&["--run-dir", s(&no_run)], "holds no run to continue"),
    ];
    for (args, message) in cases {
        let out = train_sh_in(&f.root, args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "train.sh {args:?}: {err}");
        assert!(
            err.starts_with("train.sh: ") && err.contains(message),
            "train.sh {args:?} should say {message:?}, said: {err}"
        );
        assert!(out.stdout.is_empty(), "train.sh {args:?} printed to stdout");
    }
    let out = succeeded(
        train_sh_in(&f.root, &["--help"]).output().unwrap(),
        "train.sh --help",
    );
    assert!(text(&out.stdout).contains("--tasks-per-node"));
}

fn write_stub(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/usr/bin/env bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// The value of `name` in a dump of `env`, if set.
fn env_value(env: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    env.iter()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(str::to_string)
}

#[test]
fn the_job_script_starts_a_run_and_continues_it_after_a_requeue() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (bin, stub_out) = (dir.path().join("bin"), dir.path().join("out"));
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&stub_out).unwrap();
    // sbatch keeps the job script; srun records its arguments and environment.
    write_stub(
        &bin,
        "sbatch",
        r#"printf '%s\n' "$@" > "$STUB_OUT/sbatch.args"; cat > "$STUB_OUT/job.sh"; echo '4242;cluster'"#,
    );
    write_stub(
        &bin,
        "srun",
        r#"printf '%s\n' "$@" > "$STUB_OUT/srun.args"; env > "$STUB_OUT/srun.env""#,
    );
    write_stub(
        &bin,
        "scontrol",
        r#"[[ "$1 $2 $3" == "show hostnames node[7-8]" ]] && printf 'node7\nnode8\n'"#,
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let fake_fgstp = "/opt/fgstp/bin/fgstp";

    // Submission: the default run directory, absolute, made with its logs/ folder.
    let out = succeeded(
        train_sh_in(
            dir.path(),
            &[
                "--config",
                s(&f.config),
                "--nodes",
                "2",
                "--tasks-per-node",
                "2",
                "--set",
                "train.epochs=3",
            ],
        )
        .env("PATH", &path)
        .env("STUB_OUT", &stub_out)
        .env("FGSTP", fake_fgstp)
        .output()
        .unwrap(),
        "train.sh (submitting to the stub sbatch)",
    );
    let said = text(&out.stdout);
    assert!(said.contains("submitted job 4242:"), "{said}");
    let run = PathBuf::from(
        said.lines()
            .find_map(|l| l.strip_prefix("run directory: "))
            .and_then(|l| l.split(" (log: ").next())
            .unwrap_or_else(|| panic!("no run directory in: {said}")),
    );
    assert!(
        run.starts_with(dir.path().join("runs")) && run.is_absolute(),
        "{}",
        run.display()
    );
    assert!(run.join("logs").is_dir(), "sbatch's log folder is made");
    let sbatch_args = lines_of(&stub_out.join("sbatch.args"));
    for option in ["--parsable", "--nodes=2", "--ntasks-per-node=2"] {
        assert!(sbatch_args.iter().any(|a| a == option), "{sbatch_args:?}");
    }

    // The job, as Slurm runs its batch script, in an environment left over from torchrun.
    let job = |scontrol_works: bool| {
        if !scontrol_works {
            write_stub(&bin, "scontrol", "exit 1");
        }
        let out = Command::new("bash")
            .arg(stub_out.join("job.sh"))
            .current_dir(dir.path())
            .env("PATH", &path)
            .env("STUB_OUT", &stub_out)
            .env("SLURM_JOB_ID", "1234")
            .env("SLURM_JOB_NODELIST", "node[7-8]")
            .env("SLURM_CPUS_PER_TASK", "4")
            .env_remove("OMP_NUM_THREADS")
            .envs([
                ("RANK", "3"),
                ("WORLD_SIZE", "9"),
                ("MASTER_ADDR", "stale-host"),
                ("MASTER_PORT", "1"),
                ("TORCHELASTIC_RESTART_COUNT", "2"),
                ("FGSTP_LOCAL_LAUNCH", "1"),
            ])
            .output()
            .unwrap();
        succeeded(out, "the job script");
        (
            lines_of(&stub_out.join("srun.args")),
            lines_of(&stub_out.join("srun.env")),
        )
    };
    let srun_options = [
        "--kill-on-bad-exit=1",
        "--nodes=2",
        "--ntasks=4",
        "--ntasks-per-node=2",
        fake_fgstp,
        "train",
    ];
    let (args, env) = job(true);
    let mut expected: Vec<String> = srun_options.iter().map(|a| a.to_string()).collect();
    expected.extend(
        [
            "--config",
            s(&f.config),
            "--set",
            "train.epochs=3",
            "--run-dir",
            s(&run),
        ]
        .map(String::from),
    );
    assert_eq!(args, expected, "a new run");
    assert_eq!(env_value(&env, "MASTER_ADDR").as_deref(), Some("node7"));
    assert_eq!(env_value(&env, "MASTER_PORT").as_deref(), Some("29734"));
    for var in LAUNCHER_VARS.iter().filter(|v| !v.starts_with("MASTER_")) {
        assert_eq!(env_value(&env, var), None, "{var} reaches srun");
    }
    assert_eq!(env_value(&env, "SRUN_CPUS_PER_TASK").as_deref(), Some("4"));
    assert_eq!(env_value(&env, "OMP_NUM_THREADS").as_deref(), Some("4"));

    // Requeued after the first checkpoint: the same job continues the run. Without scontrol,
    // MASTER_ADDR is left to fgstp (the first host of SLURM_STEP_NODELIST).
    std::fs::write(run.join("last.safetensors"), b"").unwrap();
    let (args, env) = job(false);
    let mut expected: Vec<String> = srun_options.iter().map(|a| a.to_string()).collect();
    expected.extend(["--resume".to_string(), s(&run).to_string()]);
    assert_eq!(args, expected, "a requeued job");
    assert_eq!(env_value(&env, "MASTER_ADDR"), None);
    assert_eq!(env_value(&env, "MASTER_PORT").as_deref(), Some("29734"));

    // Submitting again with the run directory alone continues the run too.
    let out = succeeded(
        train_sh_in(dir.path(), &["--run-dir", s(&run), "--dry-run"])
            .output()
            .unwrap(),
        "train.sh --run-dir RUN --dry-run",
    );
    assert!(
        text(&out.stderr).contains("holds a run: the job continues it"),
        "{}",
        text(&out.stderr)
    );
}

/// A free port for rank 0's store, and the job id whose default port it is (`SLURM_JOB_ID`
/// with `29500 + id % 1000 == port`) — or, when no port of 29500..30500 is free here, any free
/// port and no job id, for `MASTER_PORT` to name explicitly.
fn slurm_store_port() -> (u16, Option<u64>) {
    let start = u16::try_from(std::process::id() % 1000).unwrap();
    for k in 0..1000u16 {
        let offset = (start + k) % 1000;
        let port = 29500 + offset;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return (port, Some(7000 + u64::from(offset)));
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    (listener.local_addr().unwrap().port(), None)
}

/// Waits for every child; kills them all and fails once `limit` has passed.
fn wait_all(children: &mut [Child], limit: Duration, logs: &[PathBuf]) -> Vec<i32> {
    let deadline = Instant::now() + limit;
    let mut codes = vec![None; children.len()];
    while codes.iter().any(Option::is_none) {
        for (child, code) in children.iter_mut().zip(&mut codes) {
            if code.is_none() {
                if let Some(status) = child.try_wait().unwrap() {
                    *code = Some(status.code().unwrap_or(-1));
                }
            }
        }
        if Instant::now() > deadline {
            for child in children.iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let logs: Vec<String> = logs
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .collect();
            panic!(
                "the ranks did not finish within {limit:?}:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    codes.into_iter().map(Option::unwrap).collect()
}

#[test]
fn two_processes_with_only_slurm_variables_train_as_one_job() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (port, job_id) = slurm_store_port();
    let runs = [dir.path().join("rank0-run"), dir.path().join("rank1-run")];
    let logs = [dir.path().join("rank0.err"), dir.path().join("rank1.err")];
    let mut children: Vec<Child> = (0..2)
        .map(|rank| {
            let mut cmd = Command::new(FGSTP);
            cmd.args([
                "train",
                "--config",
                s(&f.config),
                "--run-dir",
                s(&runs[rank]),
            ]);
            for var in LAUNCHER_VARS {
                cmd.env_remove(var);
            }
            for (var, _) in std::env::vars_os() {
                if var.to_string_lossy().starts_with("SLURM_") {
                    cmd.env_remove(var);
                }
            }
            // What srun gives task `rank` of a 2-task step on one node.
            cmd.env("SLURM_PROCID", rank.to_string())
                .env("SLURM_STEP_ID", "0")
                .env("SLURM_NTASKS", "2")
                .env("SLURM_LOCALID", rank.to_string())
                .env("SLURM_NTASKS_PER_NODE", "2")
                .env("SLURM_JOB_NODELIST", "127.0.0.1");
            match job_id {
                // The store's port is derived from the job id, as on a cluster.
                Some(id) => cmd.env("SLURM_JOB_ID", id.to_string()),
                // No port of fgstp's Slurm range is free here: name one.
                None => cmd
                    .env("SLURM_JOB_ID", "1")
                    .env("MASTER_PORT", port.to_string()),
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&logs[rank]).unwrap())
                .spawn()
                .expect("fgstp starts")
        })
        .collect();
    let codes = wait_all(&mut children, Duration::from_secs(120), &logs);
    let [err0, err1] = logs.map(|p| std::fs::read_to_string(p).unwrap());
    assert_eq!(codes, [0, 0], "rank 0:\n{err0}\n----\nrank 1:\n{err1}");

    for (rank, err) in [&err0, &err1].into_iter().enumerate() {
        let joined = format!(
            "distributed: rank {rank} of 2 (local {rank} of 2), slurm, store at 127.0.0.1:{port}"
        );
        assert!(err.contains(&joined), "rank {rank}:\n{err}");
    }
    // Rank 0's run directory is the job's; only rank 0 writes it and reports validation.
    for name in ["last.safetensors", "metrics.jsonl", "config.toml"] {
        assert!(runs[0].join(name).is_file(), "{name} missing");
    }
    let metrics = std::fs::read_to_string(runs[0].join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "validation at epochs 0 and 1");
    assert!(!runs[1].exists(), "rank 1 made its own run directory");
    assert!(err0.contains("validation after epoch 1"), "{err0}");
    assert!(!err1.contains("validation after epoch"), "{err1}");
}

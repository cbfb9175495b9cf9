//! `fgstp watch`: segment camera streams as frames arrive and write leak events.

use super::model_args::ModelArgs;
use anyhow::{bail, Result};
use fgstp_model::ModelKind;
use fgstp_train::run_config::watch::parse_camera_arg;
use fgstp_train::watch::engine;
use fgstp_train::watch::source::RawFormat;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// A camera: NAME=SOURCE, SOURCE rtsp://[user:pass@]host[:port]/path (H.264),
    /// http://… (MJPEG), a video file, a folder of frames, or - (raw frames on standard input,
    /// see --raw) (repeatable; also [[watch.camera]] in the config)
    #[arg(long = "camera", value_name = "NAME=SOURCE")]
    cameras: Vec<String>,
    /// Folder for events.jsonl, snapshots/, status.jsonl and stats.json
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Pace files and folders at their frame rate (watch.realtime)
    #[arg(long)]
    realtime: bool,
    /// Keep watching folder sources for new frames until stopped
    #[arg(long)]
    follow: bool,
    /// The layout of raw frames a camera reads from standard input (SOURCE `-`):
    /// WxH:gray8|gray16le|rgb24[@FPS], e.g. 320x240:gray16le@30
    #[arg(long, value_name = "WxH:FORMAT[@FPS]")]
    raw: Option<RawFormat>,
    /// Publish events, camera states and stats to this MQTT broker: mqtt://host[:port] or
    /// mqtts://host[:port] (watch.mqtt.url; user and password in [watch.mqtt], never here)
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// Serve the web dashboard and its JSON API at HOST:PORT (watch.http.listen; alone:
    /// 127.0.0.1:8090). Other than the loopback needs watch.http.token
    #[arg(long, value_name = "HOST:PORT", num_args = 0..=1, default_missing_value = "127.0.0.1:8090")]
    listen: Option<String>,
}

pub fn run(args: Args, threads_given: bool) -> Result<()> {
    if !threads_given {
        // The cameras' decode threads (and the clip writers) need a core while the model runs:
        // with libtorch on every core, its threads take turns with them and the tail latency
        // grows until a real-time camera drops triplets (2 cores, one 15 frames/s camera: 4–10
        // of 449 dropped, p95 71–164 ms; with one thread none, p95 59–63 ms).
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tch::set_num_threads(i32::try_from(cores.saturating_sub(1).max(1))?);
    }
    let loaded = args.model.load()?;
    if loaded.cfg.model.kind != ModelKind::Fgstp {
        bail!(
            "fgstp watch runs FGSTP models (model.kind = \"fgstp\"); {} is a {:?} model",
            args.model.config.display(),
            loaded.cfg.model.kind
        );
    }
    let mut watch = loaded.cfg.watch.clone();
    watch.realtime |= args.realtime;
    if let Some(url) = &args.mqtt {
        watch.mqtt.url = url.clone();
    }
    if let Some(listen) = &args.listen {
        watch.http.listen = listen.clone();
    }
    let mut cameras = watch.camera.clone();
    for arg in &args.cameras {
        cameras.push(parse_camera_arg(arg)?);
    }
    watch.camera = cameras.clone();
    watch.validate()?;
    if cameras.is_empty() {
        bail!("no camera to watch: give --camera NAME=SOURCE, or [[watch.camera]] in the config");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without ending the open events");
            std::process::exit(130);
        }
        eprintln!("\nstopping: ending the open events");
    })?;
    eprintln!(
        "watching {} camera(s): {}; writing to {}",
        cameras.len(),
        cameras
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.out.display()
    );
    if cameras.iter().filter(|c| c.source == "-").count() > 1 {
        bail!("only one camera can read standard input (-)");
    }
    let report = engine::watch(
        &loaded,
        &watch,
        &cameras,
        args.follow,
        args.raw,
        &args.out,
        &stop,
    )?;
    eprintln!(
        "done: {} triplets analysed, {} skipped, {} events ({})",
        report.analysed,
        report.skipped,
        report.events,
        args.out.join("events.jsonl").display()
    );
    Ok(())
}

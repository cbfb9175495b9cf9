//! Batches as `tch` tensors, built in parallel on a background producer with a bounded queue.
//!
//! A loader owns a checked [`Split`], its sample list and a rayon pool of `threads` workers.
//! Each call to [`TrainLoader::epoch`] / [`EvalLoader::batches`] starts one producer thread
//! that builds batch after batch (decoding and augmenting the 3·B frames and B masks of a
//! batch in parallel on the pool) and queues up to `prefetch` finished batches. Every random
//! draw comes from (seed, epoch, sample index), so batches are identical for any thread count.
//! Dropping the iterator stops the producer: it finishes the batch in hand and exits, and the
//! drop waits for it, so no thread outlives the iterator.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use image::GrayImage;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use tch::Tensor;

use crate::augment::{
    mask_into, normalisation_table, normalise_into, resize_mask, resize_rgb, AugmentDraw,
};
use crate::config::{DataConfig, TrainSampling};
use crate::decode::load_mask;
use crate::error::{DataError, Result};
use crate::layout::{Masks, Split};
use crate::sample::{evaluation_samples, rng_for, training_samples, SampleRef};

/// Who a sample is, for logs, metrics and written predictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleInfo {
    /// Index of the sample in the loader's sample list.
    pub index: usize,
    pub scene: String,
    /// Frame indices within the scene: current frame, then its two neighbours.
    pub frames: [usize; 3],
    /// File names of those frames (`images/<name>`).
    pub names: [String; 3],
    pub paths: [PathBuf; 3],
    pub mask_path: Option<PathBuf>,
    /// Whether the current frame has a mask (is trained on / scored).
    pub supervised: bool,
    /// Size of the frames on disk, (width, height).
    pub original_size: (u32, u32),
}

/// A training batch: B samples at the train size S.
#[derive(Debug)]
pub struct Batch {
    /// Frames t, t+1, t+2: each `[B, 3, S, S]` f32, ImageNet-normalised.
    pub frames: [Tensor; 3],
    /// Mask of frame t: `[B, 1, S, S]` f32 in [0, 1] (resized, not re-binarised, as the reference).
    pub mask: Tensor,
    pub samples: Vec<SampleInfo>,
}

/// An evaluation / inference batch: frames at the model size, masks at their original size.
#[derive(Debug)]
pub struct EvalBatch {
    /// Frames t and its two neighbours: each `[B, 3, S, S]` f32, ImageNet-normalised.
    pub frames: [Tensor; 3],
    /// Binary mask (0/255) of frame t at the frame's original size; `None` if not annotated.
    pub masks: Vec<Option<GrayImage>>,
    pub samples: Vec<SampleInfo>,
}

/// Iterator over the batches of one pass; see the module docs.
pub struct Batches<T> {
    rx: Option<Receiver<Result<T>>>,
    stop: Arc<AtomicBool>,
    producer: Option<JoinHandle<()>>,
    remaining: usize,
    starvation: Starvation,
}

/// How often the consumer found the prefetch queue empty and had to wait for a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Starvation {
    /// Batches handed out.
    pub requests: usize,
    /// Of those, the ones not ready when asked for.
    pub starved: usize,
    /// Total time spent waiting for them.
    pub waited: std::time::Duration,
}

impl<T> Iterator for Batches<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        let rx = self.rx.as_ref()?;
        let item = match rx.try_recv() {
            Ok(item) => item,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                let started = std::time::Instant::now();
                let item = rx.recv().ok()?;
                self.starvation.starved += 1;
                self.starvation.waited += started.elapsed();
                item
            }
        };
        self.starvation.requests += 1;
        self.remaining = self.remaining.saturating_sub(1);
        if item.is_err() {
            // The producer stops after an error; so does the iteration.
            self.remaining = 0;
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

impl<T> Drop for Batches<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the queue makes a producer blocked in `send` return at once.
        drop(self.rx.take());
        if let Some(handle) = self.producer.take() {
            let _ = handle.join();
        }
    }
}

impl<T> Batches<T> {
    /// Whether the producer thread has exited (it does after the last batch, or once dropped).
    pub fn producer_finished(&self) -> bool {
        self.producer.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Whether the consumer had to wait for batches so far (a data stream that keeps up
    /// leaves `starved` at 0 after the first batch).
    pub fn starvation(&self) -> Starvation {
        self.starvation
    }
}

type BuildFn<T> = dyn Fn(&[(usize, SampleRef)]) -> Result<T> + Send + Sync;

fn spawn_producer<T: Send + 'static>(
    batches: Vec<Vec<(usize, SampleRef)>>,
    prefetch: usize,
    pool: Arc<rayon::ThreadPool>,
    build: Arc<BuildFn<T>>,
) -> Batches<T> {
    let (tx, rx) = sync_channel(prefetch.max(1));
    let stop = Arc::new(AtomicBool::new(false));
    let remaining = batches.len();
    let producer_stop = Arc::clone(&stop);
    let producer = std::thread::Builder::new()
        .name("fgstp-prefetch".into())
        .spawn(move || {
            for batch in &batches {
                if producer_stop.load(Ordering::Relaxed) {
                    return;
                }
                let result = pool.install(|| build(batch));
                let failed = result.is_err();
                if tx.send(result).is_err() || failed {
                    return;
                }
            }
        });
    match producer {
        Ok(handle) => Batches {
            rx: Some(rx),
            stop,
            producer: Some(handle),
            remaining,
            starvation: Starvation::default(),
        },
        Err(e) => {
            // No producer: hand the error out as the only item.
            let (tx, rx) = sync_channel(1);
            let _ = tx.send(Err(DataError::Threads {
                threads: 1,
                reason: e.to_string(),
            }));
            Batches {
                rx: Some(rx),
                stop,
                producer: None,
                remaining: 1,
                starvation: Starvation::default(),
            }
        }
    }
}

fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("fgstp-data-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| DataError::Threads {
            threads,
            reason: e.to_string(),
        })
}

fn sample_info(split: &Split, index: usize, sample: &SampleRef) -> SampleInfo {
    let scene = &split.scenes[sample.scene];
    let frame = |k: usize| &scene.frames[sample.frames[k]];
    SampleInfo {
        index,
        scene: scene.name.clone(),
        frames: sample.frames,
        names: std::array::from_fn(|k| frame(k).name.clone()),
        paths: std::array::from_fn(|k| frame(k).image.clone()),
        mask_path: frame(0).mask.clone(),
        supervised: sample.supervised,
        original_size: (scene.width, scene.height),
    }
}

/// Shared state of a loader.
struct Source {
    split: Split,
    samples: Vec<SampleRef>,
    cfg: DataConfig,
    table: [[f32; 256]; 3],
}

/// Decoded, optionally augmented, resized and normalised frames of one batch: 3 blocks of
/// `[B, 3, S, S]`; masks go to `mask_out` (`[B, 1, S, S]`) when given.
fn fill_frames(
    src: &Source,
    batch: &[(usize, SampleRef)],
    draws: &[AugmentDraw],
    mask_out: Option<&mut [f32]>,
) -> Result<[Vec<f32>; 3]> {
    let size = src.cfg.train_size;
    let plane = (size * size) as usize;
    let mut frames: [Vec<f32>; 3] = std::array::from_fn(|_| vec![0f32; batch.len() * 3 * plane]);
    // One job per frame and per mask, each writing its own block of the output.
    let mut jobs: Vec<(usize, usize, &mut [f32])> = Vec::with_capacity(batch.len() * 4);
    for (slot, buf) in frames.iter_mut().enumerate() {
        for (b, block) in buf.chunks_mut(3 * plane).enumerate() {
            jobs.push((b, slot, block));
        }
    }
    if let Some(masks) = mask_out {
        for (b, block) in masks.chunks_mut(plane).enumerate() {
            jobs.push((b, 3, block));
        }
    }
    let results: Vec<Result<()>> = jobs
        .into_par_iter()
        .map(|(b, slot, out)| {
            let sample = &batch[b].1;
            let scene = &src.split.scenes[sample.scene];
            if slot < 3 {
                let img = scene.load_frame(sample.frames[slot], src.cfg.sixteen_bit)?;
                let img = draws[b].frame(img, slot);
                normalise_into(&resize_rgb(&img, size), &src.table, out);
            } else {
                // Training samples always have a mask.
                let path = scene.frames[sample.frames[0]]
                    .mask
                    .as_deref()
                    .expect("supervised sample");
                let mask = draws[b].mask(load_mask(path)?);
                mask_into(&resize_mask(&mask, size), out);
            }
            Ok(())
        })
        .collect();
    results.into_iter().collect::<Result<()>>()?;
    Ok(frames)
}

fn tensors(frames: [Vec<f32>; 3], b: usize, size: u32) -> [Tensor; 3] {
    let s = i64::from(size);
    frames.map(|v| Tensor::from_slice(&v).view([b as i64, 3, s, s]))
}

fn draw_for(cfg: &DataConfig, seed: u64, epoch: u64, index: usize) -> AugmentDraw {
    if cfg.augment {
        AugmentDraw::draw(&mut rng_for(seed, epoch, index as u64))
    } else {
        AugmentDraw::none()
    }
}

/// Streams batches of one split on a thread pool; `Kind` says which samples and what batches.
pub struct Loader<Kind> {
    src: Arc<Source>,
    pool: Arc<rayon::ThreadPool>,
    kind: Kind,
}

/// Training: the reference frame set, augmented, shuffled per epoch.
pub struct Training {
    sampling: TrainSampling,
}
/// Evaluation and inference: every sample of the protocol, in video order.
pub struct Evaluation;

/// Streams training batches (reference frame set, augmented, shuffled per epoch).
pub type TrainLoader = Loader<Training>;
/// Streams evaluation / inference batches in video order, every sample of the protocol.
pub type EvalLoader = Loader<Evaluation>;

impl<Kind> Loader<Kind> {
    fn with_samples(
        split: Split,
        samples: Vec<SampleRef>,
        cfg: &DataConfig,
        kind: Kind,
    ) -> Result<Self> {
        Ok(Loader {
            pool: build_pool(cfg.resolved_threads())?,
            src: Arc::new(Source {
                split,
                samples,
                cfg: cfg.clone(),
                table: normalisation_table(),
            }),
            kind,
        })
    }

    pub fn split(&self) -> &Split {
        &self.src.split
    }

    /// Producer threads of this loader still alive (0 once every iterator is dropped or done).
    pub fn live_producers(&self) -> usize {
        Arc::strong_count(&self.src) - 1
    }

    pub fn samples(&self) -> &[SampleRef] {
        &self.src.samples
    }

    /// Number of samples (per epoch, for training).
    pub fn len(&self) -> usize {
        self.src.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.src.samples.is_empty()
    }
}

impl Loader<Training> {
    /// Opens `cfg.root / cfg.train_split` and checks it.
    pub fn open(cfg: &DataConfig, sampling: TrainSampling) -> Result<Self> {
        Self::new(
            Split::open(&cfg.root, &cfg.train_split, Masks::Required)?,
            cfg,
            sampling,
        )
    }

    /// A loader over an already opened split (e.g. the validation split, for a loss).
    pub fn new(split: Split, cfg: &DataConfig, sampling: TrainSampling) -> Result<Self> {
        cfg.validate(Path::new("<data config>"))?;
        if sampling.batch_size == 0 {
            return Err(DataError::Config {
                path: PathBuf::from("train.batch_size"),
                reason: "a training batch needs at least 1 sample".into(),
            });
        }
        let samples = training_samples(&split);
        if samples.is_empty() {
            return Err(DataError::NoTrainingSamples { path: split.dir });
        }
        Self::with_samples(split, samples, cfg, Training { sampling })
    }

    /// Batches per epoch (the last one may be smaller, as the reference's `DataLoader`).
    pub fn batches_per_epoch(&self) -> usize {
        self.len().div_ceil(self.kind.sampling.batch_size)
    }

    /// The sample order of `epoch` (shuffled from the seed when `shuffle` is on).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        if self.src.cfg.shuffle {
            // A stream of its own, apart from the per-sample augmentation draws.
            let seed = self.kind.sampling.seed;
            let mut rng = rng_for(seed ^ 0x5348_5546_464c_4521, epoch, 0);
            order.shuffle(&mut rng);
        }
        order
    }

    /// The random choices for sample `index` in `epoch`.
    pub fn draw(&self, epoch: u64, index: usize) -> AugmentDraw {
        draw_for(&self.src.cfg, self.kind.sampling.seed, epoch, index)
    }

    /// Starts streaming one epoch.
    pub fn epoch(&self, epoch: u64) -> Batches<Batch> {
        self.epoch_from(epoch, 0)
    }

    /// Streams `epoch` from its batch `first` on: the batches a resumed run has not trained
    /// on yet, identical to those of an uninterrupted epoch (nothing before `first` is decoded).
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Batches<Batch> {
        let order = self.order(epoch);
        let TrainSampling { batch_size, seed } = self.kind.sampling;
        let batches: Vec<Vec<(usize, SampleRef)>> = order
            .chunks(batch_size)
            .skip(first)
            .map(|c| c.iter().map(|&i| (i, self.src.samples[i])).collect())
            .collect();
        let src = Arc::clone(&self.src);
        let build = move |batch: &[(usize, SampleRef)]| -> Result<Batch> {
            let size = src.cfg.train_size;
            let plane = (size * size) as usize;
            let draws: Vec<AugmentDraw> = batch
                .iter()
                .map(|&(i, _)| draw_for(&src.cfg, seed, epoch, i))
                .collect();
            let mut mask = vec![0f32; batch.len() * plane];
            let frames = fill_frames(&src, batch, &draws, Some(&mut mask))?;
            let s = i64::from(size);
            Ok(Batch {
                frames: tensors(frames, batch.len(), size),
                mask: Tensor::from_slice(&mask).view([batch.len() as i64, 1, s, s]),
                samples: batch
                    .iter()
                    .map(|(i, r)| sample_info(&src.split, *i, r))
                    .collect(),
            })
        };
        spawn_producer(
            batches,
            self.src.cfg.prefetch,
            Arc::clone(&self.pool),
            Arc::new(build),
        )
    }
}

impl Loader<Evaluation> {
    /// Opens `cfg.root / split` (masks required: evaluation).
    pub fn open(cfg: &DataConfig, split: &str) -> Result<Self> {
        Self::new(Split::open(&cfg.root, split, Masks::Required)?, cfg)
    }

    /// A loader over an already opened split (open it with [`Masks::Optional`] for inference).
    pub fn new(split: Split, cfg: &DataConfig) -> Result<Self> {
        cfg.validate(Path::new("<data config>"))?;
        let samples = evaluation_samples(&split, cfg.protocol);
        Self::with_samples(split, samples, cfg, Evaluation)
    }

    /// A loader over the samples of `split` that `keep` accepts, e.g. those of frames an
    /// interrupted inference has not written yet (`fgstp infer` on a video that breaks).
    pub fn new_filtered(
        split: Split,
        cfg: &DataConfig,
        keep: impl FnMut(&SampleRef) -> bool,
    ) -> Result<Self> {
        cfg.validate(Path::new("<data config>"))?;
        let mut samples = evaluation_samples(&split, cfg.protocol);
        samples.retain(keep);
        Self::with_samples(split, samples, cfg, Evaluation)
    }

    /// Frame `frame` of scene `scene` as the model sees it: `[3, S, S]` f32, resized and
    /// ImageNet-normalised like the frames of [`EvalLoader::batches`]. For streaming
    /// inference, which encodes each frame once instead of once per triplet.
    pub fn model_input(&self, scene: usize, frame: usize) -> Result<Tensor> {
        let src = &self.src;
        let size = src.cfg.train_size;
        let img = src.split.scenes[scene].load_frame(frame, src.cfg.sixteen_bit)?;
        let mut out = vec![0f32; 3 * (size * size) as usize];
        normalise_into(&resize_rgb(&img, size), &src.table, &mut out);
        let s = i64::from(size);
        Ok(Tensor::from_slice(&out).view([3, s, s]))
    }

    pub fn batches_per_pass(&self) -> usize {
        self.len().div_ceil(self.src.cfg.eval_batch_size)
    }

    /// Starts one pass over the split.
    pub fn batches(&self) -> Batches<EvalBatch> {
        let batches: Vec<Vec<(usize, SampleRef)>> = self
            .src
            .samples
            .iter()
            .copied()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(self.src.cfg.eval_batch_size)
            .map(<[_]>::to_vec)
            .collect();
        let src = Arc::clone(&self.src);
        let build = move |batch: &[(usize, SampleRef)]| -> Result<EvalBatch> {
            let draws = vec![AugmentDraw::none(); batch.len()];
            let frames = fill_frames(&src, batch, &draws, None)?;
            let masks: Vec<Result<Option<GrayImage>>> = batch
                .par_iter()
                .map(|(_, r)| {
                    let frame = &src.split.scenes[r.scene].frames[r.frames[0]];
                    frame.mask.as_deref().map(load_mask).transpose()
                })
                .collect();
            Ok(EvalBatch {
                frames: tensors(frames, batch.len(), src.cfg.train_size),
                masks: masks.into_iter().collect::<Result<_>>()?,
                samples: batch
                    .iter()
                    .map(|(i, r)| sample_info(&src.split, *i, r))
                    .collect(),
            })
        };
        spawn_producer(
            batches,
            self.src.cfg.prefetch,
            Arc::clone(&self.pool),
            Arc::new(build),
        )
    }
}

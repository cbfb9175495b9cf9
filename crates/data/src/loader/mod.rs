//! Batches as `tch` tensors, built in parallel on a background producer with a bounded queue.
//!
//! A loader owns a checked [`Split`], its sample list, what the model reads ([`InputSpec`]) and
//! a rayon pool of `threads` workers. Each call to [`TrainLoader::epoch`] /
//! [`EvalLoader::batches`] starts one producer thread that builds batch after batch (decoding
//! and augmenting the frames and masks of a batch in parallel on the pool) and queues up to
//! `prefetch` finished batches. Every random draw comes from (seed, epoch, sample index), so
//! batches are identical for any thread count. Dropping the iterator stops the producer: it
//! finishes the batch in hand and exits, and the drop waits for it, so no thread outlives the
//! iterator.
//!
//! # Batch layout
//! With [`TrainSamples::Triplets`] (FGSTP's), `frames` holds frames t, t+1, t+2 as three
//! `[B, 3, H, W]` tensors and `mask` frame t's `[B, 1, H, W]`. Single-frame and clip samples
//! hold one tensor per model input of a frame (ZoomNeXt: its three zoom scales; the long-term
//! SLT-Net: RGB + prior), each `[B·F, C, h, w]` with the F frames of a sample next to each other,
//! and a mask per frame, `[B·F, 1, H, W]`.

mod pixels;
mod prefetch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::GrayImage;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use tch::Tensor;

use crate::augment::{normalisation_table, AugmentDraw};
use crate::config::{DataConfig, EmptyMasks, Protocol, TrainSampling};
use crate::dataset::{Masks, Split};
use crate::decode::load_mask;
use crate::error::{DataError, Result};
use crate::inputs::{InputSpec, TrainSamples};
use crate::sample::{
    evaluation_samples_for, rng_for, training_samples_every_frame, training_samples_for, SampleRef,
};

use pixels::{FrameAugment, SampleDraw, Source};
use prefetch::{build_pool, spawn_producer};
pub use prefetch::{Batches, Starvation};

/// Who a sample is, for logs, metrics and written predictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleInfo {
    /// Index of the sample in the loader's sample list.
    pub index: usize,
    pub scene: String,
    /// Frame indices within the scene: current frame, then its two neighbours.
    pub frames: [usize; 3],
    /// A clip sample's frames; empty otherwise.
    pub clip: Vec<usize>,
    /// File names of those frames (`images/<name>`).
    pub names: [String; 3],
    pub paths: [PathBuf; 3],
    pub mask_path: Option<PathBuf>,
    /// Whether the current frame has a mask (is trained on / scored).
    pub supervised: bool,
    /// Size of the frames on disk, (width, height).
    pub original_size: (u32, u32),
}

/// A training batch (see the module docs for the layout).
#[derive(Debug)]
pub struct Batch {
    /// The model inputs, f32: triplets `[B, 3, H, W]` × 3 (t, t+1, t+2, ImageNet-normalised);
    /// otherwise one `[B·F, C, h, w]` per input of a frame.
    pub frames: Vec<Tensor>,
    /// `[B, 1, H, W]` (triplets) or `[B·F, 1, H, W]`, f32 in [0, 1] (resized, not re-binarised,
    /// as the references).
    pub mask: Tensor,
    pub samples: Vec<SampleInfo>,
}

/// An evaluation / inference batch: frames at the model size, masks at their original size.
#[derive(Debug)]
pub struct EvalBatch {
    /// For each of frame t and its two neighbours, each model input of that frame `[B, C, h, w]`
    /// (FGSTP: three `[B, 3, H, W]`, ImageNet-normalised).
    pub frames: Vec<Tensor>,
    /// Binary mask (0/255) of frame t at the frame's original size; `None` if not annotated.
    pub masks: Vec<Option<GrayImage>>,
    pub samples: Vec<SampleInfo>,
}

fn sample_info(split: &Split, index: usize, sample: &SampleRef) -> SampleInfo {
    let scene = &split.scenes[sample.scene];
    let frame = |k: usize| &scene.frames[sample.frames[k]];
    SampleInfo {
        index,
        scene: scene.name.clone(),
        frames: sample.frames,
        clip: sample.clip.clone(),
        names: std::array::from_fn(|k| frame(k).name.clone()),
        paths: std::array::from_fn(|k| frame(k).image.clone()),
        mask_path: frame(0).mask.clone(),
        supervised: sample.supervised,
        original_size: (scene.width, scene.height),
    }
}

/// Stacks per-frame blocks into tensors: `blocks[i][k]` is input k of frame i; `groups` frames
/// in order. Input k becomes one tensor `[frames, C_k, h_k, w_k]`.
fn stack_inputs(blocks: Vec<Vec<Vec<f32>>>, shapes: &[[i64; 3]]) -> Vec<Tensor> {
    let n = blocks.len() as i64;
    shapes
        .iter()
        .enumerate()
        .map(|(k, shape)| {
            let flat: Vec<f32> = blocks.iter().flat_map(|b| b[k].iter().copied()).collect();
            Tensor::from_slice(&flat).view([n, shape[0], shape[1], shape[2]])
        })
        .collect()
}

/// Builds one training batch.
fn build_training_batch(
    src: &Source,
    batch: &[(usize, SampleRef)],
    seed: u64,
    epoch: u64,
) -> Result<Batch> {
    let spec = &src.spec;
    let draws: Vec<SampleDraw> = batch
        .iter()
        .map(|&(i, _)| src.draw(seed, epoch, i))
        .collect();
    let read: Vec<Vec<usize>> = batch
        .iter()
        .map(|(_, s)| s.read_frames(spec.train))
        .collect();
    // One job per frame read and one per mask, each returning its own blocks.
    let supervised_frames = |frames: usize| match spec.train {
        TrainSamples::Clips { .. } => frames,
        _ => 1,
    };
    let mut jobs: Vec<(usize, usize, bool)> = Vec::new();
    for (b, frames) in read.iter().enumerate() {
        for f in 0..frames.len() {
            jobs.push((b, f, false));
        }
        for f in 0..supervised_frames(frames.len()) {
            jobs.push((b, f, true));
        }
    }
    let results: Vec<Result<Vec<Vec<f32>>>> = jobs
        .par_iter()
        .map(|&(b, f, is_mask)| {
            let scene = batch[b].1.scene;
            let aug = draws[b].for_frame(spec, f);
            if is_mask {
                Ok(vec![src.frame_mask(scene, read[b][f], aug)?])
            } else {
                src.frame_inputs(scene, read[b][f], aug)
            }
        })
        .collect();
    let mut frames: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut masks: Vec<Vec<f32>> = Vec::new();
    for (&(_, _, is_mask), result) in jobs.iter().zip(results) {
        let mut blocks = result?;
        if is_mask {
            masks.push(blocks.remove(0));
        } else {
            frames.push(blocks);
        }
    }
    // Jobs were pushed sample by sample, frames before masks: restore (sample, frame) order.
    let shapes = src.input_shapes();
    let (h, w) = src.cfg.train_size.hw();
    let frames = if spec.train == TrainSamples::Triplets {
        // Slot-major: frames t, t+1, t+2 each as [B, C, H, W].
        (0..3)
            .map(|slot| {
                let per_sample: Vec<Vec<Vec<f32>>> = (0..batch.len())
                    .map(|b| frames[3 * b + slot].clone())
                    .collect();
                stack_inputs(per_sample, &shapes).remove(0)
            })
            .collect()
    } else {
        stack_inputs(frames, &shapes)
    };
    let n_masks = masks.len() as i64;
    let mask: Vec<f32> = masks.into_iter().flatten().collect();
    Ok(Batch {
        frames,
        mask: Tensor::from_slice(&mask).view([n_masks, 1, h, w]),
        samples: batch
            .iter()
            .map(|(i, r)| sample_info(&src.split, *i, r))
            .collect(),
    })
}

/// Where one process stands in distributed training: rank `rank` of a world of `world`.
///
/// A training epoch's single global order ([`Loader::order`]) from a start sample on is cut
/// into global batches of `batch_size · world` consecutive samples; in each, rank r takes the
/// samples at positions r, r + world, r + 2·world, …, so the ranks' batches together are the
/// global batch, the batch one process would train with `batch_size · world`. A last, partial
/// global batch of T samples is dropped with `drop_last`; otherwise it is padded up to the next
/// multiple of `world` with the first samples of the epoch's order (as PyTorch's
/// `DistributedSampler`) and split the same way: every rank gets ceil(T / world) samples.
/// Because the cut starts at a sample, not a batch, a run may resume with another world size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Shard {
    /// One process: everything.
    pub const SINGLE: Shard = Shard { rank: 0, world: 1 };
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
    /// With [`Loader::with_twin_batches`]: per sample, the sample of the same frames of the
    /// scene it is the leak-free twin of.
    twin_of: Option<Vec<Option<usize>>>,
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
        spec: &InputSpec,
        kind: Kind,
        empty_masks: EmptyMasks,
    ) -> Result<Self> {
        if spec.prior && cfg.prior_dir.is_none() {
            return Err(DataError::NoPriorDir);
        }
        Ok(Loader {
            pool: build_pool(cfg.resolved_threads())?,
            src: Arc::new(Source {
                split,
                samples,
                cfg: cfg.clone(),
                spec: *spec,
                table: normalisation_table(),
                empty_masks,
            }),
            kind,
        })
    }

    pub fn split(&self) -> &Split {
        &self.src.split
    }

    /// What the model reads.
    pub fn spec(&self) -> &InputSpec {
        &self.src.spec
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

    /// Frame `frame` of scene `scene` as the model sees it, without augmentation: one tensor per
    /// model input ([`PixelFormat`]: ImageNet-normalised `[3, H, W]`; `[3 or 4, H, W]` in
    /// [0, 1]; or the three zoom scales). For streaming inference, which reads each frame once.
    ///
    /// [`PixelFormat`]: crate::inputs::PixelFormat
    pub fn model_inputs(&self, scene: usize, frame: usize) -> Result<Vec<Tensor>> {
        let blocks = self.src.frame_inputs(scene, frame, FrameAugment::None)?;
        Ok(blocks
            .into_iter()
            .zip(self.src.input_shapes())
            .map(|(block, shape)| Tensor::from_slice(&block).view(shape))
            .collect())
    }

    /// The first of [`Loader::model_inputs`] (FGSTP's only input, `[3, H, W]`).
    pub fn model_input(&self, scene: usize, frame: usize) -> Result<Tensor> {
        Ok(self.model_inputs(scene, frame)?.remove(0))
    }
}

impl Loader<Training> {
    /// Opens `cfg.root / cfg.train_split` and checks it (FGSTP's inputs).
    pub fn open(cfg: &DataConfig, sampling: TrainSampling) -> Result<Self> {
        Self::open_with(cfg, sampling, &InputSpec::default())
    }

    /// Opens `cfg.root / cfg.train_split` for a model that reads `spec`.
    pub fn open_with(cfg: &DataConfig, sampling: TrainSampling, spec: &InputSpec) -> Result<Self> {
        Self::new_with(
            Split::open(&cfg.root, &cfg.train_split, Masks::Required)?,
            cfg,
            sampling,
            spec,
        )
    }

    /// A loader over an already opened split (e.g. the validation split, for a loss).
    pub fn new(split: Split, cfg: &DataConfig, sampling: TrainSampling) -> Result<Self> {
        Self::new_with(split, cfg, sampling, &InputSpec::default())
    }

    /// As [`Loader::new`] for a model that reads `spec`.
    pub fn new_with(
        split: Split,
        cfg: &DataConfig,
        sampling: TrainSampling,
        spec: &InputSpec,
    ) -> Result<Self> {
        cfg.validate(Path::new("<data config>"))?;
        if sampling.batch_size == 0 {
            return Err(DataError::Config {
                path: PathBuf::from("train.batch_size"),
                reason: "a training batch needs at least 1 sample".into(),
            });
        }
        let samples = match (spec.train, cfg.train_protocol) {
            (TrainSamples::Triplets, Protocol::Full) => training_samples_every_frame(&split),
            _ => training_samples_for(&split, spec.train),
        };
        if samples.is_empty() {
            return Err(match spec.train {
                TrainSamples::Clips { len, .. } => DataError::NoTrainingClips {
                    path: split.dir,
                    len,
                },
                _ => DataError::NoTrainingSamples { path: split.dir },
            });
        }
        if cfg.drop_last && samples.len() < sampling.batch_size {
            return Err(DataError::Config {
                path: PathBuf::from("data.drop_last"),
                reason: format!(
                    "{} has {} training samples, fewer than one batch of {}: with drop_last no \
                     batch is left; lower train.batch_size or set drop_last = false",
                    split.dir.display(),
                    samples.len(),
                    sampling.batch_size
                ),
            });
        }
        Self::with_samples(
            split,
            samples,
            cfg,
            spec,
            Training {
                sampling,
                twin_of: None,
            },
            sampling.empty_masks,
        )
    }

    /// Batches per epoch (the last one may be smaller, as the reference's `DataLoader`, unless
    /// `drop_last`): [`Loader::batches_in`] from the epoch's start, one process.
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_in(0, Shard::SINGLE)
    }

    /// Steps (per-process batches) left in an epoch whose first `start_sample` samples of the
    /// global order were already trained, for any rank of `shard`'s world (see [`Shard`]).
    ///
    /// # Panics
    /// If `shard.world` is 0 or `shard.rank >= shard.world`.
    pub fn batches_in(&self, start_sample: usize, shard: Shard) -> usize {
        let global = self.global_batch(shard);
        let left = self.len().saturating_sub(start_sample);
        if self.src.cfg.drop_last {
            left / global
        } else {
            left.div_ceil(global)
        }
    }

    /// Real (not padding) samples of the epoch's global order that step `step_in_stream` of
    /// a stream from `start_sample` consumes, the same on every rank: `batch_size · world`,
    /// fewer for a last, partial global batch, 0 past the last step. After step k a run has
    /// trained `start_sample + Σ_{j ≤ k} global_batch_samples(start_sample, j, shard)`
    /// samples of the epoch.
    ///
    /// # Panics
    /// As [`Loader::batches_in`].
    pub fn global_batch_samples(
        &self,
        start_sample: usize,
        step_in_stream: usize,
        shard: Shard,
    ) -> usize {
        if step_in_stream >= self.batches_in(start_sample, shard) {
            return 0;
        }
        let global = self.global_batch(shard);
        let first = start_sample + step_in_stream * global;
        global.min(self.len() - first)
    }

    /// The sample indices (into [`Loader::samples`]) of this rank's batches of `epoch` from
    /// global sample `start_sample` on, padding included: what [`Loader::epoch_shard`] streams,
    /// without reading a file.
    ///
    /// # Panics
    /// As [`Loader::batches_in`].
    pub fn shard_indices(&self, epoch: u64, start_sample: usize, shard: Shard) -> Vec<Vec<usize>> {
        let global = self.global_batch(shard);
        let order = self.order(epoch);
        let start = start_sample.min(order.len());
        order[start..]
            .chunks(global)
            .take(self.batches_in(start_sample, shard))
            .map(|chunk| {
                // A partial last global batch: pad to a multiple of the world with the start
                // of the epoch's order (cycling if the order is shorter than the padding), as
                // PyTorch's DistributedSampler, so every rank gets ceil(T / N) samples.
                let padding = chunk.len().next_multiple_of(shard.world) - chunk.len();
                let padded = chunk
                    .iter()
                    .chain(order.iter().cycle().take(padding))
                    .copied();
                padded.skip(shard.rank).step_by(shard.world).collect()
            })
            .collect()
    }

    /// Samples in one global batch (`batch_size · world`), after checking `shard`.
    fn global_batch(&self, shard: Shard) -> usize {
        assert!(
            shard.world > 0 && shard.rank < shard.world,
            "rank {} of world {} is no process of a distributed run",
            shard.rank,
            shard.world
        );
        self.kind.sampling.batch_size * shard.world
    }

    /// The sample order of `epoch` (shuffled from the seed when `shuffle` is on). With
    /// [`Loader::with_twin_batches`] a twin's sample follows its source's sample.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        // A stream of its own, apart from the per-sample augmentation draws.
        let seed = self.kind.sampling.seed;
        let mut rng = rng_for(seed ^ 0x5348_5546_464c_4521, epoch, 0);
        if let Some(twin_of) = &self.kind.twin_of {
            let mut units: Vec<Vec<usize>> = Vec::new();
            let mut unit_of = vec![usize::MAX; self.len()];
            for (i, source) in twin_of.iter().enumerate() {
                if source.is_none() {
                    unit_of[i] = units.len();
                    units.push(vec![i]);
                }
            }
            for (i, source) in twin_of.iter().enumerate() {
                if let Some(source) = *source {
                    units[unit_of[source]].push(i);
                }
            }
            if self.src.cfg.shuffle {
                units.shuffle(&mut rng);
            }
            return units.concat();
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        if self.src.cfg.shuffle {
            order.shuffle(&mut rng);
        }
        order
    }

    /// Trains each leak-free twin of a generated dataset in the same step as the scene it is
    /// the twin of (`train.twin_batches`): in every epoch's order a twin's sample comes right
    /// after its source's sample of the same frames (each with its own random flip, rotation
    /// and colour). Which scene is whose twin comes from the generator's record,
    /// `ROOT/synth.toml`.
    pub fn with_twin_batches(mut self) -> Result<Self> {
        let split = &self.src.split;
        let record = split
            .dir
            .parent()
            .map(|root| root.join("synth.toml"))
            .unwrap_or_else(|| PathBuf::from("synth.toml"));
        if !record.is_file() {
            return Err(DataError::Config {
                path: record,
                reason: "train.twin_batches needs a dataset written by `fgstp synth` (its \
                         synth.toml says which scenes are twins): generate one, or set \
                         train.twin_batches = false"
                    .into(),
            });
        }
        let (_, synth) = crate::synth::read_record(&record)?;
        let index_of = |name: &str| name.strip_prefix("scene_")?.parse::<usize>().ok();
        let mut sample_at = std::collections::HashMap::new();
        for (i, sample) in self.src.samples.iter().enumerate() {
            sample_at.insert((split.scenes[sample.scene].name.as_str(), sample.frames), i);
        }
        let twin_of = self
            .src
            .samples
            .iter()
            .map(|sample| {
                let source = index_of(&split.scenes[sample.scene].name)
                    .and_then(|index| synth.twin_of(index))?;
                let name = format!("scene_{source:03}");
                sample_at.get(&(name.as_str(), sample.frames)).copied()
            })
            .collect();
        self.kind.twin_of = Some(twin_of);
        Ok(self)
    }

    /// How many samples [`Loader::with_twin_batches`] placed after their source's.
    pub fn twin_samples(&self) -> usize {
        self.kind
            .twin_of
            .as_ref()
            .map_or(0, |t| t.iter().flatten().count())
    }

    /// The reference (FGSTP) random choices for sample `index` in `epoch`.
    pub fn draw(&self, epoch: u64, index: usize) -> AugmentDraw {
        match self.src.draw(self.kind.sampling.seed, epoch, index) {
            SampleDraw::Reference(draw) => draw,
            SampleDraw::Albumentations(_) => AugmentDraw::none(),
        }
    }

    /// Starts streaming one epoch.
    pub fn epoch(&self, epoch: u64) -> Batches<Batch> {
        self.epoch_from(epoch, 0)
    }

    /// Streams `epoch` from its batch `first` on: the batches a resumed run has not trained
    /// on yet, identical to those of an uninterrupted epoch (nothing before `first` is decoded).
    /// One process: [`Loader::epoch_shard`] from sample `first · batch_size`.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Batches<Batch> {
        let start = first.saturating_mul(self.kind.sampling.batch_size);
        self.epoch_shard(epoch, start, Shard::SINGLE)
    }

    /// Streams rank `shard.rank`'s batches of `epoch` from sample `start_sample` of the epoch's
    /// global order on ([`Loader::order`]; see [`Shard`] for who gets which samples). Nothing
    /// before `start_sample` is decoded; a sample is augmented the same on every rank (its
    /// draw comes from (seed, epoch, sample index)).
    ///
    /// # Panics
    /// As [`Loader::batches_in`].
    pub fn epoch_shard(&self, epoch: u64, start_sample: usize, shard: Shard) -> Batches<Batch> {
        let TrainSampling { seed, .. } = self.kind.sampling;
        let batches: Vec<Vec<(usize, SampleRef)>> = self
            .shard_indices(epoch, start_sample, shard)
            .into_iter()
            .map(|b| {
                b.into_iter()
                    .map(|i| (i, self.src.samples[i].clone()))
                    .collect()
            })
            .collect();
        let src = Arc::clone(&self.src);
        let build =
            move |batch: &[(usize, SampleRef)]| build_training_batch(&src, batch, seed, epoch);
        spawn_producer(
            batches,
            self.src.cfg.prefetch,
            Arc::clone(&self.pool),
            Arc::new(build),
        )
    }
}

impl Loader<Evaluation> {
    /// Opens `cfg.root / split` (masks required: evaluation; FGSTP's inputs).
    pub fn open(cfg: &DataConfig, split: &str) -> Result<Self> {
        Self::open_with(cfg, split, &InputSpec::default())
    }

    /// Opens `cfg.root / split` for a model that reads `spec`.
    pub fn open_with(cfg: &DataConfig, split: &str, spec: &InputSpec) -> Result<Self> {
        Self::new_with(Split::open(&cfg.root, split, Masks::Required)?, cfg, spec)
    }

    /// A loader over an already opened split (open it with [`Masks::Optional`] for inference).
    pub fn new(split: Split, cfg: &DataConfig) -> Result<Self> {
        Self::new_with(split, cfg, &InputSpec::default())
    }

    /// As [`Loader::new`] for a model that reads `spec`.
    pub fn new_with(split: Split, cfg: &DataConfig, spec: &InputSpec) -> Result<Self> {
        Self::new_filtered(split, cfg, spec, |_| true)
    }

    /// A loader over the samples of `split` that `keep` accepts, e.g. those of frames an
    /// interrupted inference has not written yet (`fgstp infer` on a video that breaks).
    pub fn new_filtered(
        split: Split,
        cfg: &DataConfig,
        spec: &InputSpec,
        keep: impl FnMut(&SampleRef) -> bool,
    ) -> Result<Self> {
        cfg.validate(Path::new("<data config>"))?;
        let mut samples = evaluation_samples_for(&split, cfg.protocol, spec.reference_frames);
        samples.retain(keep);
        Self::with_samples(split, samples, cfg, spec, Evaluation, EmptyMasks::Reference)
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
            .cloned()
            .enumerate()
            .collect::<Vec<_>>()
            .chunks(self.src.cfg.eval_batch_size)
            .map(<[_]>::to_vec)
            .collect();
        let src = Arc::clone(&self.src);
        let build = move |batch: &[(usize, SampleRef)]| -> Result<EvalBatch> {
            // One job per (sample, slot).
            let jobs: Vec<(usize, usize)> = (0..batch.len())
                .flat_map(|b| (0..3).map(move |slot| (b, slot)))
                .collect();
            let blocks: Vec<Result<Vec<Vec<f32>>>> = jobs
                .par_iter()
                .map(|&(b, slot)| {
                    let r = &batch[b].1;
                    src.frame_inputs(r.scene, r.frames[slot], FrameAugment::None)
                })
                .collect();
            let blocks = blocks.into_iter().collect::<Result<Vec<_>>>()?;
            let shapes = src.input_shapes();
            let frames = (0..3)
                .flat_map(|slot| {
                    let per_sample: Vec<Vec<Vec<f32>>> = (0..batch.len())
                        .map(|b| blocks[3 * b + slot].clone())
                        .collect();
                    stack_inputs(per_sample, &shapes)
                })
                .collect();
            let masks: Vec<Result<Option<GrayImage>>> = batch
                .par_iter()
                .map(|(_, r)| {
                    let frame = &src.split.scenes[r.scene].frames[r.frames[0]];
                    frame.mask.as_deref().map(load_mask).transpose()
                })
                .collect();
            Ok(EvalBatch {
                frames,
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

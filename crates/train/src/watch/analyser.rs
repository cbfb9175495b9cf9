//! The model side of `fgstp watch`: the cameras' due triplets through one FGSTP forward per
//! round, each frame encoded once (the feature cache, `eval.feature_cache`), and on a GPU with
//! `eval.cuda_graphs` (`--cuda-graphs`) the encoder and the decoder replayed as CUDA graphs.
//!
//! A captured graph replays one batch shape, while the cameras due in a round vary. With
//! graphs a round is therefore padded with rows of zeros: its decoding to the number of
//! cameras, its encoding to one, two or three times that (a camera brings at most three new
//! frames to a round). Those four shapes are run and captured before the first frame is read.
//! On a GPU at fgstp's sizes a forward costs its kernel launches more than its rows
//! (docs/src/performance.md), which is what makes the padding cheap and the graphs worth it.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use fgstp_model::models::feature_cache::predict_samples;
use fgstp_model::nn::backbone::Features;
use fgstp_model::runtime::cuda_graph::GraphReplays;
use fgstp_model::runtime::transfer::upload;
use fgstp_model::Fgstp;
use fgstp_model::Model;
use tch::{Device, Kind, Tensor};

use crate::evaluate::graph_replays;
use crate::trained_run::LoadedModel;

/// One camera's due triplet: frames `frame`, `frame + 1`, `frame + 2` as model inputs
/// (`[3, H, W]` each, flattened).
pub(super) struct Due<'a> {
    pub camera: usize,
    pub frame: u64,
    pub inputs: &'a [Vec<f32>; 3],
}

/// Batched FGSTP over the cameras of one watch run.
pub(super) struct Analyser<'a> {
    model: &'a LoadedModel,
    fgstp: &'a Fgstp,
    cameras: usize,
    graphs: Option<GraphReplays>,
    /// Encoder features of each camera's latest frames, by frame number.
    caches: Vec<BTreeMap<u64, Features>>,
}

/// The batch shapes captured: encoding at one, two and three times the cameras, decoding at
/// the cameras.
const CAPTURED_SHAPES: usize = 4;

impl<'a> Analyser<'a> {
    /// An analyser for `cameras` cameras, warmed up: libtorch's first calls (allocations,
    /// kernel choices, graph captures) take several times a steady one, and a live camera's
    /// first triplets would be dropped while they ran.
    pub fn new(model: &'a LoadedModel, cameras: usize) -> Result<Self> {
        let analyser = Self::with_graphs(model, cameras, graphs_for(model)?)?;
        analyser.warm_up()?;
        Ok(analyser)
    }

    fn with_graphs(
        model: &'a LoadedModel,
        cameras: usize,
        graphs: Option<GraphReplays>,
    ) -> Result<Self> {
        let Model::Fgstp(fgstp) = &model.model else {
            bail!("fgstp watch runs FGSTP models only");
        };
        let cameras = cameras.max(1);
        Ok(Self {
            model,
            fgstp,
            cameras,
            graphs,
            caches: (0..cameras).map(|_| BTreeMap::new()).collect(),
        })
    }

    fn warm_up(&self) -> Result<()> {
        let (h, w) = self.model.cfg.data.train_size.hw();
        let n = self.cameras as i64;
        let device = self.model.device;
        tch::no_grad(|| {
            if self.graphs.is_some() {
                // Each shape twice: run once, then captured (see `GraphReplays::run`).
                for _ in 0..2 {
                    for rows in [n, 2 * n, 3 * n] {
                        let frames = Tensor::zeros([rows, 3, h, w], (Kind::Float, device));
                        let features = self.encode(&frames)?;
                        if rows == n {
                            let _fused = self.decode(&features, &features, &features)?;
                        }
                    }
                }
                return Ok(());
            }
            let zeros = || Tensor::zeros([3, h, w], (Kind::Float, Device::Cpu));
            let samples: Vec<Vec<Vec<Tensor>>> = (0..self.cameras)
                .map(|_| (0..3).map(|_| vec![zeros()]).collect())
                .collect();
            for _ in 0..2 {
                let _probabilities = predict_samples(&self.model.model, device, &samples)?;
            }
            Ok(())
        })
    }

    /// The logits `[B, 1, S, S]` (float) of a round: one triplet per due camera. With the
    /// feature cache each frame is encoded once — a camera analysed frame by frame encodes one
    /// new frame per triplet — and its features are kept until no later triplet needs them, as
    /// `fgstp infer` does (same numbers); without it the whole model runs on each triplet's
    /// three frames.
    pub fn logits(&mut self, round: &[Due]) -> Result<Tensor> {
        let (h, w) = self.model.cfg.data.train_size.hw();
        let input = |x: &Vec<f32>| Tensor::from_slice(x).view([3, h, w]);
        if !self.model.cfg.eval.feature_cache {
            let samples: Vec<Vec<Vec<Tensor>>> = round
                .iter()
                .map(|d| d.inputs.iter().map(|x| vec![input(x)]).collect())
                .collect();
            let logits = predict_samples(&self.model.model, self.model.device, &samples)?;
            return Ok(logits.to_kind(Kind::Float));
        }
        // The frames no camera has encoded yet, encoded in one batch.
        let mut missing: Vec<(usize, u64, &Vec<f32>)> = Vec::new();
        for d in round {
            for (j, x) in d.inputs.iter().enumerate() {
                let frame = d.frame + j as u64;
                if !self.caches[d.camera].contains_key(&frame) {
                    missing.push((d.camera, frame, x));
                }
            }
        }
        if !missing.is_empty() {
            let stacked: Vec<Tensor> = missing.iter().map(|(_, _, x)| input(x)).collect();
            let stacked = upload(&Tensor::stack(&stacked, 0), self.model.device)?;
            let features = self.encode(&stacked)?;
            for (row, (camera, frame, _)) in missing.iter().enumerate() {
                let row = row as i64;
                self.caches[*camera]
                    .insert(*frame, features.each_ref().map(|f| f.narrow(0, row, 1)));
            }
        }
        // Slot j of every triplet, batched.
        let slot = |j: u64| -> Features {
            std::array::from_fn(|level| {
                let parts: Vec<&Tensor> = round
                    .iter()
                    .map(|d| &self.caches[d.camera][&(d.frame + j)][level])
                    .collect();
                Tensor::cat(&parts, 0)
            })
        };
        let (a, b, c) = (slot(0), slot(1), slot(2));
        let fused = self.decode(&a, &b, &c)?;
        // A camera's next triplet starts after this one's first frame.
        for d in round {
            self.caches[d.camera].retain(|&frame, _| frame > d.frame);
        }
        Ok(fused)
    }

    /// The encoder's features of `frames` `[M, 3, H, W]` on the model's device.
    fn encode(&self, frames: &Tensor) -> Result<Features> {
        let (device, precision) = (self.model.device, self.model.cfg.model.precision);
        let run = |x: &Tensor| -> Result<Features> {
            precision.run(device, || self.fgstp.encode(x, false))?
        };
        let Some(graphs) = &self.graphs else {
            return run(frames);
        };
        let rows = frames.size()[0];
        let padded_rows = (rows as usize).next_multiple_of(self.cameras);
        let padded = pad_rows(frames, padded_rows as i64);
        let features: Features = graphs
            .run("encode", &[&padded], |x| Ok(Vec::from(run(x[0])?)))?
            .try_into()
            .map_err(|_| anyhow!("the encoder gave other than 3 levels"))?;
        Ok(features.map(|f| f.narrow(0, 0, rows)))
    }

    /// The fused logits (float) of triplets whose frames' features are `a`, `b`, `c`.
    fn decode(&self, a: &Features, b: &Features, c: &Features) -> Result<Tensor> {
        let (device, precision) = (self.model.device, self.model.cfg.model.precision);
        let run = |a: &Features, b: &Features, c: &Features| -> Result<Tensor> {
            let output =
                precision.run(device, || self.fgstp.forward_features(a, b, c, false))??;
            Ok(output.fused.to_kind(Kind::Float))
        };
        let Some(graphs) = &self.graphs else {
            return run(a, b, c);
        };
        let rows = a[0].size()[0];
        let padded: Vec<Tensor> = [a, b, c]
            .iter()
            .flat_map(|f| f.iter())
            .map(|t| pad_rows(t, self.cameras as i64))
            .collect();
        let inputs: Vec<&Tensor> = padded.iter().collect();
        let fused = graphs
            .run("decode", &inputs, |x| {
                let slot =
                    |k: usize| -> Features { [0, 1, 2].map(|l| x[3 * k + l].shallow_clone()) };
                Ok(vec![run(&slot(0), &slot(1), &slot(2))?])
            })?
            .remove(0);
        Ok(fused.narrow(0, 0, rows))
    }
}

/// CUDA graphs when `eval.cuda_graphs` asks for them and they can run; otherwise none, with a
/// note saying why.
fn graphs_for(model: &LoadedModel) -> Result<Option<GraphReplays>> {
    let cfg = &model.cfg;
    if cfg.eval.cuda_graphs && model.device.is_cuda() && !cfg.eval.feature_cache {
        eprintln!("note: fgstp watch replays CUDA graphs with the feature cache only (eval.feature_cache = true); watching without graphs");
        return Ok(None);
    }
    graph_replays(cfg, model.device, CAPTURED_SHAPES)
}

/// `t` with rows of zeros appended up to `rows` rows.
fn pad_rows(t: &Tensor, rows: i64) -> Tensor {
    let mut shape = t.size();
    if shape[0] >= rows {
        return t.shallow_clone();
    }
    shape[0] = rows - shape[0];
    Tensor::cat(
        &[
            t.shallow_clone(),
            Tensor::zeros(shape.as_slice(), (t.kind(), t.device())),
        ],
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_config::RunConfig;

    fn tiny_model() -> LoadedModel {
        let configs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let cfg = RunConfig::load(
            &configs.join("quickstart.toml"),
            &["data.train_size=64".into(), "train.device=\"cpu\"".into()],
        )
        .unwrap();
        tch::manual_seed(3);
        LoadedModel::with_initial_weights(cfg).unwrap()
    }

    fn frames(seed: i64, n: usize) -> Vec<Vec<f32>> {
        tch::manual_seed(seed);
        (0..n)
            .map(|_| {
                Vec::<f32>::try_from(Tensor::randn([3 * 64 * 64], (Kind::Float, Device::Cpu)))
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn padded_batches_replayed_as_graphs_give_the_logits_of_plain_ones() {
        let model = tiny_model();
        let cameras = 3;
        let mut plain = Analyser::with_graphs(&model, cameras, None).unwrap();
        // Graph bookkeeping without a GPU: captures, copies in and out, replays.
        // A fifth shape, if one were met, would be kept (and counted) beside the four.
        let emulated = GraphReplays::emulated(Device::Cpu, CAPTURED_SHAPES + 1);
        let mut graphed = Analyser::with_graphs(&model, cameras, Some(emulated)).unwrap();
        graphed.warm_up().unwrap();
        let captured = |a: &Analyser| a.graphs.as_ref().unwrap().captured();
        assert_eq!(captured(&graphed), CAPTURED_SHAPES);
        let video: Vec<Vec<Vec<f32>>> = (0..cameras).map(|k| frames(10 + k as i64, 6)).collect();
        let triplet =
            |k: usize, t: usize| -> [Vec<f32>; 3] { [0, 1, 2].map(|j| video[k][t + j].clone()) };
        // Rounds of every camera and of some: 9, then 1 or 2 new frames, and a camera that
        // skipped a triplet (two new frames).
        let rounds: [&[(usize, usize)]; 4] = [
            &[(0, 0), (1, 0), (2, 0)],
            &[(0, 1), (2, 1)],
            &[(1, 2)],
            &[(0, 2), (1, 3), (2, 3)],
        ];
        for round in rounds {
            let inputs: Vec<(usize, usize, [Vec<f32>; 3])> =
                round.iter().map(|&(k, t)| (k, t, triplet(k, t))).collect();
            let due: Vec<Due> = inputs
                .iter()
                .map(|(k, t, x)| Due {
                    camera: *k,
                    frame: *t as u64,
                    inputs: x,
                })
                .collect();
            let a = tch::no_grad(|| plain.logits(&due)).unwrap();
            let b = tch::no_grad(|| graphed.logits(&due)).unwrap();
            assert_eq!(a.size(), b.size());
            assert_eq!(a.size()[0], round.len() as i64);
            let diff = (&a - &b).abs().max().double_value(&[]);
            assert!(diff <= 1e-5, "round {round:?}: logits differ by {diff}");
        }
        // No shape beyond the four captured ones was met.
        let graphs = graphed.graphs.as_ref().unwrap();
        assert_eq!(
            (graphs.shapes(), graphs.captured()),
            (CAPTURED_SHAPES, CAPTURED_SHAPES)
        );
    }
}

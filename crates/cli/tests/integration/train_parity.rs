//! The loss and optimiser against values produced by the reference's own functions
//! (`scripts/fixtures/make_train_fixture.py`, which runs the reference's structure_loss,
//! clip_gradient and adjust_lr, and torch.optim.Adam).

use fgstp_train::loss::structure_loss;
use fgstp_train::run_config::BceWeighting;
use fgstp_train::trainer::optim::{step_lr, Adam, AdamConfig};
use std::collections::HashMap;
use tch::{nn::VarStore, Device, Kind, Tensor};

fn golden() -> HashMap<String, Tensor> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/train_golden.safetensors"
    );
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

#[test]
fn structure_loss_and_its_gradient_match_the_reference() {
    let g = golden();
    let pred = g["loss.pred"].set_requires_grad(true);
    let loss = structure_loss(&pred, &g["loss.mask"], BceWeighting::Reference.into());
    let expected = g["loss.value"].double_value(&[0]);
    let got = loss.double_value(&[]);
    assert!(
        (got - expected).abs() <= 1e-6,
        "loss {got} vs reference {expected}"
    );
    loss.backward();
    let diff = max_abs_diff(&pred.grad(), &g["loss.grad"]);
    assert!(
        diff <= 1e-7,
        "gradient differs from the reference by {diff}"
    );
}

#[test]
fn edge_weighted_bce_differs_from_the_reference_quirk() {
    let g = golden();
    let reference = structure_loss(
        &g["loss.pred"],
        &g["loss.mask"],
        BceWeighting::Reference.into(),
    );
    let weighted = structure_loss(
        &g["loss.pred"],
        &g["loss.mask"],
        BceWeighting::EdgeWeighted.into(),
    );
    let (r, w) = (reference.double_value(&[]), weighted.double_value(&[]));
    assert!(
        (r - w).abs() > 1e-3,
        "reference {r} and edge-weighted {w} should differ"
    );
}

#[test]
fn adam_with_clipping_and_step_lr_matches_torch_bit_for_bit() {
    let g = golden();
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let w = root.var_copy("w", &g["adam.w0"]);
    let b = root.var_copy("b", &g["adam.b0"]);
    let mut adam = Adam::new(
        &vs,
        AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        },
    );
    for (step, epoch) in [1usize, 1, 2].into_iter().enumerate() {
        let lr = step_lr(1e-2, epoch, 0.1, 2);
        assert_eq!(
            lr,
            g[&format!("adam.lr{step}")].double_value(&[0]),
            "lr at step {step}"
        );
        adam.set_lr(lr);
        adam.zero_grad().unwrap();
        // d/dw Σ(w·gw) = gw exactly: this hands the optimiser the reference's gradients.
        let loss = (&w * &g[&format!("adam.grad_w{step}")]).sum(Kind::Float)
            + (&b * &g[&format!("adam.grad_b{step}")]).sum(Kind::Float);
        loss.backward();
        adam.clip_grad_value(0.5).unwrap();
        adam.step().unwrap();
        for (name, var) in [("w", &w), ("b", &b)] {
            let diff = max_abs_diff(var, &g[&format!("adam.{name}{}", step + 1)]);
            assert_eq!(
                diff,
                0.0,
                "{name} after step {} differs by {diff}",
                step + 1
            );
        }
    }
}

#[test]
fn adam_state_round_trips_so_a_resumed_run_continues_identically() {
    let g = golden();
    // Three steps; with `restart = Some(restore)` a new optimiser takes over before the third,
    // as after a crash, with or without the saved state.
    let run = |restart: Option<bool>| {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &g["adam.w0"]);
        let cfg = AdamConfig {
            lr: 1e-2,
            ..AdamConfig::default()
        };
        let mut adam = Adam::new(&vs, cfg);
        for step in 0..3 {
            if let (2, Some(restore)) = (step, restart) {
                let saved: HashMap<String, Tensor> = adam
                    .state_tensors()
                    .into_iter()
                    .map(|(k, t)| (k, t.copy()))
                    .collect();
                adam = Adam::new(&vs, cfg);
                if restore {
                    adam.load_state(|k| saved.get(k).map(Tensor::shallow_clone))
                        .unwrap();
                }
            }
            adam.zero_grad().unwrap();
            (&w * &g[&format!("adam.grad_w{step}")])
                .sum(Kind::Float)
                .backward();
            adam.step().unwrap();
        }
        w.copy()
    };
    let straight = run(None);
    assert_eq!(max_abs_diff(&run(Some(true)), &straight), 0.0);
    assert!(
        max_abs_diff(&run(Some(false)), &straight) > 1e-4,
        "state had no effect"
    );
}

#[test]
fn missing_optimiser_state_is_an_error_naming_the_entry() {
    let vs = VarStore::new(Device::Cpu);
    let _w = vs.root().zeros("w", &[2, 3]);
    let mut adam = Adam::new(&vs, AdamConfig::default());
    let err = adam.load_state(|_| None).unwrap_err().to_string();
    assert!(err.contains("optimizer.exp_avg.w"), "{err}");
}

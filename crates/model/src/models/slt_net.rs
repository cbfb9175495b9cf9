//! SLT-Net's short-term model (Cheng et al., CVPR 2022, "Implicit Motion Handling for Video
//! Camouflaged Object Detection"; the reference is `lib/short_term_model.py` of
//! XuelianCheng/SLT-Net): per-frame encoder features (PVTv2 + RFBs), the non-local correlation
//! pyramid of frame t with t+1 and with t+2, the NCD + reverse-stage decoder on each pair's
//! correlation, and a 2 → 32 → 32 → 1 fusion of the two pairs' finest maps.
//!
//! It is FGSTP without FSP and without adding frame t's own features to the correlation: the
//! decoder reads the correlation maps directly. So it is [`Fgstp`](crate::Fgstp) built with
//! `kind = "slt-net"` (one implementation for both); its VarStore names are SLT-Net's
//! state-dict keys: `backbone.feat_net.{pvtv2_en,rfb2_1,rfb3_1,rfb4_1}.*`,
//! `backbone.decoder.{NCD,RS5,RS4,RS3}.*`, `nlnet.{nl_layer1..3,conv1..3}.*`, `fusion_conv.{0,1,2}.*`.
//!
//! Input: frames t, t+1, t+2, each [B, 3, H, W], ImageNet-normalised RGB (the reference's
//! `Resize((S, S))`, `ToTensor`, `Normalize`; S = 352 in its scripts), H and W multiples of 32
//! and at least 256 (the 1/32 correlation pools 8×8). Its test script (`test_video.py`) takes the
//! fused map, upsamples it to the frame's size (bilinear), applies a sigmoid and min-max
//! normalises it per frame; those 8-bit maps are the long-term model's priors.

/// The encoder's name inside `backbone` in SLT-Net's checkpoints (FGSTP's: `encoder`).
pub const ENCODER_NAME: &str = "feat_net";
/// The correlation pyramid's name in SLT-Net's checkpoints (FGSTP's: `ctc`).
pub const CORRELATION_NAME: &str = "nlnet";

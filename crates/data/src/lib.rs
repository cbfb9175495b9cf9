//! Gas-leak video datasets streamed as frame triplets, augmentations and synthetic videos.

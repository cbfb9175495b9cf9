//! How the process keeps the memory libtorch frees.

/// Makes glibc keep freed memory in the process instead of handing it back to the kernel.
///
/// libtorch allocates every tensor with `posix_memalign`; glibc serves large blocks with `mmap`
/// and unmaps them on free, and shrinks its heap when its top is free, so each forward pass
/// touches fresh pages and the kernel zeroes them (page faults). At full size that is a large
/// share of the time: ZoomNeXt-video at b5, 5 frames at 3 scales, faulted 2.5 million pages and
/// spent 9 s of system time per 25 s forward; with this, 0.1 million and under 1 s, and the
/// forward takes 19–22 s. A training step (b5, 256 px, batch 2) went from 10.1 to 7.8 s with
/// the same peak memory (4.88 GB). The price is that memory freed after a peak is not returned:
/// the resident size stays at the high-water mark, a little above it where the heap fragments
/// (ZoomNeXt-video: 2.62 GB instead of 2.18 GB).
///
/// Call once at the start of a program (the `fgstp` binary and the benchmark examples do),
/// before the allocations it should affect. Only glibc on Linux has these knobs; elsewhere this
/// does nothing, and so does setting `FGSTP_RETURN_FREED_MEMORY=1` (for a long-lived process
/// that should shrink after a peak, or to measure the difference).
pub fn keep_freed_memory() {
    if std::env::var_os("FGSTP_RETURN_FREED_MEMORY").is_some_and(|v| v == "1") {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        // No block of its own for any size (all from the heap; glibc still falls back to mmap
        // when the heap cannot grow), and never shrink the heap.
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

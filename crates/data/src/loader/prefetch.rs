//! The background prefetcher: one producer thread per pass builds batch after batch on a rayon
//! pool and queues up to `prefetch` of them; [`Batches`] hands them out and stops the producer
//! when dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::error::{DataError, Result};
use crate::sample::SampleRef;

/// Iterator over the batches of one pass; see the [loader docs](super).
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

pub(super) type BuildFn<T> = dyn Fn(&[(usize, SampleRef)]) -> Result<T> + Send + Sync;

pub(super) fn spawn_producer<T: Send + 'static>(
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

pub(super) fn build_pool(threads: usize) -> Result<Arc<rayon::ThreadPool>> {
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

//! In-memory implementations of the ports, for tests and benchmarks: never a dependency of a
//! function, only a dev-dependency.
//!
//! - [`MemoryDirectory`] stands in for one Identity Store ([`kiro::ports::Directory`]).
//! - [`MemoryStore`] stands in for the table behind [`kiro::aws::DynamoStore`]: the same
//!   conditions, orders and page tokens, what a read gives back of a write, and a count of the
//!   requests DynamoStore would send; one file per port under `store/`.
//! - [`MemorySink`] records what is published ([`kiro::ports::EventSink`]).
//!
//! Each can be told to fail, and the directory and the store to interleave concurrent callers
//! (`set_jitter`). The port contract suite (`tests/tests/port_contract.rs`) holds the store to
//! what DynamoStore does.

mod directory;
pub mod fixtures;
mod objects;
mod sink;
mod store;

use std::sync::atomic::AtomicU64;

pub use directory::{MemoryDirectory, MemoryInstances};
pub use objects::MemoryObjects;
pub use sink::MemorySink;
pub use store::MemoryStore;

/// Yields 1 to 4 times, as the jitter sequence says (not at all when it is 0).
pub(crate) async fn pause(jitter: &AtomicU64) {
    use std::sync::atomic::Ordering::Relaxed;
    let step = |x: u64| x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let Ok(previous) = jitter.fetch_update(Relaxed, Relaxed, |x| (x != 0).then(|| step(x).max(1))) else {
        return;
    };
    for _ in 0..=(step(previous) >> 62) {
        tokio::task::yield_now().await;
    }
}

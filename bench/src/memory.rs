//! How much memory a piece of work takes in this process, two ways:
//!
//! - the kernel's: `VmHWM` (peak resident set) reset just before the work (`5` to
//!   `/proc/self/clear_refs`) and read after it. It counts pages, and only pages the allocator
//!   had to take anew: memory freed earlier and kept by the allocator is reused unseen, which
//!   [`trim`] reduces by handing free pages back first;
//! - the heap's: [`Counting`], a global allocator that, while a [`HeapWindow`] is open, keeps the
//!   bytes allocated minus the bytes freed and their peak. Exact in bytes asked for (not pages,
//!   not the allocator's own overhead), and blind to reuse. The figures bench installs it; where
//!   it is not installed a window does not open.
//!
//! Both count everything the process allocates meanwhile: the in-memory fakes' growth as much as
//! the work's own state. What is left allocated when the window closes is what the work handed
//! over (to the fakes, here), so `peak - retained` bounds the work's own transient state from
//! below and `peak` from above.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};

/// Resets the process's peak resident set (`VmHWM`) to the current one: `5` to
/// `/proc/self/clear_refs` (Linux ≥ 4.0). False where that is refused.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field of `/proc/self/status` (`"VmHWM:"`, `"VmRSS:"`).
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix(field))?.split_whitespace().next()?.parse().ok()
}

/// Hands the allocator's free pages back to the kernel (glibc's `malloc_trim`), so that a
/// `VmHWM` measured next sees the pages a piece of work touches rather than reused ones. A
/// no-op elsewhere.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> std::ffi::c_int;
        }
        // SAFETY: glibc's malloc_trim takes any pad and only releases memory no one holds.
        unsafe {
            malloc_trim(0);
        }
    }
}

/// The peak resident set while a piece of work ran: `VmRSS` just before it (after [`trim`]) and
/// `VmHWM` after it, in KiB; `None` without `/proc/self/clear_refs`.
#[derive(Debug, Clone, Copy)]
pub struct Resident {
    pub start_kib: u64,
    pub peak_kib: u64,
}

impl Resident {
    pub fn growth_kib(&self) -> u64 {
        self.peak_kib.saturating_sub(self.start_kib)
    }
}

/// Trims, resets `VmHWM`, and answers the resident set to compare [`peak_since`] with.
pub fn start_resident() -> Option<u64> {
    trim();
    if !reset_peak() {
        return None;
    }
    status_kib("VmHWM:")
}

pub fn peak_since(start_kib: Option<u64>) -> Option<Resident> {
    Some(Resident { start_kib: start_kib?, peak_kib: status_kib("VmHWM:")? })
}

static OPEN: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting while a [`HeapWindow`] is open (one relaxed load per call
/// otherwise). Install it with `#[global_allocator]`.
pub struct Counting;

fn note(delta: i64) {
    if OPEN.load(Relaxed) {
        let live = LIVE.fetch_add(delta, Relaxed) + delta;
        PEAK.fetch_max(live, Relaxed);
    }
}

// SAFETY: every call is System's, with the caller's arguments; the counting touches only atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Heap bytes allocated minus freed since a [`HeapWindow`] opened: their peak, and what was still
/// held when it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heap {
    pub peak: i64,
    pub retained: i64,
}

/// Counts the heap while it is open; one at a time (they share the counters).
#[derive(Debug)]
pub struct HeapWindow(());

impl HeapWindow {
    /// Opens a window; `None` when [`Counting`] is not the global allocator.
    pub fn open() -> Option<HeapWindow> {
        LIVE.store(0, Relaxed);
        PEAK.store(0, Relaxed);
        OPEN.store(true, Relaxed);
        let probe = std::hint::black_box(Box::new([0u8; 64]));
        let counting = LIVE.load(Relaxed) >= 64;
        drop(probe);
        if !counting {
            OPEN.store(false, Relaxed);
            return None;
        }
        PEAK.store(LIVE.load(Relaxed), Relaxed);
        Some(HeapWindow(()))
    }

    pub fn close(self) -> Heap {
        OPEN.store(false, Relaxed);
        Heap { peak: PEAK.load(Relaxed), retained: LIVE.load(Relaxed) }
    }
}

impl Drop for HeapWindow {
    fn drop(&mut self) {
        OPEN.store(false, Relaxed);
    }
}

/// glibc's chunk for a `malloc(n)`: 8 bytes of header, 16-byte aligned, 32 at least.
pub fn chunk(n: usize) -> usize {
    ((n + 8 + 15) & !15).max(32)
}

/// Bytes as MiB with one decimal, e.g. `12.3 MiB`.
pub fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_counting_allocator_no_window_opens() {
        // The test harness keeps the system allocator.
        assert!(HeapWindow::open().is_none());
        assert!(!OPEN.load(Relaxed));
    }
}

//! The per-CPU cache of freed thread stacks (Linux `NR_CACHED_STACKS`):
//! each slot holds a stack's base and, in its low bits, how much of it is
//! still clean, and whether some pages are not backed (a dynamic stack).

use core::sync::atomic::Ordering;

use super::unmap_stack;
use crate::arch::percpu::this_cpu;
use crate::layout::{PAGE_SIZE, THREAD_STACK_SIZES};
use crate::stacks::dynamic;

crate::define_per_cpu! {
    /// Freed thread stacks kept for reuse on this CPU, per size of
    /// `THREAD_STACK_SIZES` (0 = empty slot): the base, and in the low
    /// bits (`CLEAN_MASK`) how many `CLEAN_UNIT`s above it are still zero.
    pub static STACK_CACHE: [[core::sync::atomic::AtomicU64; crate::layout::NR_CACHED_STACKS]; crate::layout::THREAD_STACK_SIZES.len()] = [const { [const { core::sync::atomic::AtomicU64::new(0) }; crate::layout::NR_CACHED_STACKS] }; crate::layout::THREAD_STACK_SIZES.len()];
}

/// A cached stack's clean part, counted in 64-byte units in the low bits
/// of its slot (a base is page-aligned): up to 128 KiB. Bit 11
/// (`PARTIAL`): some of its pages are not backed (a dynamic stack's).
pub(super) const CLEAN_UNIT: u64 = 64;
pub(super) const CLEAN_MASK: u64 = PAGE_SIZE / 2 - 1;
pub(super) const PARTIAL: u64 = PAGE_SIZE / 2;
const _: () = assert!(CLEAN_MASK * CLEAN_UNIT >= THREAD_STACK_SIZES[THREAD_STACK_SIZES.len() - 1]);

/// A cached stack of `class` for which `fits` holds (taken out of the slot).
pub(super) fn take_cached(class: usize, fits: impl Fn(u64) -> bool) -> Option<u64> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        // Only this CPU takes from or puts into its cache, with interrupts off.
        crate::stacks::thread::cache::STACK_CACHE.this()[class].iter().find_map(|slot| {
            let b = slot.load(Ordering::Relaxed);
            (b != 0 && fits(b)).then(|| slot.swap(0, Ordering::Relaxed))
        })
    })
}

/// What a new stack takes from the cache: a dynamic one only a cached
/// dynamic one (a whole stack would stay whole), a fixed one a whole one
/// first (a dynamic one must be filled in).
pub(super) fn take_cached_for(class: usize, grows: bool) -> Option<u64> {
    if grows {
        take_cached(class, |slot| slot & PARTIAL != 0)
    } else {
        take_cached(class, |slot| slot & PARTIAL == 0).or_else(|| take_cached(class, |_| true))
    }
}

pub(super) fn put_cached(class: usize, base: u64) -> bool {
    x86_64::instructions::interrupts::without_interrupts(|| {
        crate::stacks::thread::cache::STACK_CACHE.this()[class]
            .iter()
            .any(|slot| slot.compare_exchange(0, base, Ordering::Relaxed, Ordering::Relaxed).is_ok())
    })
}

/// Unmap every stack in this CPU's cache (so vmap usage can be compared).
pub fn drain_cache() {
    for class in 0..THREAD_STACK_SIZES.len() {
        while let Some(slot) = take_cached(class, |_| true) {
            unmap_stack(slot);
        }
    }
}

/// Stacks in this CPU's cache.
pub fn cached() -> usize {
    cached_on(this_cpu().id())
}

/// Stacks in `cpu`'s cache (they hold their frames until reused).
pub fn cached_on(cpu: usize) -> usize {
    cached_pages_on(cpu).0
}

/// Stacks in `cpu`'s cache and the pages they hold (a cached dynamic
/// stack holds only its backed ones).
pub fn cached_pages_on(cpu: usize) -> (usize, u64) {
    let cache = &crate::stacks::thread::cache::STACK_CACHE.of(cpu);
    let mut n = (0, 0);
    for (class, slots) in cache.iter().enumerate() {
        let size = THREAD_STACK_SIZES[class];
        for slot in slots.iter().map(|s| s.load(Ordering::Relaxed)).filter(|&s| s != 0) {
            let base = slot & !(CLEAN_MASK | PARTIAL);
            n.0 += 1;
            n.1 += if slot & PARTIAL != 0 { dynamic::resident_pages(base, base + size) } else { size / PAGE_SIZE };
        }
    }
    n
}

//! The vmap area allocator (Linux's `__vmalloc_node_range` with guard pages):
//! reserve a guarded virtual range, back it with fresh zeroed frames mapped
//! read-write and non-executable, and tear it all down again.
//!
//! Every kernel stack in the vmap area is built on this: the guard pages
//! below a stack are what turn an overflow into a fault instead of silent
//! corruption.

use crate::sync::IrqMutex as Mutex;

use super::paging;
use super::vmap::{VmRange, VmapError, VmapSpace, VmapStats};
use crate::layout::{PAGE_SIZE, VMAP_BASE, VMAP_SIZE};

static SPACE: Mutex<VmapSpace> = Mutex::new(VmapSpace::new(VMAP_BASE, VMAP_SIZE));

/// Guards around an allocation, in bytes (multiples of PAGE_SIZE).
#[derive(Clone, Copy, Debug)]
pub struct Guards {
    pub below: u64,
    pub above: u64,
}

/// One unmapped page on each side.
pub const ONE_PAGE_GUARDS: Guards = Guards { below: PAGE_SIZE, above: PAGE_SIZE };

/// Allocate `size` bytes of zeroed, mapped memory aligned to `align`, with
/// unmapped guard pages around it.
pub fn vmalloc_guarded(size: u64, align: u64, guards: Guards) -> Result<VmRange, VmapError> {
    let mut space = SPACE.lock();
    let range = space.alloc(size, align, guards.below, guards.above)?;
    if paging::map_new_pages(range.start, size, paging::KERNEL_DATA).is_err() {
        space.free(range.start).expect("just allocated");
        return Err(VmapError::OutOfMemory);
    }
    Ok(range)
}

/// Unmap and free the allocation that starts at `start`.
///
/// Order matters on SMP (Linux `vunmap` + `flush_tlb_kernel_range`): unmap,
/// shoot down the other CPUs' TLB entries for the range, and only then free
/// the frames and the virtual range. Freed earlier, a frame could be reused
/// while another CPU still reaches it through a stale TLB entry — a freed
/// thread stack still writable from another CPU. No lock is held across the
/// shoot-down (a CPU spinning on one with interrupts off could not answer).
pub fn vfree(start: u64) -> Result<(), VmapError> {
    let range = match SPACE.lock().find(start) {
        Some(r) if r.start == start => r,
        _ => return Err(VmapError::NotAllocated(start)),
    };
    let frames = paging::unmap_range(range.start, range.size);
    crate::smp::tlb::flush_tlb_kernel_range(range.start, range.start + range.size);
    for frame in frames {
        super::phys::free_frame(frame).expect("mapped frames come from phys");
    }
    SPACE.lock().free(start).expect("found above; only its owner frees it");
    Ok(())
}

/// Map device memory (Linux `ioremap`): `size` bytes at physical `pa`,
/// uncached, between guard pages. Never freed.
pub fn ioremap(pa: u64, size: u64) -> Result<u64, VmapError> {
    let mut space = SPACE.lock();
    let range = space.alloc(size, PAGE_SIZE, PAGE_SIZE, PAGE_SIZE)?;
    paging::map_mmio(range.start, pa, size).map_err(|_| VmapError::OutOfMemory)?;
    Ok(range.start)
}

/// The allocation whose pages or guard pages hold `addr`.
pub fn find(addr: u64) -> Option<VmRange> {
    SPACE.lock().find(addr)
}

pub fn stats() -> VmapStats {
    SPACE.lock().stats()
}

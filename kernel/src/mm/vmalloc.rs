//! The vmap area allocator (Linux's `__vmalloc_node_range` with guard pages):
//! reserve a guarded virtual range, back it with fresh zeroed frames mapped
//! read-write and non-executable, and tear it all down again.
//!
//! Every kernel stack is built on this: the guard pages below a stack are
//! what turn an overflow into a fault instead of silent corruption.

use spin::Mutex;
use x86_64::structures::paging::PageTableFlags;

use super::vmap::{VmRange, VmapError, VmapSpace, VmapStats};
use super::{paging, phys};
use crate::stacks::layout::{PAGE_SIZE, VMAP_BASE, VMAP_SIZE};

static SPACE: Mutex<VmapSpace> = Mutex::new(VmapSpace::new(VMAP_BASE, VMAP_SIZE));

/// Flags of every vmap page: data only, never user-accessible.
pub const VMAP_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE)
    .union(PageTableFlags::GLOBAL);

/// Guards around an allocation, in bytes (multiples of PAGE_SIZE).
#[derive(Clone, Copy, Debug)]
pub struct Guards {
    pub below: u64,
    pub above: u64,
}

/// Allocate `size` bytes of zeroed, mapped memory aligned to `align`, with
/// unmapped guard pages around it.
pub fn vmalloc_guarded(size: u64, align: u64, guards: Guards) -> Result<VmRange, VmapError> {
    let mut space = SPACE.lock();
    let range = space.alloc(size, align, guards.below, guards.above)?;
    for offset in (0..size).step_by(PAGE_SIZE as usize) {
        let mapped = phys::alloc_frame().ok_or(VmapError::OutOfMemory).and_then(|frame| {
            // SAFETY: the frame is fresh from the allocator and reached through
            // the direct map; zeroing it before mapping means a new stack never
            // shows a previous owner's data (and stack usage counts zeros).
            unsafe {
                core::ptr::write_bytes(
                    phys::phys_to_virt(frame.start_address().as_u64()),
                    0,
                    PAGE_SIZE as usize,
                )
            };
            paging::map(range.start + offset, frame, VMAP_FLAGS).map_err(|()| {
                let _ = phys::free_frame(frame);
                VmapError::OutOfMemory
            })
        });
        if let Err(e) = mapped {
            unmap_and_free(range.start, offset);
            space.free(range.start).expect("just allocated");
            return Err(e);
        }
    }
    Ok(range)
}

/// Unmap and free the allocation that starts at `start`.
pub fn vfree(start: u64) -> Result<(), VmapError> {
    let mut space = SPACE.lock();
    let range = space.free(start)?;
    unmap_and_free(range.start, range.size);
    Ok(())
}

fn unmap_and_free(start: u64, size: u64) {
    for va in (start..start + size).step_by(PAGE_SIZE as usize) {
        if let Some(frame) = paging::unmap(va) {
            phys::free_frame(frame).expect("vmap frame was allocated by phys");
        }
    }
}

/// The allocation whose pages or guard pages hold `addr`.
pub fn find(addr: u64) -> Option<VmRange> {
    SPACE.lock().find(addr)
}

pub fn stats() -> VmapStats {
    SPACE.lock().stats()
}

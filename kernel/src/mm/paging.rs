//! The kernel's page tables, reached through the direct map.
//!
//! One set of page tables serves every CPU. All changes go through the lock
//! below; TLB entries are invalidated on this CPU (cross-CPU shoot-down comes
//! with SMP).

use spin::Mutex;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB,
    Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::phys;
use crate::stacks::layout::DIRECT_MAP_BASE;

static LOCK: Mutex<()> = Mutex::new(());

struct Frames;

// SAFETY: `phys::alloc_frame` returns each free frame at most once.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        phys::alloc_frame()
    }
}

fn with_table<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    let _guard = LOCK.lock();
    let (root, _) = Cr3::read();
    let root = phys::phys_to_virt(root.start_address().as_u64()) as *mut PageTable;
    // SAFETY: CR3 holds the live top-level table; the direct map covers all
    // physical memory at DIRECT_MAP_BASE; LOCK makes this the only mutable view.
    let mut table = unsafe { OffsetPageTable::new(&mut *root, VirtAddr::new(DIRECT_MAP_BASE)) };
    f(&mut table)
}

/// Map the page at `va` to `frame`. Fails if `va` is already mapped or a
/// page-table frame cannot be allocated.
pub fn map(va: u64, frame: PhysFrame<Size4KiB>, flags: PageTableFlags) -> Result<(), ()> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    with_table(|t| {
        // SAFETY: callers map fresh, owned frames into ranges they reserved
        // (vmap area), so no existing reference aliases the new mapping.
        match unsafe { t.map_to(page, frame, flags, &mut Frames) } {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(MapToError::FrameAllocationFailed)
            | Err(MapToError::PageAlreadyMapped(_))
            | Err(MapToError::ParentEntryHugePage) => Err(()),
        }
    })
}

/// Unmap the page at `va`, invalidate its TLB entry, return its frame.
pub fn unmap(va: u64) -> Option<PhysFrame<Size4KiB>> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    with_table(|t| {
        let (frame, flush) = t.unmap(page).ok()?;
        flush.flush();
        Some(frame)
    })
}

/// Walk the page tables for `va`: its physical address and the leaf's flags.
pub fn translate(va: u64) -> Option<(PhysAddr, PageTableFlags)> {
    with_table(|t| match t.translate(VirtAddr::new(va)) {
        TranslateResult::Mapped { frame, offset, flags } => {
            Some((frame.start_address() + offset, flags))
        }
        TranslateResult::NotMapped | TranslateResult::InvalidFrameAddress(_) => None,
    })
}

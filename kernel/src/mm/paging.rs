//! The kernel's page tables, reached through the direct map.
//!
//! The kernel half (top-level entries 256..512) is one set of tables shared
//! by every CPU and every address space: `init` fills all 256 top-level
//! entries once, so a process's table (`address_space`) copies them at
//! creation and sees every later kernel mapping (a new thread stack) at
//! once. All kernel changes go through the lock below, on the kernel's own
//! table (the boot CR3), whichever CR3 is loaded; TLB entries are
//! invalidated on this CPU here, on the others by the caller
//! (`vmalloc::vfree` shoots them down before freeing anything).

use core::sync::atomic::Ordering;

use crate::sync::IrqMutex as Mutex;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::mapper::{MapToError, TranslateResult};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PageTableFlags, PhysFrame, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::phys;
use crate::layout::{DIRECT_MAP_BASE, KERNEL_PML4_FIRST, PAGE_SIZE};

static LOCK: Mutex<()> = Mutex::new(());

/// Physical address of the kernel's top-level table (the boot CR3).
static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The kernel's top-level table (what kernel threads run on; the source
/// of every address space's kernel half).
pub fn kernel_root() -> u64 {
    KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed)
}

/// Record the boot page table as the kernel's and give every kernel-half
/// top-level entry a table, so that no later kernel mapping ever adds a
/// top-level entry (which address spaces copied earlier would miss).
/// Returns how many tables it added.
pub fn init() -> usize {
    let (root, _) = Cr3::read();
    let root = root.start_address().as_u64();
    KERNEL_ROOT.store(root, core::sync::atomic::Ordering::Relaxed);
    // SAFETY: the live top-level table, through the direct map; boot is
    // single-threaded and nothing else edits it yet.
    let table = unsafe { &mut *(phys::phys_to_virt(root) as *mut PageTable) };
    let mut added = 0;
    for entry in table.iter_mut().skip(KERNEL_PML4_FIRST) {
        if entry.is_unused() {
            let frame = phys::alloc_frame().expect("frames for the kernel half's tables");
            // SAFETY: a fresh frame, written through the direct map.
            unsafe {
                crate::arch::cpu::clear_words(phys::phys_to_virt(frame.start_address().as_u64()), PAGE_SIZE as usize)
            };
            entry.set_frame(frame, PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
            added += 1;
        }
    }
    added
}
struct Frames;

/// Page-table pages the kernel half has gained since boot (for the vmap
/// area's new ranges). Never given back, as in Linux: a later mapping in
/// the same range reuses them. Accounting that compares free frames
/// before and after adds these back.
static KERNEL_TABLE_PAGES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// See `KERNEL_TABLE_PAGES`.
pub fn kernel_table_pages() -> u64 {
    KERNEL_TABLE_PAGES.load(core::sync::atomic::Ordering::Relaxed)
}

// SAFETY: `phys::alloc_frame` returns each free frame at most once.
unsafe impl FrameAllocator<Size4KiB> for Frames {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        let frame = phys::alloc_frame()?;
        KERNEL_TABLE_PAGES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        Some(frame)
    }
}

fn with_table<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    let _guard = LOCK.lock();
    let root = phys::phys_to_virt(kernel_root()) as *mut PageTable;
    // SAFETY: the kernel's top-level table (its kernel half is what every
    // CR3 shares); the direct map covers all physical memory at
    // DIRECT_MAP_BASE; LOCK makes this the only mutable view of that half.
    let mut table = unsafe { OffsetPageTable::new(&mut *root, VirtAddr::new(DIRECT_MAP_BASE)) };
    f(&mut table)
}

/// A page could not be mapped: no frame for it or for a page table, or
/// the address was mapped already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapError;

/// Map the page at `va` to `frame`. Fails if `va` is already mapped or a
/// page-table frame cannot be allocated.
pub fn map(va: u64, frame: PhysFrame<Size4KiB>, flags: PageTableFlags) -> Result<(), MapError> {
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
            | Err(MapToError::ParentEntryHugePage) => Err(MapError),
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
        // A growable page's entry is not present but not empty either.
        TranslateResult::Mapped { flags, .. } if !flags.contains(PageTableFlags::PRESENT) => None,
        TranslateResult::Mapped { frame, offset, flags } => Some((frame.start_address() + offset, flags)),
        TranslateResult::NotMapped | TranslateResult::InvalidFrameAddress(_) => None,
    })
}

/// Flags of every kernel stack and data page outside the direct map:
/// writable, never executable, global (same in every address space).
pub const KERNEL_DATA: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::NO_EXECUTE)
    .union(PageTableFlags::GLOBAL);

/// Back `[start, start + size)` with fresh frames, zeroed before they are
/// mapped (a new stack never shows an old owner's data, and stack-usage
/// accounting counts untouched zero words). On failure nothing stays mapped.
pub fn map_new_pages(start: u64, size: u64, flags: PageTableFlags) -> Result<(), MapError> {
    for offset in (0..size).step_by(PAGE_SIZE as usize) {
        let mapped = phys::alloc_frame().ok_or(MapError).and_then(|frame| {
            // SAFETY: the frame is fresh from the allocator, so nothing else
            // refers to it; the direct map makes it writable here.
            unsafe {
                crate::arch::cpu::clear_words(phys::phys_to_virt(frame.start_address().as_u64()), PAGE_SIZE as usize)
            };
            map(start + offset, frame, flags).inspect_err(|_| {
                let _ = phys::free_frame(frame);
            })
        });
        if mapped.is_err() {
            unmap_and_free(start, offset);
            return Err(MapError);
        }
    }
    Ok(())
}

/// Unmap every mapped page of `[start, start + size)` and free its frame.
/// Only for ranges no other CPU has touched (a failed `map_new_pages`).
fn unmap_and_free(start: u64, size: u64) {
    for frame in unmap_range(start, size) {
        phys::free_frame(frame).expect("mapped frames come from phys");
    }
}

/// Unmap every mapped page of `[start, start + size)` (TLB entries flushed
/// on this CPU only); returns the frames, still allocated.
pub fn unmap_range(start: u64, size: u64) -> alloc::vec::Vec<PhysFrame<Size4KiB>> {
    (start..start + size).step_by(PAGE_SIZE as usize).filter_map(unmap).collect()
}

// --- Lock-free page-table entries, for stacks that grow on demand ------------

/// A not-present PTE with only this software bit (9, ignored by the CPU when
/// P is 0) marks a page of a dynamic thread stack that a fault may map
/// (Linux keeps swap entries in not-present PTEs the same way).
pub const GROWABLE_PTE: u64 = 1 << 9;

/// The leaf entry for kernel address `va`, found without `LOCK`, or None if
/// a table above it is missing. For the #PF handler (which may have
/// interrupted a holder of `LOCK`) and for readers that must not fault:
/// tables of the kernel half are never freed, and each user of an entry
/// owns it (a dynamic stack's pages belong to its thread).
#[instrument_fn = "off"]
pub fn pte(va: u64) -> Option<&'static core::sync::atomic::AtomicU64> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    const PRESENT: u64 = 1;
    const HUGE: u64 = 1 << 7;
    let mut table = kernel_root();
    for shift in [39, 30, 21] {
        // SAFETY: a table of the kernel's page tables, through the direct map.
        let e =
            unsafe { (phys::phys_to_virt(table) as *const u64).add(((va >> shift) & 511) as usize).read_volatile() };
        if e & PRESENT == 0 || e & HUGE != 0 {
            return None;
        }
        table = e & ADDR;
    }
    // SAFETY: as above; a u64 entry, aligned, read and written atomically.
    Some(unsafe {
        &*(phys::phys_to_virt(table) as *const core::sync::atomic::AtomicU64).add(((va >> 12) & 511) as usize)
    })
}

/// Whether `va`'s page is mapped (no lock: see `pte`).
pub fn present(va: u64) -> bool {
    pte(va).is_some_and(|e| e.load(core::sync::atomic::Ordering::Relaxed) & 1 != 0)
}

/// Swap `va`'s leaf entry from `from` to `to` under the lock; false if it
/// was not `from` (or has no table).
fn swap_pte(va: u64, from: u64, to: u64) -> bool {
    let _guard = LOCK.lock();
    pte(va).is_some_and(|e| e.compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed).is_ok())
}

/// Mark the unmapped page `va` growable (its table exists: a stack's pages
/// share one table with its top page).
pub fn mark_growable(va: u64) {
    assert!(swap_pte(va, 0, GROWABLE_PTE), "{va:#x}: not an unmapped page of an existing table");
}

/// An unmapped page again (a dynamic stack's range going back to vmap).
pub fn unmark_growable(va: u64) {
    swap_pte(va, GROWABLE_PTE, 0);
}

/// Back growable page `va` with `frame` (kernel data); the page was not
/// present, so no TLB holds it.
pub fn fill_growable(va: u64, frame: PhysFrame<Size4KiB>) {
    assert!(swap_pte(va, GROWABLE_PTE, frame.start_address().as_u64() | KERNEL_DATA.bits()), "{va:#x} not growable");
}

/// Map `size` bytes of device memory at physical `pa` to `va`, uncached.
pub fn map_mmio(va: u64, pa: u64, size: u64) -> Result<(), MapError> {
    let flags = KERNEL_DATA | PageTableFlags::NO_CACHE | PageTableFlags::WRITE_THROUGH;
    for offset in (0..size).step_by(PAGE_SIZE as usize) {
        let frame = PhysFrame::containing_address(PhysAddr::new(pa + offset));
        map(va + offset, frame, flags)?;
    }
    Ok(())
}

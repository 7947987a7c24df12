//! The physical frame allocator: a `FrameBitmap` built from the boot memory
//! map, stored in usable memory and reached through the direct map.

use crate::sync::IrqMutex as Mutex;
use bootloader_api::info::{MemoryRegionKind, MemoryRegions};
use x86_64::structures::paging::{PhysFrame, Size4KiB};
use x86_64::PhysAddr;

use super::frame::{FrameBitmap, FrameError, Pfn};
use crate::layout::{DIRECT_MAP_BASE, PAGE_SIZE};

/// Frames below 1 MiB are never handed out: BIOS data, and later the SMP
/// trampoline, which must live there.
const LOW_MEMORY_END: u64 = 0x10_0000;

static FRAMES: Mutex<Option<FrameBitmap<'static>>> = Mutex::new(None);

/// Which of the 256 frames below 1 MiB the boot memory map calls usable RAM
/// (never handed out; the SMP trampoline picks its page from these).
static LOW_USABLE: Mutex<[bool; (LOW_MEMORY_END / PAGE_SIZE) as usize]> =
    Mutex::new([false; (LOW_MEMORY_END / PAGE_SIZE) as usize]);

/// Whether the low frame at `pa` (< 1 MiB) was usable RAM in the memory map.
pub fn low_frame_usable(pa: u64) -> bool {
    LOW_USABLE.lock().get((pa / PAGE_SIZE) as usize).copied().unwrap_or(false)
}

/// Virtual address of physical `pa` in the direct map.
pub fn phys_to_virt(pa: u64) -> *mut u8 {
    (DIRECT_MAP_BASE + pa) as *mut u8
}

/// Build the allocator from the bootloader's memory map.
pub fn init(regions: &MemoryRegions) {
    {
        let mut low = LOW_USABLE.lock();
        for r in regions.iter().filter(|r| r.kind == MemoryRegionKind::Usable) {
            for pfn in r.start.div_ceil(PAGE_SIZE)..(r.end / PAGE_SIZE).min(LOW_MEMORY_END / PAGE_SIZE) {
                low[pfn as usize] = true;
            }
        }
    }
    let usable = || {
        regions.iter().filter(|r| r.kind == MemoryRegionKind::Usable).map(|r| {
            let start = r.start.max(LOW_MEMORY_END).div_ceil(PAGE_SIZE);
            let end = r.end / PAGE_SIZE;
            start..end.max(start)
        })
    };
    let max_pfn = usable().map(|r| r.end).max().expect("no usable memory");
    let words = max_pfn.div_ceil(64) as usize;
    // Two bitmaps (in use, usable) live in the first usable range that fits them.
    let storage_frames = (2 * words * 8).div_ceil(PAGE_SIZE as usize) as u64;
    let home = usable().find(|r| r.end - r.start >= storage_frames).expect("no room for the frame bitmap");
    let base = phys_to_virt(home.start * PAGE_SIZE) as *mut u64;
    // SAFETY: `home` is usable RAM that nothing else owns yet (the allocator
    // is not built), mapped writable by the direct map; the two slices are
    // disjoint and live forever because those frames are reserved below.
    let (bits, usable_bits) = unsafe {
        (core::slice::from_raw_parts_mut(base, words), core::slice::from_raw_parts_mut(base.add(words), words))
    };
    let mut fb = FrameBitmap::new(bits, usable_bits);
    for r in usable() {
        fb.add_usable(r);
    }
    fb.reserve(home.start..home.start + storage_frames);
    *FRAMES.lock() = Some(fb);
}

fn with<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> R {
    f(FRAMES.lock().as_mut().expect("mm::phys used before init"))
}

pub fn alloc_frame() -> Option<PhysFrame<Size4KiB>> {
    let pfn = with(|fb| fb.alloc())?;
    Some(PhysFrame::containing_address(PhysAddr::new(pfn * PAGE_SIZE)))
}

/// A frame if the allocator's lock is free now (never waits: for the #PF
/// handler, which may have interrupted the lock's holder on this CPU).
pub fn try_alloc_frame() -> Option<PhysFrame<Size4KiB>> {
    let pfn = FRAMES.try_lock()?.as_mut()?.alloc()?;
    Some(PhysFrame::containing_address(PhysAddr::new(pfn * PAGE_SIZE)))
}

/// Run `f` with the frame allocator's lock held (and interrupts off): the
/// `grow --holding-lock` demo, whose stack grows meanwhile.
pub fn with_lock_held<R>(f: impl FnOnce() -> R) -> R {
    let _held = FRAMES.lock();
    f()
}

/// `count` physically contiguous frames; returns the first.
pub fn alloc_contiguous(count: u64) -> Option<PhysFrame<Size4KiB>> {
    let pfn = with(|fb| fb.alloc_contiguous(count))?;
    Some(PhysFrame::containing_address(PhysAddr::new(pfn * PAGE_SIZE)))
}

pub fn free_frame(frame: PhysFrame<Size4KiB>) -> Result<(), FrameError> {
    let pfn: Pfn = frame.start_address().as_u64() / PAGE_SIZE;
    with(|fb| fb.free(pfn))
}

/// (usable, free) frame counts.
pub fn counts() -> (u64, u64) {
    with(|fb| (fb.usable_frames(), fb.free_frames()))
}

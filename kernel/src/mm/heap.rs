//! The kernel heap: `linked_list_allocator` over physically contiguous frames
//! reached through the direct map (no page-table work, no guard: the heap is
//! not a stack).

use core::alloc::{GlobalAlloc, Layout};

use linked_list_allocator::LockedHeap;

use crate::sync::{note_lock_released, note_lock_taken};
use x86_64::instructions::interrupts::without_interrupts;

use super::phys;
use crate::layout::PAGE_SIZE;

/// 4 MiB: page-table bookkeeping, vmap ranges, command buffers, test data.
pub const HEAP_SIZE: u64 = 4 << 20;

/// The heap's lock is a plain spin lock; taking it with interrupts off keeps
/// a preempted thread from holding it while another one spins (see `sync`),
/// and it is counted as held (an oops inside the allocator must panic: the
/// kill path would otherwise leave it locked).
struct IrqSafeHeap(LockedHeap);

// SAFETY: forwards to `LockedHeap`, only adding interrupt masking.
unsafe impl GlobalAlloc for IrqSafeHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        without_interrupts(|| {
            note_lock_taken();
            // SAFETY: the caller's contract is passed on unchanged.
            let p = unsafe { self.0.alloc(layout) };
            note_lock_released();
            p
        })
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        without_interrupts(|| {
            note_lock_taken();
            // SAFETY: the caller's contract is passed on unchanged.
            unsafe { self.0.dealloc(ptr, layout) };
            note_lock_released();
        })
    }
}

#[global_allocator]
static HEAP: IrqSafeHeap = IrqSafeHeap(LockedHeap::empty());

pub fn init() {
    let first = phys::alloc_contiguous(HEAP_SIZE / PAGE_SIZE).expect("no room for the kernel heap");
    let start = phys::phys_to_virt(first.start_address().as_u64());
    // SAFETY: the frames were just taken from the allocator, so this memory is
    // ours alone, mapped writable by the direct map, and it is never freed.
    unsafe { HEAP.0.lock().init(start, HEAP_SIZE as usize) };
}

/// (size, used) in bytes.
pub fn usage() -> (usize, usize) {
    without_interrupts(|| {
        let heap = HEAP.0.lock();
        (heap.size(), heap.used())
    })
}

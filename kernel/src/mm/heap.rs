//! The kernel heap: `linked_list_allocator` over physically contiguous frames
//! reached through the direct map (no page-table work, no guard: the heap is
//! not a stack).

use linked_list_allocator::LockedHeap;

use super::phys;
use crate::stacks::layout::PAGE_SIZE;

/// 4 MiB: page-table bookkeeping, vmap ranges, command buffers, test data.
pub const HEAP_SIZE: u64 = 4 << 20;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

pub fn init() {
    let first = phys::alloc_contiguous(HEAP_SIZE / PAGE_SIZE).expect("no room for the kernel heap");
    let start = phys::phys_to_virt(first.start_address().as_u64());
    // SAFETY: the frames were just taken from the allocator, so this memory is
    // ours alone, mapped writable by the direct map, and it is never freed.
    unsafe { HEAP.lock().init(start, HEAP_SIZE as usize) };
}

/// (size, used) in bytes.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.size(), heap.used())
}

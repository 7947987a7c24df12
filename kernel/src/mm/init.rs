//! Bring-up order of memory management.

use bootloader_api::BootInfo;

use super::{heap, phys};
use crate::layout::DIRECT_MAP_BASE;

pub fn init(boot_info: &BootInfo) {
    let offset = boot_info.physical_memory_offset.into_option();
    assert_eq!(offset, Some(DIRECT_MAP_BASE), "bootloader did not put the direct map where asked");
    phys::init(&boot_info.memory_regions);
    super::paging::init();
    heap::init();
}

/// Heap usage, for `meminfo`.
pub use heap::{usage as heap_usage, HEAP_SIZE};

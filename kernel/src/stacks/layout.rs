//! The virtual memory map and every stack-related constant, in one table.
//!
//! Linux-shaped (Documentation/x86/x86_64/mm.rst) so that addresses in a
//! tristack oops read like addresses in a Linux oops. Nothing else in the
//! kernel may repeat these numbers as literals.

/// Size of a page and of a guard page.
pub const PAGE_SIZE: u64 = 4096;

/// Linux: THREAD_SIZE = PAGE_SIZE << 2 on x86_64 since 3.15.
pub const THREAD_SIZE: u64 = 4 * PAGE_SIZE;
/// Linux: IRQ_STACK_SIZE = THREAD_SIZE.
pub const IRQ_STACK_SIZE: u64 = THREAD_SIZE;
/// Linux: EXCEPTION_STKSZ = 8 KiB since 2021 ("trivial to overflow" at 4 KiB).
pub const EXCEPTION_STKSZ: u64 = 2 * PAGE_SIZE;
/// Written at the lowest word of every thread stack (Linux STACK_END_MAGIC).
pub const STACK_END_MAGIC: u64 = 0x57AC_6E9D;

// --- The virtual memory map --------------------------------------------------

/// Direct map of all physical memory (Linux `page_offset_base`, unrandomised).
pub const DIRECT_MAP_BASE: u64 = 0xffff_8880_0000_0000;
/// Size reserved for the direct map: 64 TiB, as in Linux's 4-level map.
pub const DIRECT_MAP_SIZE: u64 = 64 << 40;

/// vmalloc/vmap area: thread stacks and IRQ stacks, each between unmapped guards.
pub const VMAP_BASE: u64 = 0xffff_c900_0000_0000;
/// Size of the vmap area: 32 TiB, as in Linux.
pub const VMAP_SIZE: u64 = 32 << 40;

/// Where the bootloader may place its own mappings (boot info, boot stack):
/// Linux's KASAN shadow range, which tristack does not use. It lies between
/// the vmap area and the cpu entry area, clear of every range above.
pub const BOOTLOADER_DYNAMIC_START: u64 = 0xffff_ec00_0000_0000;
pub const BOOTLOADER_DYNAMIC_END: u64 = 0xffff_fc00_0000_0000;

/// cpu entry area: the per-CPU exception (IST) stacks and their guard pages.
pub const CPU_ENTRY_AREA_BASE: u64 = 0xffff_fe00_0000_0000;

/// The kernel image, linked as a static executable at this address.
pub const KERNEL_IMAGE_BASE: u64 = 0xffff_ffff_8000_0000;

/// One row of the map, for `meminfo` and for the overlap check below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    pub start: u64,
    /// Exclusive end (0 means the top of the address space).
    pub end: u64,
}

/// The virtual memory map, lowest address first.
pub const MEMORY_MAP: [Region; 5] = [
    Region { name: "direct map", start: DIRECT_MAP_BASE, end: DIRECT_MAP_BASE + DIRECT_MAP_SIZE },
    Region { name: "vmap area", start: VMAP_BASE, end: VMAP_BASE + VMAP_SIZE },
    Region { name: "bootloader", start: BOOTLOADER_DYNAMIC_START, end: BOOTLOADER_DYNAMIC_END },
    Region { name: "cpu entry area", start: CPU_ENTRY_AREA_BASE, end: KERNEL_IMAGE_BASE },
    Region { name: "kernel image", start: KERNEL_IMAGE_BASE, end: 0 },
];

const fn regions_ordered_and_disjoint() -> bool {
    let mut i = 1;
    while i < MEMORY_MAP.len() {
        let prev = MEMORY_MAP[i - 1];
        if prev.end == 0 || prev.end > MEMORY_MAP[i].start || prev.start >= prev.end {
            return false;
        }
        i += 1;
    }
    true
}

// The bootloader's dynamic mappings must never land inside a range we manage.
const _: () = assert!(regions_ordered_and_disjoint(), "memory map regions overlap");
// Stacks are allocated whole pages at a time, guards are one page.
const _: () = assert!(THREAD_SIZE % PAGE_SIZE == 0 && EXCEPTION_STKSZ % PAGE_SIZE == 0);

/// The region of the map that holds `addr`, if any.
pub fn region_of(addr: u64) -> Option<&'static Region> {
    MEMORY_MAP.iter().find(|r| addr >= r.start && (r.end == 0 || addr < r.end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_sizes() {
        assert_eq!(THREAD_SIZE, 16384);
        assert_eq!(IRQ_STACK_SIZE, 16384);
        assert_eq!(EXCEPTION_STKSZ, 8192);
    }

    #[test]
    fn addresses_find_their_region() {
        assert_eq!(region_of(VMAP_BASE + 5).unwrap().name, "vmap area");
        assert_eq!(region_of(0xffff_ffff_8000_1234).unwrap().name, "kernel image");
        assert_eq!(region_of(0xffff_ffff_ffff_fff0).unwrap().name, "kernel image");
        assert!(region_of(0x1000).is_none());
    }
}

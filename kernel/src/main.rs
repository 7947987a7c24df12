//! The kernel binary: the bootloader's entry point and configuration.
//! Everything else lives in the library (`lib.rs`), starting at `boot::start`.

#![no_std]
#![no_main]

use bootloader_api::config::{BootloaderConfig, Mapping};
use bootloader_api::{entry_point, BootInfo};
use tristack::layout::{BOOTLOADER_DYNAMIC_END, BOOTLOADER_DYNAMIC_START, DIRECT_MAP_BASE, THREAD_SIZE};

pub static BOOTLOADER_CONFIG: BootloaderConfig = {
    let mut config = BootloaderConfig::new_default();
    config.mappings.physical_memory = Some(Mapping::FixedAddress(DIRECT_MAP_BASE));
    // Keep the bootloader's own mappings out of the ranges we manage.
    config.mappings.dynamic_range_start = Some(BOOTLOADER_DYNAMIC_START);
    config.mappings.dynamic_range_end = Some(BOOTLOADER_DYNAMIC_END);
    // The boot stack only runs early bring-up; give it room for debug builds.
    config.kernel_stack_size = 4 * THREAD_SIZE;
    config
};

entry_point!(kmain, config = &BOOTLOADER_CONFIG);

fn kmain(boot_info: &'static mut BootInfo) -> ! {
    tristack::boot::start(boot_info)
}

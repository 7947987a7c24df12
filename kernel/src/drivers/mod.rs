//! Devices: the serial console, QEMU's fw_cfg and isa-debug-exit.

pub mod fw_cfg;
#[cfg(target_os = "none")]
pub mod pic;
#[cfg(target_os = "none")]
pub mod pit;
#[cfg(target_os = "none")]
pub mod qemu_exit;
#[cfg(target_os = "none")]
pub mod serial;

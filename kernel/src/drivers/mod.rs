//! Devices and firmware: the COM1 UART, ACPI tables, QEMU's fw_cfg and
//! isa-debug-exit, the PIT (calibration) and the legacy PICs (masked).

#[cfg(target_os = "none")]
pub mod acpi;
pub mod fw_cfg;
#[cfg(target_os = "none")]
pub mod pic;
#[cfg(target_os = "none")]
pub mod pit;
#[cfg(target_os = "none")]
pub mod qemu_exit;
#[cfg(target_os = "none")]
pub mod uart;

//! Debugging aids: the panic path, the oops, the cross-stack unwinder and
//! the kernel's own symbol table.

#[cfg(target_os = "none")]
pub mod backtrace;
#[cfg(target_os = "none")]
pub mod nmi_backtrace;
#[cfg(target_os = "none")]
pub mod oops;
#[cfg(target_os = "none")]
pub mod panic;
pub mod symbols;
pub mod unwind;

//! Debugging aids: the panic path, the oops, the cross-stack unwinder,
//! the kernel's own symbol table and the stack tracer.

#[cfg(target_os = "none")]
pub mod backtrace;
pub mod glob;
#[cfg(target_os = "none")]
pub mod nmi_backtrace;
#[cfg(target_os = "none")]
pub mod oops;
#[cfg(target_os = "none")]
pub mod panic;
#[cfg(target_os = "none")]
pub mod stack_tracer;
pub mod symbols;
pub mod unwind;

//! Debugging aids: the panic path, the oops, frame-pointer walking (the full
//! cross-stack unwinder and symbols arrive with the backtrace issue).

pub mod backtrace;
pub mod symbols;
pub mod unwind;
#[cfg(target_os = "none")]
pub mod oops;
#[cfg(target_os = "none")]
pub mod panic;

//! Debugging aids: the panic path and frame-pointer walking (the full
//! cross-stack unwinder, symbols and the oops printer arrive with later issues).

#[cfg(target_os = "none")]
pub mod panic;
pub mod backtrace;

//! The subject of tristack: every kind of kernel stack, one module each.
//!
//! Sizes and addresses come from the memory map (`crate::layout`, which
//! `mm` reads too). Here `thread`, `irq` and `exception` allocate and map
//! the three kinds Linux has; `extra` is the pool of extra stacks from
//! Keith Owens' RFC (its counts: `extra_pool`); `usage` measures them;
//! `info` tells which stack any address is on; `nmi_return` whether an
//! interrupted context was on the live NMI stack.

#[cfg(target_os = "none")]
pub mod dynamic;
pub mod extra_pool;
pub mod nmi_return;
pub mod usage;

#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod extra;
#[cfg(target_os = "none")]
pub mod info;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod thread;

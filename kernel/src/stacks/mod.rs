//! The subject of tristack: every kind of kernel stack, one module each.
//!
//! `layout` is the single table of sizes and addresses; `exception` maps the
//! per-CPU IST stacks; `info` tells which stack any address is on. Thread
//! and IRQ stacks arrive with their issues and take their numbers from
//! `layout` too.

pub mod layout;
pub mod usage;

#[cfg(target_os = "none")]
pub mod exception;
#[cfg(target_os = "none")]
pub mod info;
#[cfg(target_os = "none")]
pub mod irq;
#[cfg(target_os = "none")]
pub mod thread;

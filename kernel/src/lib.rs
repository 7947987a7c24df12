//! tristack: a bare-metal x86_64 kernel whose subject is kernel stacks.
//!
//! Every module is declared here. Pure logic (layout arithmetic, frame and vmap
//! bookkeeping, command-line parsing, line editing) also compiles for the host,
//! where `cargo test` runs its unit tests; everything that touches hardware is
//! compiled only for the bare-metal target (`target_os = "none"`).

#![cfg_attr(not(test), no_std)]
// `#[instrument_fn = "off"]`: the context switch is not traced (Linux
// `notrace __schedule`); see docs/performance.md.
#![cfg_attr(target_os = "none", feature(instrument_fn))]

extern crate alloc;

pub mod block;
pub mod cmd;
#[cfg(target_os = "none")]
pub mod console;
pub mod debug;
pub mod drivers;
pub mod hooks;
pub mod layout;
pub mod mm;
pub mod ratelimit;
pub mod shell;
pub mod stacks;
pub mod user;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod demos;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod ktest;
#[cfg(target_os = "none")]
pub mod sched;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod softirq;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod tty;

#[cfg(test)]
mod conventions;
#[cfg(test)]
mod layering;

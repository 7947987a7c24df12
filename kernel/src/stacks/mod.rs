//! The subject of tristack: every kind of kernel stack, one module each.
//!
//! `layout` is the single table of sizes and addresses; the other kinds of
//! stack (thread, IRQ, exception) arrive with their issues and take their
//! numbers from it.

pub mod layout;

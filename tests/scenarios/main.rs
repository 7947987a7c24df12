//! Scenario tests: each boots the kernel through the runner with a command
//! line and asserts on the serial output and the runner's exit status.

mod common;
mod docs;

mod backtraces;
mod debugging;
mod dynamic_stacks;
mod entry_sweep;
mod foundation;
mod hostile_input;
mod irq;
mod ist;
mod performance;
mod runner;
mod running_out_of_stack;
mod smp;
mod stack_tools;
mod threads;
mod user_mode;

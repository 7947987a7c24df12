//! `run true`: exit 0 at once (for `run-many`: process creation and
//! teardown with nothing else).
#![no_std]
#![no_main]

fn main(_: ulib::Args) -> i64 {
    0
}

ulib::entry!(main);

//! The user programs embedded in the kernel image (`kernel/build.rs`
//! writes the table from the `user-programs` artifacts).

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The ELF image of program `name`.
pub fn find(name: &str) -> Option<&'static [u8]> {
    PROGRAMS.iter().find(|(n, _)| *n == name).map(|&(_, elf)| elf)
}

/// Every program's name, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROGRAMS.iter().map(|&(n, _)| n)
}

//! Link every program at the user text base with `user.ld` (the kernel's
//! own `--image-base` in `.cargo/config.toml` applies to this target too;
//! the script's SECTIONS override it).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg-bins=-T{dir}/user.ld");
    // DWARF (mostly core's) would make each program ~700 KiB inside the
    // kernel image; the symbol table stays for traces and `segfault` lines.
    println!("cargo:rustc-link-arg-bins=--strip-debug");
    println!("cargo:rerun-if-changed=user.ld");
}

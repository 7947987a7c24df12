//! Wraps the kernel ELF (an artifact dependency, built for
//! x86_64-unknown-none by the same `cargo` invocation) into a BIOS disk image.
//!
//! Why bindeps rather than a nested `cargo build`: cargo itself then knows the
//! kernel is an input of the runner, rebuilds exactly when it changed, shares
//! one lock and one target directory, and `cargo run` / `cargo test` at the
//! root need no wrapper script.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernel = PathBuf::from(std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").expect("bindeps sets the kernel path"));
    let bios = out.join("tristack-bios.img");
    let booted = strip_debug_info(&kernel, &out);
    // The bootloader logs its stages to the serial port (useful: it is the
    // first thing on the console). Not to the framebuffer: nobody sees it
    // with `-display none`, and drawing text is slow under TCG.
    let mut config = bootloader::BootConfig::default();
    config.frame_buffer_logging = false;
    config.serial_logging = true;
    bootloader::BiosBoot::new(&booted)
        .set_boot_config(&config)
        .create_disk_image(&bios)
        .expect("bootloader: creating the BIOS disk image failed");
    println!("cargo:rustc-env=TRISTACK_BIOS_IMAGE={}", bios.display());
    println!("cargo:rustc-env=TRISTACK_KERNEL_ELF={}", kernel.display());
    println!("cargo:rerun-if-changed={}", kernel.display());
}

/// The image gets the kernel without DWARF (`.symtab` stays: the kernel
/// symbolizes its own traces from it). The BIOS stage reads the kernel with
/// real-mode disk calls, slow under TCG: half the bytes, a faster boot for
/// every test. The runner's `--kernel-elf` still names the full ELF, for
/// gdb and addr2line. Without llvm-objcopy (rustup's llvm-tools component)
/// the full ELF is booted.
fn strip_debug_info(kernel: &std::path::Path, out: &std::path::Path) -> PathBuf {
    let stripped = out.join("kernel.stripped");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = std::process::Command::new(rustc).args(["--print", "sysroot"]).output().ok();
    let objcopy = sysroot
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|root| PathBuf::from(root.trim()).join("lib/rustlib/x86_64-unknown-linux-gnu/bin/llvm-objcopy"));
    let ok = objcopy.is_some_and(|tool| {
        std::process::Command::new(tool)
            .arg("--strip-debug")
            .arg(kernel)
            .arg(&stripped)
            .status()
            .is_ok_and(|s| s.success())
    });
    if ok {
        stripped
    } else {
        println!("cargo:warning=llvm-objcopy not found (rustup component llvm-tools): booting the kernel with its debug info");
        kernel.to_path_buf()
    }
}

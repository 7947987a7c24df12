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
    let kernel = PathBuf::from(
        std::env::var_os("CARGO_BIN_FILE_KERNEL_kernel").expect("bindeps sets the kernel path"),
    );
    let bios = out.join("tristack-bios.img");
    // The bootloader logs its stages to the serial port (useful: it is the
    // first thing on the console). Not to the framebuffer: nobody sees it
    // with `-display none`, and drawing text is slow under TCG.
    let mut config = bootloader::BootConfig::default();
    config.frame_buffer_logging = false;
    config.serial_logging = true;
    bootloader::BiosBoot::new(&kernel)
        .set_boot_config(&config)
        .create_disk_image(&bios)
        .expect("bootloader: creating the BIOS disk image failed");
    println!("cargo:rustc-env=TRISTACK_BIOS_IMAGE={}", bios.display());
    println!("cargo:rustc-env=TRISTACK_KERNEL_ELF={}", kernel.display());
    println!("cargo:rerun-if-changed={}", kernel.display());
}

//! The tristack runner: `cargo run -- [OPTIONS] [-- KERNEL COMMAND LINE]`.
//!
//! The disk image was made by `build.rs`; this program starts QEMU on it,
//! streams the serial console to stdout and turns the way QEMU ended into the
//! exit status described in DESIGN.md (see `status.rs`).

mod qemu;
mod status;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// The BIOS disk image and the kernel ELF it holds, both made by `build.rs`.
pub const BIOS_IMAGE: &str = env!("TRISTACK_BIOS_IMAGE");
pub const KERNEL_ELF: &str = env!("TRISTACK_KERNEL_ELF");

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    /// QEMU's software emulation: a BIOS boot takes ~0.5 s here (tests use it).
    Tcg,
    /// Hardware virtualisation: slower to boot under nested KVM, faster to run (benchmarks).
    Kvm,
}

/// Boot tristack in QEMU. The words after the options (or after `--`) are the
/// kernel command line: `;`-separated shell commands run in order, e.g.
/// `cargo run -- --smp 4 'ktest; poweroff'`.
///
/// Exit status: 0 the kernel powered off with success, 1 the kernel reported
/// failure or oopsed, 2 usage error, 3 the guest reset (triple fault) without
/// reporting, 124 timeout (QEMU killed).
#[derive(Debug, Parser)]
#[command(name = "tristack-run", version, about, long_about = None)]
pub struct Cli {
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,

    /// Run under QEMU's instruction counter (`-icount shift=0,sleep=off`):
    /// the guest TSC counts instructions (1 GHz, one tick each) and
    /// benchmark figures repeat exactly. TCG only.
    #[arg(long)]
    pub icount: bool,

    /// One guest instruction per translated block from the kernel's first
    /// line on (QEMU's `singlestep on`, through a monitor of the runner's
    /// own): TCG checks for interrupts only between blocks, so without this
    /// an NMI or IRQ rarely lands inside a short instruction sequence (an
    /// entry stub, a critical section). Race tests run with it. TCG only;
    /// the kernel runs about 5x slower.
    #[arg(long)]
    pub singlestep: bool,

    /// Number of CPUs.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=255))]
    pub smp: u32,

    /// Guest memory in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(64..=65536))]
    pub mem: u32,

    /// Kill QEMU after SECS seconds and exit 124 (0 = never). Default: never when
    /// stdin is a terminal, 60 otherwise.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,

    /// Start QEMU's gdb stub (`-gdb tcp::PORT -S`: the guest waits for gdb)
    /// and print the gdb command (`./x gdb` runs it).
    #[arg(long)]
    pub gdb: bool,

    /// The gdb stub's TCP port, with --gdb.
    #[arg(long, value_name = "PORT", default_value_t = 1234, requires = "gdb")]
    pub gdb_port: u16,

    /// Prefix each serial line with the host time since QEMU started
    /// (`[  12.345] `): where a slow boot spends its time.
    #[arg(long)]
    pub timestamps: bool,

    /// Also copy the serial console to FILE.
    #[arg(long, value_name = "FILE")]
    pub serial_log: Option<PathBuf>,

    /// Expose QEMU's human monitor on the unix socket PATH (e.g. to inject `mce` or `nmi`).
    #[arg(long, value_name = "PATH")]
    pub monitor: Option<PathBuf>,

    /// Build the disk image, print its path and exit.
    #[arg(long)]
    pub image_only: bool,

    /// Print the path of the kernel ELF (for nm, addr2line, gdb) and exit.
    #[arg(long)]
    pub kernel_elf: bool,

    /// Extra argument appended to QEMU's command line (repeatable).
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub qemu_args: Vec<OsString>,

    /// Kernel command line: `;`-separated shell commands (everything after the
    /// options, or after `--`).
    #[arg(trailing_var_arg = true, value_name = "KERNEL COMMAND LINE")]
    pub cmdline: Vec<OsString>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.image_only {
        println!("{BIOS_IMAGE}");
        return ExitCode::SUCCESS;
    }
    if cli.kernel_elf {
        println!("{KERNEL_ELF}");
        return ExitCode::SUCCESS;
    }
    if let Err(e) = qemu::check(&cli) {
        eprintln!("tristack-run: error: {e}");
        return ExitCode::from(2);
    }
    match qemu::run(&cli) {
        Ok(outcome) => {
            if let Some(message) = outcome.message() {
                eprintln!("tristack-run: {message}");
            }
            ExitCode::from(outcome.exit_status())
        }
        Err(err) => {
            eprintln!("tristack-run: error: {err}");
            ExitCode::from(status::Outcome::KernelFailure.exit_status())
        }
    }
}

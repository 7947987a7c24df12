//! Starting QEMU, streaming its serial console and waiting with a timeout.

use std::ffi::OsString;
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::status::Outcome;
use crate::{Accel, Cli, BIOS_IMAGE, KERNEL_ELF};

/// Name of the fw_cfg file the kernel reads its command line from.
pub const FW_CFG_CMDLINE: &str = "opt/tristack/cmdline";
/// ...and the one saying what the guest's TSC counts (`bench`).
pub const FW_CFG_CLOCK: &str = "opt/tristack/clock";
/// Default `--timeout` when stdin is not a terminal (tests, CI, pipes).
pub const DEFAULT_NONINTERACTIVE_TIMEOUT: u64 = 60;
const QEMU: &str = "qemu-system-x86_64";

/// Combinations of flags QEMU would refuse or that make no sense: said
/// before QEMU starts (exit status 2).
pub fn check(cli: &Cli) -> Result<(), String> {
    if cli.icount && cli.accel == Accel::Kvm {
        return Err("--icount needs --accel tcg: under KVM the host CPU runs the guest's instructions \
                    and QEMU cannot count them"
            .into());
    }
    if cli.singlestep && cli.accel == Accel::Kvm {
        return Err("--singlestep needs --accel tcg: it is how QEMU's emulator translates code, \
                    and KVM runs the guest's instructions on the host CPU"
            .into());
    }
    Ok(())
}

/// QEMU's escape key on the console (`-echr`): Ctrl-].
pub const ESCAPE_KEY: u8 = 0x1d;
/// How to leave a session, for the README and the runner's messages.
pub const ESCAPE_HELP: &str = "leave with `poweroff`, or Ctrl-] then x (QEMU's escape key; Ctrl-] h lists the others)";
/// What QEMU writes to the console when Ctrl-] x ends it (`char-mux.c`).
const QUIT_BY_ESCAPE: &[u8] = b"QEMU: Terminated";

/// The kernel's first line starts with this; `--singlestep` turns QEMU's
/// single-stepping on when it appears.
const KERNEL_BANNER: &[u8] = b"tristack ";

/// The unix socket of the runner's own monitor (`--singlestep`).
fn singlestep_monitor_path() -> PathBuf {
    std::env::temp_dir().join(format!("tristack-singlestep-{}.sock", std::process::id()))
}

/// QEMU's arguments for `cli`. `cmdline_file` holds the kernel command line.
pub fn qemu_args(cli: &Cli, image: &Path, cmdline_file: Option<&Path>) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |s: &str| args.push(s.into());
    push("-drive");
    // snapshot: writes stay private to this run, so many boots can share one image.
    // virtio: SeaBIOS reads a virtio-blk disk through a virtqueue; the IDE
    // default reads it two bytes per port access (`insw`), and loading the
    // bootloader and the kernel took half a second of every boot under TCG.
    push(&format!("if=virtio,format=raw,file={},snapshot=on", image.display()));
    // The console on stdio: signal=off so Ctrl-C reaches the kernel (the
    // shell cancels the line, long demos stop) instead of killing QEMU;
    // mux=on for QEMU's escape key, moved from Ctrl-A (the line editor's
    // Home) to Ctrl-] as telnet has it: Ctrl-] x leaves (`ESCAPE_HELP`).
    push("-chardev");
    push("stdio,id=ttyS0,mux=on,signal=off");
    push("-serial");
    push("chardev:ttyS0");
    push("-echr");
    push(&format!("{ESCAPE_KEY:#x}"));
    push("-display");
    push("none");
    push("-no-reboot");
    push("-device");
    push("isa-debug-exit,iobase=0xf4,iosize=0x04");
    // `max` gives TCG guests machine-check architecture (MCA) and x2APIC.
    // Under KVM, `max` is the host's CPU; nested KVM (these machines)
    // refuses to set IA32_ARCH_CAPABILITIES (MSR 0x10a) and QEMU aborts
    // ("failed to set MSR 0x10a", then an assertion): tristack does not
    // use that MSR, so the feature is left out.
    push("-cpu");
    push(match cli.accel {
        Accel::Tcg => "max",
        Accel::Kvm => "max,-arch-capabilities",
    });
    push("-accel");
    push(match cli.accel {
        Accel::Tcg => "tcg",
        Accel::Kvm => "kvm",
    });
    if cli.icount {
        // shift=0: one instruction = 1 ns of virtual time, so the guest's
        // TSC (1 GHz) counts instructions. sleep=off: an idle guest's clock
        // jumps to the next timer instead of following the host's, so idle
        // periods too are the same on every run.
        push("-icount");
        push("shift=0,sleep=off");
    }
    if cli.singlestep {
        // A monitor of the runner's own: single-stepping is switched on
        // through it at the kernel's first line (`singlestep on`), so the
        // firmware and the bootloader, which do not need it, keep their
        // speed (about 15 s of a boot otherwise).
        push("-chardev");
        push(&format!("socket,id=tristack-singlestep,path={},server=on,wait=off", singlestep_monitor_path().display()));
        push("-mon");
        push("chardev=tristack-singlestep,mode=readline");
    }
    push("-smp");
    push(&cli.smp.to_string());
    push("-m");
    push(&format!("{}M", cli.mem));
    // What the guest's TSC counts, for `bench` to say (fw_cfg, read at run time).
    push("-fw_cfg");
    push(&format!(
        "name={FW_CFG_CLOCK},string={}",
        match (cli.icount, cli.accel) {
            (true, _) => "instructions",
            (false, Accel::Tcg) => "tcg",
            (false, Accel::Kvm) => "kvm",
        }
    ));
    if let Some(file) = cmdline_file {
        // A file, not `string=`: no escaping of commas, any bytes pass unchanged.
        push("-fw_cfg");
        push(&format!("name={FW_CFG_CMDLINE},file={}", file.display()));
    }
    if let Some(sock) = &cli.monitor {
        push("-monitor");
        push(&format!("unix:{},server=on,wait=off", sock.display()));
    }
    if cli.gdb {
        push("-gdb");
        push(&format!("tcp::{}", cli.gdb_port));
        push("-S");
    }
    args.extend(cli.qemu_args.iter().cloned());
    args
}

/// The kernel command line: the words after `--`, joined by spaces.
pub fn joined_cmdline(words: &[OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(w.as_bytes());
    }
    out
}

/// `bytes` with `[ SSSS.mmm] ` (host time since QEMU started) at the start
/// of every line; `last` is the byte before them.
fn stamped(bytes: &[u8], mut last: u8, t: Duration) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for &b in bytes {
        if last == b'\n' {
            out.extend_from_slice(format!("[{:4}.{:03}] ", t.as_secs(), t.subsec_millis()).as_bytes());
        }
        out.push(b);
        last = b;
    }
    out
}

/// Removes the temporary command-line file when the run ends.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn run(cli: &Cli) -> Result<Outcome, String> {
    let image = Path::new(BIOS_IMAGE);
    if !image.exists() {
        return Err(format!("disk image {} is missing; run `cargo build`", image.display()));
    }
    let cmdline_file = if cli.cmdline.is_empty() {
        None
    } else {
        let path = std::env::temp_dir().join(format!("tristack-cmdline-{}", std::process::id()));
        std::fs::write(&path, joined_cmdline(&cli.cmdline)).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Some(TempFile(path))
    };
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let timeout = match (cli.gdb, cli.timeout) {
        (true, None) => 0,
        (_, Some(t)) => t,
        (false, None) if stdin_is_terminal => 0,
        (false, None) => DEFAULT_NONINTERACTIVE_TIMEOUT,
    };
    if stdin_is_terminal && !cli.gdb {
        eprintln!("tristack-run: {ESCAPE_HELP}");
    }
    if cli.gdb {
        eprintln!("tristack-run: QEMU waits for gdb on localhost:{}; in another terminal run:", cli.gdb_port);
        eprintln!("  gdb {KERNEL_ELF} -x scripts/gdb/tristack.py -ex 'target remote :{}'", cli.gdb_port);
    }
    let mut log = match &cli.serial_log {
        Some(p) => Some(File::create(p).map_err(|e| format!("--serial-log {}: {e}", p.display()))?),
        None => None,
    };

    let mut child = Command::new(QEMU)
        .args(qemu_args(cli, image, cmdline_file.as_ref().map(|f| f.0.as_path())))
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {QEMU}: {e} (install it: apt-get install qemu-system-x86)"))?;

    // Copy the serial console to our stdout (and the log) as it arrives.
    let mut serial = child.stdout.take().expect("stdout is piped");
    let started = Instant::now();
    let timestamps = cli.timestamps;
    let _monitor_socket = cli.singlestep.then(|| TempFile(singlestep_monitor_path()));
    // Until the banner is seen: the output so far, less what cannot start it.
    let mut before_banner = cli.singlestep.then(Vec::new);
    let copier = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        let mut last = b'\n';
        // The last bytes seen, to recognise QEMU's own goodbye.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            match serial.read(&mut buf) {
                Ok(0) | Err(_) => break (last, tail.windows(QUIT_BY_ESCAPE.len()).any(|w| w == QUIT_BY_ESCAPE)),
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    tail.drain(..tail.len().saturating_sub(2 * QUIT_BY_ESCAPE.len()));
                    if let Some(seen) = before_banner.as_mut() {
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(KERNEL_BANNER.len()).any(|w| w == KERNEL_BANNER) {
                            before_banner = None;
                            if let Err(e) = singlestep_on() {
                                eprintln!("tristack-run: --singlestep: {e}");
                            }
                        } else {
                            seen.drain(..seen.len().saturating_sub(KERNEL_BANNER.len()));
                        }
                    }
                    let out = if timestamps { stamped(&buf[..n], last, started.elapsed()) } else { buf[..n].to_vec() };
                    last = buf[n - 1];
                    let _ = stdout.write_all(&out);
                    let _ = stdout.flush();
                    if let Some(f) = log.as_mut() {
                        let _ = f.write_all(&out);
                    }
                }
            }
        }
    });

    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_secs(timeout));
    let outcome = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            break Outcome::from_qemu_status(status.code());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            break Outcome::Timeout(timeout);
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (last, quit_by_escape) = copier.join().unwrap_or((b'\n', false));
    // QEMU exits 0 both for Ctrl-] x and for a guest reset; its goodbye tells them apart.
    let outcome = if quit_by_escape && outcome == Outcome::Reset { Outcome::Left } else { outcome };
    // Start the runner's own message on a fresh line (e.g. after a prompt).
    if last != b'\n' && outcome.message().is_some() {
        eprintln!();
    }
    Ok(outcome)
}

/// Switch QEMU's single-stepping on through the runner's monitor.
fn singlestep_on() -> Result<(), String> {
    use std::os::unix::net::UnixStream;
    let path = singlestep_monitor_path();
    let mut monitor = UnixStream::connect(&path).map_err(|e| format!("monitor {}: {e}", path.display()))?;
    monitor.write_all(b"singlestep on\n").map_err(|e| format!("monitor: {e}"))?;
    // Wait for the next prompt: the command has been carried out.
    monitor.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| format!("monitor: {e}"))?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while seen.windows(7).filter(|w| *w == b"(qemu) ").count() < 2 {
        match monitor.read(&mut buf) {
            Ok(0) | Err(_) => return Err("monitor: no answer to `singlestep on`".into()),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "qemu_tests.rs"]
mod tests;
